package main

import (
	"encoding/json"
	"strconv"
	"testing"
)

// TestLoadtestCommand: with a clerk's API token, chamber loadtest creates
// a hearing, invites and admits its participants, carries media through the
// real server and prints the summary as JSON.
func TestLoadtestCommand(t *testing.T) {
	dir := t.TempDir()
	clerk := addStaff(t, dir, nil, "Clerk", "clerk")
	s := startServer(t, dir, nil, "--nat-ip", "127.0.0.1")
	out, errOut, code := chamber(t, dir, "loadtest", "--url", s.URL, "--staff-token", clerk.Token,
		"--publishers", "1", "--subscribers", "3", "--duration", "3s", "--warmup", "1s",
		"--server-pid", strconv.Itoa(s.cmd.Process.Pid), "--json")
	if code != 0 {
		t.Fatalf("loadtest exited %d\n%s\n%s", code, out, errOut)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"publishers", "subscribers", "packets_sent", "packets_received", "loss_pct", "join_ms_p50", "join_ms_p99",
		"latency_ms_p50", "latency_ms_p99", "server_cpu_us_per_packet"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("summary lacks %s: %s", k, out)
		}
	}
	if sum["subscribers"].(float64) != 3 || sum["packets_received"].(float64) == 0 || sum["server_cpu_us_per_packet"] == nil {
		t.Fatalf("summary: %s", out)
	}
	if _, _, code := chamber(t, dir, "loadtest", "--url", s.URL); code != 2 {
		t.Fatalf("loadtest without tokens exited %d, want 2", code)
	}
}
