package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

func roomLine(rooms, run int, loss, p99 float64, failed int) string {
	return fmt.Sprintf(`{"mode":"rooms","run":%d,"rooms":%d,"participants":6,"participants_failed":%d,"loss_pct":%g,"latency_ms_p50":1,"latency_ms_p99":%g,"server_cpu_us_per_packet":10,"server_cpu_pct":%d,"server_cpu_pct_per_hearing":%g,"load_average_before":[0.5,0,0],"load_average_after":[1.2,0,0],"per_room":[]}`,
		run, rooms, failed, loss, p99, 10*rooms, 10.0)
}

// TestLargestHolding: the largest R whose medians hold, stepping up from
// the smallest and stopping at the first that fails; one bad run of three
// does not fail a step, a failed participant in most runs does.
func TestLargestHolding(t *testing.T) {
	var in strings.Builder
	in.WriteString(`{"mode":"chamber","run":1,"publishers":1,"subscribers":100,"loss_pct":0,"latency_ms_p50":1,"latency_ms_p99":4,"server_cpu_us_per_packet":9.3}` + "\n")
	for run := 1; run <= 3; run++ {
		in.WriteString(roomLine(1, run, 0, 5, 0) + "\n")
		loss := 0.0
		if run == 2 {
			loss = 3 // one bad run
		}
		in.WriteString(roomLine(2, run, loss, 8, 0) + "\n")
		in.WriteString(roomLine(4, run, 0.05, 40, 0) + "\n")
		in.WriteString(roomLine(6, run, 0.2, 60, 0) + "\n") // fails
		in.WriteString(roomLine(8, run, 0, 5, 0) + "\n")    // holds, but above a failure
	}
	rooms, single, err := readRuns(strings.NewReader(in.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 5 || len(single) != 1 || single[0].key != 100 || len(rooms[0].runs) != 3 {
		t.Fatalf("rooms %d, single %d", len(rooms), len(single))
	}
	b := bounds{LossPct: 0.1, P99: 50 * time.Millisecond}
	if best, ok := largestHolding(rooms, b); !ok || best.key != 4 {
		t.Errorf("largest holding = %d, %v; want 4", best.key, ok)
	}
	if best, ok := largestHolding(rooms, bounds{LossPct: 0.1, P99: 30 * time.Millisecond}); !ok || best.key != 2 {
		t.Errorf("with p99 < 30 ms: %d, %v; want 2", best.key, ok)
	}
	failing := step{runs: []runLine{{ParticipantsFailed: 1}, {ParticipantsFailed: 2}, {}}}
	if b.holds(failing) {
		t.Error("a step with failed participants in most runs holds")
	}
	if _, ok := largestHolding([]step{failing}, b); ok {
		t.Error("nothing should hold")
	}

	var out bytes.Buffer
	if err := report(nil, strings.NewReader(in.String()), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"R = 4 of 6", "| chamber | 100 | 9.3 (9.3)", "| 6 | 0.200 (0.200, 0.200, 0.200)", "| 10.0 |", "0.5–1.2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if err := report(nil, strings.NewReader("{not json\n"), &out); err == nil {
		t.Error("malformed line accepted")
	}
}

func TestMedian(t *testing.T) {
	s := step{runs: []runLine{{LossPct: 3}, {LossPct: 1}, {LossPct: 2}, {LossPct: 10}}}
	if m := median(s, func(r runLine) float64 { return r.LossPct }); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	if got := medianRuns(step{runs: s.runs[:3]}, func(r runLine) float64 { return r.LossPct }, "%.0f"); got != "2 (3, 1, 2)" {
		t.Errorf("medianRuns = %q", got)
	}
}
