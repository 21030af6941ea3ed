package sfu

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Prometheus collectors of the media path (issue 4 §4). Counters on the
// per-packet path are not touched per packet: writers add their totals once
// per fan-out round.
var (
	metricRooms = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "chamber_rooms", Help: "Media rooms open (one per session with connected participants).",
	})
	metricPeers = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "chamber_peers", Help: "Participant connections with media (each has a publish and a subscribe PeerConnection).",
	})
	metricTracks = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "chamber_tracks", Help: "Published tracks by kind and source.",
	}, []string{"kind", "source"})
	metricForwardedPackets = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_rtp_packets_forwarded_total", Help: "RTP packets written to subscribers (retransmissions included).",
	})
	metricForwardedBytes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_rtp_bytes_forwarded_total", Help: "RTP payload and header bytes written to subscribers, before SRTP.",
	})
	metricDropped = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chamber_rtp_packets_dropped_total", Help: "RTP packets not delivered, by reason.",
	}, []string{"reason"})
	metricNACK = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_nack_total", Help: "Packets subscribers asked to be retransmitted (generic NACK).",
	})
	metricPLI = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_pli_total", Help: "Keyframe requests (PLI) sent to publishers.",
	})
	metricLayerSwitches = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chamber_layer_switches_total", Help: "Simulcast layer switches performed for subscribers.",
	})
	metricICETCPRefused = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chamber_ice_tcp_refused_total", Help: "ICE-TCP connections closed on accept, by the cap they hit (per_address, total).",
	}, []string{"cap"})
	metricCandidatesDropped = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chamber_ice_candidates_dropped_total", Help: "Participants' ICE candidates the SFU refused to check, by why (loopback, private, link_local, multicast, unspecified, reserved, name, malformed).",
	}, []string{"reason"})
	metricICE = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chamber_ice_connections_total", Help: "PeerConnections whose ICE connected, by transport (udp, tcp, relay).",
	}, []string{"transport"})
)

// Drop reasons.
const (
	dropQueueFull   = "queue_full"    // a writer's queue was full (slow subscriber or CPU starvation)
	dropWriteError  = "write_error"   // the transport refused the packet
	dropTCPBackPres = "tcp_congested" // an ICE-TCP connection could not take more bytes
	dropTapSlow     = "tap_slow"      // a recording tap could not keep up
	dropLate        = "late"          // a duplicate or a packet older than the cache
)

var (
	droppedQueueFull = metricDropped.WithLabelValues(dropQueueFull)
	droppedWrite     = metricDropped.WithLabelValues(dropWriteError)
	droppedTCP       = metricDropped.WithLabelValues(dropTCPBackPres)
	droppedTap       = metricDropped.WithLabelValues(dropTapSlow)
	droppedLate      = metricDropped.WithLabelValues(dropLate)
)
