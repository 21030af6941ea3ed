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
	// JitterMs is the mean RFC 3550 interarrival jitter over the window
	// (the variation of transit time between consecutive packets of a
	// track, against the send time the payload carries).
	JitterMs float64 `json:"jitter_ms"`
	// ForwardedPerSecond is packets received by all subscribers per second.
	ForwardedPerSecond float64 `json:"forwarded_packets_per_s"`
	// ServerCPUMicrosPerPacket is server CPU time per forwarded packet;
	// nil (JSON null) without --server-pid.
	ServerCPUMicrosPerPacket *float64 `json:"server_cpu_us_per_packet"`
	// ServerCPUSecondsPer1000 is the same as CPU seconds per 1,000 packets.
	ServerCPUSecondsPer1000 *float64 `json:"server_cpu_s_per_1000_packets"`
	// LoadGeneratorCPUPct is this process's CPU in percent of one core.
	LoadGeneratorCPUPct float64 `json:"load_generator_cpu_pct"`
	// LoadAverage… are /proc/loadavg (1, 5, 15 minutes) when the window
	// began and ended, the load measured under.
	LoadAverageBefore [3]float64     `json:"load_average_before"`
	LoadAverageAfter  [3]float64     `json:"load_average_after"`
	Tracks            []TrackSummary `json:"tracks"`
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
	fmt.Fprintf(tw, "jitter\t%.2f ms\n", s.JitterMs)
	fmt.Fprintf(tw, "packets\tsent %d\treceived %d\n", s.PacketsSent, s.PacketsReceived)
	fmt.Fprintf(tw, "loss\t%.3f %%\n", s.LossPct)
	fmt.Fprintf(tw, "forwarded\t%.0f packets/s\n", s.ForwardedPerSecond)
	if s.ServerCPUMicrosPerPacket != nil {
		fmt.Fprintf(tw, "server CPU\t%.1f µs/packet\t%.4f s per 1,000 packets\n", *s.ServerCPUMicrosPerPacket, *s.ServerCPUSecondsPer1000)
	} else {
		fmt.Fprintf(tw, "server CPU\tunknown (no --server-pid)\n")
	}
	fmt.Fprintf(tw, "load generator CPU\t%.0f %% of a core\n", s.LoadGeneratorCPUPct)
	fmt.Fprintf(tw, "load average\t%.2f → %.2f\n", s.LoadAverageBefore[0], s.LoadAverageAfter[0])
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

// Stats are the room mode's figures over the window, for one room or for
// all of them.
type Stats struct {
	PacketsSent     uint64  `json:"packets_sent"`
	PacketsReceived uint64  `json:"packets_received"`
	LossPct         float64 `json:"loss_pct"`
	LatencyMsP50    float64 `json:"latency_ms_p50"`
	LatencyMsP99    float64 `json:"latency_ms_p99"`
	// JitterMs is the mean RFC 3550 interarrival jitter (see Summary).
	JitterMs float64 `json:"jitter_ms"`
	// JoinMsP50 and JoinMsP99: from opening the WebSocket to receiving
	// the audio and video of everyone already in the room (the first to
	// enter a room is not counted).
	JoinMsP50 float64 `json:"join_ms_p50"`
	JoinMsP99 float64 `json:"join_ms_p99"`
	// ForwardedPerSecond is packets received by all participants per second.
	ForwardedPerSecond float64 `json:"forwarded_packets_per_s"`
	// VideoLayers counts the video packets received by the publisher's
	// simulcast layer (q, h, f; all in the first without simulcast).
	VideoLayers [3]uint64 `json:"video_packets_by_layer"`
}

// RoomsSummary is the result of the room mode. Its JSON form is what
// --json prints.
type RoomsSummary struct {
	Rooms        int `json:"rooms"`
	Participants int `json:"participants"` // per room
	// ParticipantsFailed did not join, or did not receive every other
	// participant of their room by the deadline.
	ParticipantsFailed int  `json:"participants_failed"`
	Simulcast          bool `json:"simulcast"`
	VideoBitrate       int  `json:"video_bitrate"`
	// MaxLayer is the layer receivers capped every video at (simulcast);
	// null when uncapped.
	MaxLayer  *int    `json:"max_layer"`
	DurationS float64 `json:"duration_s"`
	// Stats are the totals over every room.
	Stats
	// Server CPU, all nil (JSON null) without --server-pid: in percent of
	// one core, per forwarded packet, and per hearing; HearingsPerServerCore
	// is how many such hearings one core of server CPU would carry at this
	// cost (100 / ServerCPUPctPerHearing), were the load generator elsewhere.
	ServerCPUPct             *float64 `json:"server_cpu_pct"`
	ServerCPUMicrosPerPacket *float64 `json:"server_cpu_us_per_packet"`
	ServerCPUSecondsPer1000  *float64 `json:"server_cpu_s_per_1000_packets"`
	ServerCPUPctPerHearing   *float64 `json:"server_cpu_pct_per_hearing"`
	HearingsPerServerCore    *float64 `json:"hearings_per_server_core"`
	// LoadGeneratorCPUPct is this process's CPU in percent of one core.
	LoadGeneratorCPUPct float64 `json:"load_generator_cpu_pct"`
	// LoadAverage… are /proc/loadavg (1, 5, 15 minutes) when the window
	// began and ended, the load measured under.
	LoadAverageBefore [3]float64    `json:"load_average_before"`
	LoadAverageAfter  [3]float64    `json:"load_average_after"`
	PerRoom           []RoomSummary `json:"per_room"`
}

