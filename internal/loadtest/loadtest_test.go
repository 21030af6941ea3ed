package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/signaling"
)

type fixedTokens map[string]bool

func (f fixedTokens) Authenticate(_ context.Context, session uuid.UUID, tok string) (signaling.Identity, error) {
	if !f[tok] {
		return signaling.Identity{}, fault.Unauthenticated
	}
	return signaling.Identity{SessionID: session, ParticipantID: uuid.New(), Name: tok}, nil
}

// startSignaling runs the signalling server in this process (the load
// generator needs its handler, not the whole binary) and returns its URL
// and this process's PID, whose CPU the run measures.
func startSignaling(t *testing.T) (string, int) {
	t.Helper()
	s, err := signaling.New(signaling.Config{Authenticator: fixedTokens{"good": true}, MediaUDPAddr: "127.0.0.1:0", MediaTCPAddr: "off"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/sessions/{id}/signal", s.HandleSignal)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() { hs.Close(); _ = s.Close() })
	return hs.URL, os.Getpid()
}

func TestRunReportsTheSummary(t *testing.T) {
	url, pid := startSignaling(t)
	dir := t.TempDir()
	toks := filepath.Join(dir, "tokens")
	if err := os.WriteFile(toks, []byte("# tokens\ngood\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{URL: url, SessionID: uuid.New(), TokenFile: toks, Publishers: 1, Subscribers: 3,
		Duration: 3 * time.Second, Warmup: time.Second, VideoBitrate: 500_000, ServerPID: pid}
	var progress bytes.Buffer
	sum, err := Run(context.Background(), cfg, &progress)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	if sum.SubscribersFailed != 0 || sum.PacketsReceived < 3*100 || sum.PacketsSent < 100 {
		t.Errorf("summary %+v", sum)
	}
	if sum.LossPct > 1 || sum.JoinMsP50 <= 0 || sum.LatencyMsP99 <= 0 || sum.LatencyMsP99 < sum.LatencyMsP50 || sum.JitterMs <= 0 || sum.LoadGeneratorCPUPct <= 0 {
		t.Errorf("summary %+v", sum)
	}
	if sum.ServerCPUMicrosPerPacket == nil || *sum.ServerCPUMicrosPerPacket <= 0 {
		t.Errorf("no server CPU figure")
	}
	var js bytes.Buffer
	if err := Print(&js, sum, true); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"publishers", "subscribers", "packets_sent", "packets_received", "loss_pct", "join_ms_p50", "join_ms_p99", "latency_ms_p50", "latency_ms_p99", "server_cpu_us_per_packet", "jitter_ms", "load_generator_cpu_pct", "load_average_before"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON summary lacks %q", k)
		}
	}
	var table bytes.Buffer
	if err := Print(&table, sum, false); err != nil || !strings.Contains(table.String(), "forwarding latency") {
		t.Errorf("table: %v\n%s", err, table.String())
	}
	if !strings.Contains(progress.String(), "pkt/s") {
		t.Errorf("no progress lines:\n%s", progress.String())
	}
}

func TestRunFailsWhenASubscriberCannotJoin(t *testing.T) {
	url, _ := startSignaling(t)
	toks := filepath.Join(t.TempDir(), "tokens")
	// Participant 0 publishes, 1 joins, 2 has a bad token.
	if err := os.WriteFile(toks, []byte("good\ngood\nbad\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{URL: url, SessionID: uuid.New(), TokenFile: toks, Publishers: 1, Subscribers: 2,
		Duration: time.Second, Warmup: 500 * time.Millisecond, VideoBitrate: 300_000}
	sum, err := Run(context.Background(), cfg, nil)
	if !errors.Is(err, ErrSubscribersFailed) {
		t.Fatalf("err = %v", err)
	}
	if sum.SubscribersFailed != 1 {
		t.Errorf("failed = %d", sum.SubscribersFailed)
	}
	b, _ := json.Marshal(sum)
	if !strings.Contains(string(b), `"server_cpu_us_per_packet":null`) {
		t.Errorf("CPU must be null without a server PID: %s", b)
	}
}

func TestHelpers(t *testing.T) {
	for in, want := range map[string]int{"1.5M": 1_500_000, "800k": 800_000, "2000000": 2_000_000} {
		if got, err := ParseBitrate(in); err != nil || got != want {
			t.Errorf("ParseBitrate(%q) = %d, %v", in, got, err)
		}
	}
	if _, err := ParseBitrate("fast"); err == nil {
		t.Error("ParseBitrate accepted nonsense")
	}
	d, ok := parseStat("1234 (my (odd) proc) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0")
	if !ok || d != 3*time.Second {
		t.Errorf("parseStat = %v, %v", d, ok)
	}
	u, _, err := signalURL("https://court.example/base/", uuid.Nil)
	if err != nil || u != "wss://court.example/base/api/v1/sessions/00000000-0000-0000-0000-000000000000/signal" {
		t.Errorf("signalURL = %q, %v", u, err)
	}
}
