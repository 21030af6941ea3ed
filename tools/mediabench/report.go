package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// runLine is one JSON line of bench.sh or rooms.sh: a load test's summary
// (package loadtest, either mode) with the script's "mode" and "run".
type runLine struct {
	Mode               string     `json:"mode"`
	Run                int        `json:"run"`
	Rooms              int        `json:"rooms"`
	Participants       int        `json:"participants"`
	Subscribers        int        `json:"subscribers"`
	ParticipantsFailed int        `json:"participants_failed"`
	SubscribersFailed  int        `json:"subscribers_failed"`
	LossPct            float64    `json:"loss_pct"`
	LatencyMsP50       float64    `json:"latency_ms_p50"`
	LatencyMsP99       float64    `json:"latency_ms_p99"`
	JitterMs           float64    `json:"jitter_ms"`
	JoinMsP50          float64    `json:"join_ms_p50"`
	JoinMsP99          float64    `json:"join_ms_p99"`
	ForwardedPerSecond float64    `json:"forwarded_packets_per_s"`
	CPUMicros          *float64   `json:"server_cpu_us_per_packet"`
	CPUPct             *float64   `json:"server_cpu_pct"`
	CPUPctPerHearing   *float64   `json:"server_cpu_pct_per_hearing"`
	LoadGenCPUPct      float64    `json:"load_generator_cpu_pct"`
	LoadBefore         [3]float64 `json:"load_average_before"`
	LoadAfter          [3]float64 `json:"load_average_after"`
}

// step is every run of one number of rooms (or, for the one-room mode,
// of one mode and number of subscribers).
type step struct {
	key  int // rooms, or subscribers
	mode string
	runs []runLine
}

// bounds is what a number of rooms must hold to: median loss below
// LossPct and median latency p99 below P99, with no participant failed.
type bounds struct {
	LossPct float64
	P99     time.Duration
}

func (b bounds) holds(s step) bool {
	return median(s, func(r runLine) float64 { return r.LossPct }) < b.LossPct &&
		median(s, func(r runLine) float64 { return r.LatencyMsP99 }) < float64(b.P99)/float64(time.Millisecond) &&
		median(s, func(r runLine) float64 { return float64(r.ParticipantsFailed + r.SubscribersFailed) }) == 0
}

// largestHolding returns the largest number of rooms that holds to b with
// every smaller number measured holding too (stepping up stops at the
// first that fails), and false when even the smallest fails.
func largestHolding(steps []step, b bounds) (step, bool) {
	var best step
	ok := false
	for _, s := range steps {
		if !b.holds(s) {
			break
		}
		best, ok = s, true
	}
	return best, ok
}