// RoomSummary is one room over the window.
type RoomSummary struct {
	Room      int    `json:"room"`
	SessionID string `json:"session_id"`
	Stats
	Failed  int             `json:"participants_failed"`
	Members []MemberSummary `json:"members"`
}

// MemberSummary is what one participant received over the window.
type MemberSummary struct {
	ParticipantID string `json:"participant_id"`
	Role          string `json:"role"`
	// JoinMs: null for the first to enter the room, or one that failed.
	JoinMs *float64 `json:"join_ms"`
	// AudioFrom and VideoFrom are the participants whose audio and video
	// reached this one during the window.
	AudioFrom []string `json:"audio_from"`
	VideoFrom []string `json:"video_from"`
	LossPct   float64  `json:"loss_pct"`
	Error     string   `json:"error,omitempty"`
}

// PrintRooms writes the room mode's summary as a table, or as one JSON
// object when asJSON.
func PrintRooms(w io.Writer, s RoomsSummary, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(s)
	}
	return s.WriteTable(w)
}

// WriteTable writes the human-readable summary: the totals, then a line
// per room.
func (s RoomsSummary) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "hearings\t%d of %d participants (%d failed)\n", s.Rooms, s.Participants, s.ParticipantsFailed)
	video := fmt.Sprintf("%.2f Mbit/s", float64(s.VideoBitrate)/1e6)
	if s.Simulcast {
		video += ", simulcast"
		if s.MaxLayer != nil {
			video += fmt.Sprintf(", received capped at layer %d", *s.MaxLayer)
		}
	}
	fmt.Fprintf(tw, "video\t%s\n", video)
	fmt.Fprintf(tw, "window\t%.1f s\n", s.DurationS)
	fmt.Fprintf(tw, "join time (connect → everyone's media)\tp50 %.0f ms\tp99 %.0f ms\n", s.JoinMsP50, s.JoinMsP99)
	fmt.Fprintf(tw, "forwarding latency\tp50 %.2f ms\tp99 %.2f ms\n", s.LatencyMsP50, s.LatencyMsP99)
	fmt.Fprintf(tw, "jitter\t%.2f ms\n", s.JitterMs)
	fmt.Fprintf(tw, "packets\tsent %d\treceived %d\n", s.PacketsSent, s.PacketsReceived)
	fmt.Fprintf(tw, "loss\t%.3f %%\n", s.LossPct)
	fmt.Fprintf(tw, "forwarded\t%.0f packets/s\n", s.ForwardedPerSecond)
	fmt.Fprintf(tw, "video packets by layer\tq %d\th %d\tf %d\n", s.VideoLayers[0], s.VideoLayers[1], s.VideoLayers[2])
	if s.ServerCPUMicrosPerPacket != nil {
		fmt.Fprintf(tw, "server CPU\t%.0f %% of a core\t%.1f µs/packet\t%.1f %% of a core per hearing (%.1f hearings per core)\n",
			*s.ServerCPUPct, *s.ServerCPUMicrosPerPacket, *s.ServerCPUPctPerHearing, *s.HearingsPerServerCore)
	} else {
		fmt.Fprintf(tw, "server CPU\tunknown (no --server-pid)\n")
	}
	fmt.Fprintf(tw, "load generator CPU\t%.0f %% of a core\n", s.LoadGeneratorCPUPct)
	fmt.Fprintf(tw, "load average\t%.2f → %.2f\n", s.LoadAverageBefore[0], s.LoadAverageAfter[0])
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "room\tloss\tlatency p50 / p99\tjitter\tjoin p50 / p99\tpackets/s\tfailed")
	for _, r := range s.PerRoom {
		fmt.Fprintf(tw, "%d\t%.3f %%\t%.2f / %.2f ms\t%.2f ms\t%.0f / %.0f ms\t%.0f\t%d\n",
			r.Room, r.LossPct, r.LatencyMsP50, r.LatencyMsP99, r.JitterMs, r.JoinMsP50, r.JoinMsP99, r.ForwardedPerSecond, r.Failed)
	}
	return tw.Flush()
}
