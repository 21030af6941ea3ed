package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// Summary is the result of a load test. Its JSON form is what --json prints.
type Summary struct {
	Publishers        int     `json:"publishers"`
	Subscribers       int     `json:"subscribers"`
	SubscribersFailed int     `json:"subscribers_failed"`
	Simulcast         bool    `json:"simulcast"`
	VideoBitrate      int     `json:"video_bitrate"`
	DurationS         float64 `json:"duration_s"`
	PacketsSent       uint64  `json:"packets_sent"`
	PacketsReceived   uint64  `json:"packets_received"`
	LossPct           float64 `json:"loss_pct"`
	JoinMsP50         float64 `json:"join_ms_p50"`
	JoinMsP99         float64 `json:"join_ms_p99"`
	LatencyMsP50      float64 `json:"latency_ms_p50"`
	LatencyMsP99      float64 `json:"latency_ms_p99"`
	// ForwardedPerSecond is packets received by all subscribers per second.
	ForwardedPerSecond float64 `json:"forwarded_packets_per_s"`
	// ServerCPUMicrosPerPacket is server CPU time per forwarded packet;
	// nil (JSON null) without --server-pid.
	ServerCPUMicrosPerPacket *float64 `json:"server_cpu_us_per_packet"`
	// ServerCPUSecondsPer1000 is the same as CPU seconds per 1,000 packets.
	ServerCPUSecondsPer1000 *float64       `json:"server_cpu_s_per_1000_packets"`
	Tracks                  []TrackSummary `json:"tracks"`
}

// TrackSummary is one published track over the window: packets sent by
// its publisher, and received by all subscribers together.
type TrackSummary struct {
	Publisher string  `json:"publisher"`
	Kind      string  `json:"kind"`
	Sent      uint64  `json:"packets_sent"`
	Received  uint64  `json:"packets_received"`
	LossPct   float64 `json:"loss_pct"`
}

// Print writes the summary as a table, or as one JSON object when asJSON.
func Print(w io.Writer, s Summary, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(s)
	}
	return s.WriteTable(w)
}

// WriteTable writes the human-readable summary.
func (s Summary) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "publishers\t%d\n", s.Publishers)
	fmt.Fprintf(tw, "subscribers\t%d (%d failed)\n", s.Subscribers, s.SubscribersFailed)
	fmt.Fprintf(tw, "video\t%.2f Mbit/s%s\n", float64(s.VideoBitrate)/1e6, map[bool]string{true: ", simulcast", false: ""}[s.Simulcast])
	fmt.Fprintf(tw, "window\t%.1f s\n", s.DurationS)
	fmt.Fprintf(tw, "join time (connect → first media)\tp50 %.0f ms\tp99 %.0f ms\n", s.JoinMsP50, s.JoinMsP99)
	fmt.Fprintf(tw, "forwarding latency\tp50 %.2f ms\tp99 %.2f ms\n", s.LatencyMsP50, s.LatencyMsP99)
	fmt.Fprintf(tw, "packets\tsent %d\treceived %d\n", s.PacketsSent, s.PacketsReceived)
	fmt.Fprintf(tw, "loss\t%.3f %%\n", s.LossPct)
	fmt.Fprintf(tw, "forwarded\t%.0f packets/s\n", s.ForwardedPerSecond)
	if s.ServerCPUMicrosPerPacket != nil {
		fmt.Fprintf(tw, "server CPU\t%.1f µs/packet\t%.4f s per 1,000 packets\n", *s.ServerCPUMicrosPerPacket, *s.ServerCPUSecondsPer1000)
	} else {
		fmt.Fprintf(tw, "server CPU\tunknown (no --server-pid)\n")
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "publisher\tkind\tsent\treceived (all subscribers)\tloss")
	for _, t := range s.Tracks {
		p := t.Publisher
		if len(p) > 8 {
			p = p[:8]
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.3f %%\n", p, t.Kind, t.Sent, t.Received, t.LossPct)
	}
	return tw.Flush()
}