// readRuns reads JSON lines, splitting room-mode runs from one-room runs;
// both come back ordered by rooms or subscribers.
func readRuns(r io.Reader) (rooms, single []step, err error) {
	byRooms, bySingle := map[int]*step{}, map[string]*step{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var l runLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		if l.Rooms > 0 {
			s := byRooms[l.Rooms]
			if s == nil {
				s = &step{key: l.Rooms, mode: "rooms"}
				byRooms[l.Rooms] = s
			}
			s.runs = append(s.runs, l)
			continue
		}
		k := fmt.Sprintf("%s/%d", l.Mode, l.Subscribers)
		s := bySingle[k]
		if s == nil {
			s = &step{key: l.Subscribers, mode: l.Mode}
			bySingle[k] = s
		}
		s.runs = append(s.runs, l)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	for _, s := range byRooms {
		rooms = append(rooms, *s)
	}
	for _, s := range bySingle {
		single = append(single, *s)
	}
	sort.Slice(rooms, func(i, j int) bool { return rooms[i].key < rooms[j].key })
	sort.Slice(single, func(i, j int) bool {
		if single[i].key != single[j].key {
			return single[i].key < single[j].key
		}
		return single[i].mode < single[j].mode
	})
	return rooms, single, nil
}

// values returns f of every run, in run order.
func values(s step, f func(runLine) float64) []float64 {
	out := make([]float64, len(s.runs))
	for i, r := range s.runs {
		out[i] = f(r)
	}
	return out
}

func median(s step, f func(runLine) float64) float64 {
	v := values(s, f)
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// medianRuns formats a median followed by every run: "9.3 (8.9, 9.3, 9.8)".
func medianRuns(s step, f func(runLine) float64, format string) string {
	parts := make([]string, 0, len(s.runs))
	for _, v := range values(s, f) {
		parts = append(parts, fmt.Sprintf(format, v))
	}
	return fmt.Sprintf(format, median(s, f)) + " (" + strings.Join(parts, ", ") + ")"
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// report is `mediabench report`: the medians of each step as Markdown
// tables, and the largest number of rooms that held.
func report(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	var b bounds
	fs.Float64Var(&b.LossPct, "loss", 0.1, "a number of rooms holds when its median loss is below this, in percent")
	fs.DurationVar(&b.P99, "p99", 50*time.Millisecond, "… and its median latency p99 below this")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rooms, single, err := readRuns(in)
	if err != nil {
		return err
	}
	if len(single) > 0 {
		fmt.Fprintln(out, "| one room | N subscribers | CPU µs / forwarded packet (median; runs) | loss % | latency p50 / p99 (ms) | load avg |")
		fmt.Fprintln(out, "|---|---|---|---|---|---|")
		for _, s := range single {
			fmt.Fprintf(out, "| %s | %d | %s | %.3f | %.2f / %.2f | %.1f–%.1f |\n", s.mode, s.key,
				medianRuns(s, func(r runLine) float64 { return deref(r.CPUMicros) }, "%.1f"),
				median(s, func(r runLine) float64 { return r.LossPct }),
				median(s, func(r runLine) float64 { return r.LatencyMsP50 }), median(s, func(r runLine) float64 { return r.LatencyMsP99 }),
				minOf(s, func(r runLine) float64 { return r.LoadBefore[0] }), maxOf(s, func(r runLine) float64 { return r.LoadAfter[0] }))
		}
		fmt.Fprintln(out)
	}
	if len(rooms) == 0 {
		return nil
	}
	fmt.Fprintln(out, "| R | loss % (median; runs) | latency p50 / p99 (ms) | jitter (ms) | join p50 / p99 (ms) | forwarded pkt/s | server CPU % of a core | CPU µs / forwarded packet (median; runs) | % of a core per hearing | hearings per server core | load generator CPU % | load avg | holds |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range rooms {
		holds := "no"
		if b.holds(s) {
			holds = "yes"
		}
		perHearing := median(s, func(r runLine) float64 { return deref(r.CPUPctPerHearing) })
		perCore := 0.0
		if perHearing > 0 {
			perCore = 100 / perHearing
		}
		fmt.Fprintf(out, "| %d | %s | %.2f / %.2f | %.2f | %.0f / %.0f | %.0f | %.0f | %s | %.2f | %.1f | %.0f | %.1f–%.1f | %s |\n", s.key,
			medianRuns(s, func(r runLine) float64 { return r.LossPct }, "%.3f"),
			median(s, func(r runLine) float64 { return r.LatencyMsP50 }), median(s, func(r runLine) float64 { return r.LatencyMsP99 }),
			median(s, func(r runLine) float64 { return r.JitterMs }),
			median(s, func(r runLine) float64 { return r.JoinMsP50 }), median(s, func(r runLine) float64 { return r.JoinMsP99 }),
			median(s, func(r runLine) float64 { return r.ForwardedPerSecond }),
			median(s, func(r runLine) float64 { return deref(r.CPUPct) }),
			medianRuns(s, func(r runLine) float64 { return deref(r.CPUMicros) }, "%.1f"),
			perHearing, perCore,
			median(s, func(r runLine) float64 { return r.LoadGenCPUPct }),
			minOf(s, func(r runLine) float64 { return r.LoadBefore[0] }), maxOf(s, func(r runLine) float64 { return r.LoadAfter[0] }),
			holds)
	}
	fmt.Fprintln(out)
	best, ok := largestHolding(rooms, b)
	if !ok {
		fmt.Fprintf(out, "No number of rooms held median loss < %.2f %% and p99 < %v.\n", b.LossPct, b.P99)
		return nil
	}
	fmt.Fprintf(out, "Largest R holding median loss < %.2f %% and p99 < %v (every smaller R measured holding too): R = %d of %d participants.\n",
		b.LossPct, b.P99, best.key, best.runs[0].Participants)
	return nil
}

func minOf(s step, f func(runLine) float64) float64 {
	v := values(s, f)
	sort.Float64s(v)
	return v[0]
}

func maxOf(s step, f func(runLine) float64) float64 {
	v := values(s, f)
	sort.Float64s(v)
	return v[len(v)-1]
}
