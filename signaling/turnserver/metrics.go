package turnserver

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricAllocations = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "chamber_turn_allocations", Help: "TURN allocations open.",
	})
	metricRefused = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chamber_turn_refused_total", Help: "TURN requests refused, by reason (revoked credential, participant_quota, address_quota).",
	}, []string{"reason"})
)
