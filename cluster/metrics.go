package cluster

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	leaseClaims = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_lease_claims_total",
		Help: "Rooms this node became the home of (a new lease, or one taken over after its holder's expired).",
	})
	leaseRenewals = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_lease_renewals_total",
		Help: "Room leases renewed by this node's heartbeat.",
	})
	leaseLosses = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_lease_losses_total",
		Help: "Rooms this node held and lost without releasing them: taken by another node, or not renewed within the lease.",
	})
	fencedWrites = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_fenced_writes_total",
		Help: "Writes for a room refused because this node no longer held its lease (fencing token).",
	})
	roomEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chamber_room_events_total",
		Help: "Room events passed between nodes through the database: sent to another node's room, or received for a room held here.",
	}, []string{"direction"})
)

var nodeRooms = promauto.NewGauge(prometheus.GaugeOpts{
	Name: "chamber_node_rooms",
	Help: "Rooms whose lease this node holds (it is their home node).",
})

var nodeAuthRefused = promauto.NewCounter(prometheus.CounterOpts{
	Name: "chamber_node_auth_refused_total",
	Help: "Requests claiming to come from another node (X-Chamber-Proxied-By) refused for a missing, stale, replayed or forged signature.",
})
