package main

import (
	"encoding/json"
	"strconv"
	"strings"
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
		"--server-pid", strconv.Itoa(s.PID()), "--json")
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

// TestLoadtestRooms: with a clerk's staff token, chamber loadtest --rooms
// creates the hearings, invites and admits a party, counsel and witness
// in each, and every one of them receives the other two's audio and video
// through the real server.
func TestLoadtestRooms(t *testing.T) {
	dir := t.TempDir()
	clerk := addStaff(t, dir, nil, "Clerk", "clerk").Token
	s := startServer(t, dir, nil, "--nat-ip", "127.0.0.1")
	out, errOut, code := chamber(t, dir, "loadtest", "--url", s.URL, "--staff-token", clerk,
		"--rooms", "2", "--participants", "3", "--duration", "2s", "--warmup", "1s", "--video-bitrate", "300k",
		"--server-pid", strconv.Itoa(s.PID()), "--json")
	if code != 0 {
		t.Fatalf("loadtest exited %d\n%s\n%s", code, out, errOut)
	}
	var sum struct {
		Rooms              int      `json:"rooms"`
		ParticipantsFailed int      `json:"participants_failed"`
		CPUPerHearing      *float64 `json:"server_cpu_pct_per_hearing"`
		PerRoom            []struct {
			SessionID string `json:"session_id"`
			Members   []struct {
				Role      string   `json:"role"`
				AudioFrom []string `json:"audio_from"`
				VideoFrom []string `json:"video_from"`
			} `json:"members"`
		} `json:"per_room"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, out)
	}
	if sum.Rooms != 2 || sum.ParticipantsFailed != 0 || len(sum.PerRoom) != 2 || sum.CPUPerHearing == nil || sum.PerRoom[0].SessionID == sum.PerRoom[1].SessionID {
		t.Fatalf("summary: %s", out)
	}
	for _, r := range sum.PerRoom {
		var roles []string
		for _, m := range r.Members {
			roles = append(roles, m.Role)
			if len(m.AudioFrom) != 2 || len(m.VideoFrom) != 2 {
				t.Errorf("hearing %s: a %s received audio from %v and video from %v", r.SessionID, m.Role, m.AudioFrom, m.VideoFrom)
			}
		}
		if strings.Join(roles, ",") != "party,counsel,witness" {
			t.Errorf("hearing %s: roles %v", r.SessionID, roles)
		}
	}
	for _, args := range [][]string{
		{"--rooms", "2"}, // no staff token
		{"--rooms", "2", "--staff-token", "x", "--token-file", "t"},
		{"--rooms", "2", "--staff-token", "x", "--participants", "1"},
	} {
		if _, _, code := chamber(t, dir, append([]string{"loadtest", "--url", s.URL}, args...)...); code != 2 {
			t.Errorf("loadtest %v exited %d, want 2", args, code)
		}
	}
}
