package faults

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/internal/wait"
)

// The soak's settings, from the environment (scripts/soak sets them).
const (
	envSoak         = "CHAMBER_SOAK_DURATION" // how long to churn; unset: no soak
	envSoakInterval = "CHAMBER_SOAK_INTERVAL" // how often to sample (default 10s)
	envSoakWarmup   = "CHAMBER_SOAK_WARMUP"   // samples before this are not judged (default a fifth of the duration)
	envSoakCSV      = "CHAMBER_SOAK_CSV"      // where the samples go (default soak.csv in the test's directory)
	envSoakHearings = "CHAMBER_SOAK_HEARINGS" // hearings churning at once (default 2)
)

// Bounds of growth after warm-up: the peak of the last third of the
// judged samples against the peak of the first third. The figures swing
// with the churn's phase (a sample with every client of both hearings
// connected has four times the goroutines of one between hearings), so
// the peaks — everyone connected — are what is compared; a leak raises
// them. Growth within the bounds is noise (the heap breathing, buffers
// warming); beyond them, a leak.
const (
	soakRSSGrowth       = 0.25     // fraction
	soakRSSSlack        = 24 << 20 // bytes, whatever the fraction says
	soakGoroutineGrowth = 0.10
	soakGoroutineSlack  = 25
	soakFDGrowth        = 0.10
	soakFDSlack         = 10
)

// TestSoak churns hearings against the real binary (built without the
// race detector) on PostgreSQL and MinIO for CHAMBER_SOAK_DURATION:
// hearings are created, the judge and two parties join with media and
// leave, documents are uploaded, chat and moderation go on, hearings
// close. It samples the server's resident memory, heap, goroutines (the
// go_goroutines metric) and open file descriptors into a CSV, and fails
// when any of them grows beyond its bound after warm-up, or when, the
// churn over and every client gone, goroutines and descriptors do not
// come back to what the idle server had.
func TestSoak(t *testing.T) {
	total, err := time.ParseDuration(os.Getenv(envSoak))
	if err != nil || total <= 0 {
		t.Skipf("the soak runs only with %s set (scripts/soak)", envSoak)
	}
	interval := envDuration(t, envSoakInterval, 10*time.Second)
	warmup := envDuration(t, envSoakWarmup, total/5)
	hearings := 2
	if v := os.Getenv(envSoakHearings); v != "" {
		if hearings, err = strconv.Atoi(v); err != nil || hearings < 1 {
			t.Fatalf("%s=%q", envSoakHearings, v)
		}
	}
	csvPath := os.Getenv(envSoakCSV)
	if csvPath == "" {
		csvPath = filepath.Join(t.TempDir(), "soak.csv")
	}

	cl := startCluster(t)
	s := newStack(t, stackConfig{pg: cl.pg, minio: cl.minio, args: []string{"--log-level", "warn"}})
	sm, err := newSampler(s, csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer sm.close()
	http.DefaultClient.CloseIdleConnections()
	idle := sm.sample()
	t.Logf("idle server: %s", idle)

	ctx, cancel := context.WithTimeout(context.Background(), total)
	defer cancel()
	var wg sync.WaitGroup
	var churnErr atomic.Pointer[error]
	for i := range hearings {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				if err := s.churn(ctx, sm, fmt.Sprintf("Soak %d-%d", i, n)); err != nil && ctx.Err() == nil {
					churnErr.CompareAndSwap(nil, &err)
					cancel()
					return
				}
			}
		})
	}
	start := time.Now()
	sm.start = start
	var judged []sample
	tick := time.NewTicker(interval)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			smp := sm.sample()
			if time.Since(start) >= warmup {
				judged = append(judged, smp)
			}
		}
	}
	tick.Stop()
	wg.Wait()
	if p := churnErr.Load(); p != nil {
		t.Fatalf("the churn failed: %v", *p)
	}
	t.Logf("churned %d hearings, %d joins, %d uploads, %d chat messages in %v; samples in %s",
		sm.hearings.Load(), sm.joins.Load(), sm.uploads.Load(), sm.chats.Load(), time.Since(start).Round(time.Second), csvPath)
	judge(t, judged)
	s.settles(t, sm, idle)
}

// churn is one hearing from creation to close.
func (s *stack) churn(ctx context.Context, sm *sampler, title string) error {
	var sess struct{ ID string }
	if err := s.soakCall(ctx, "POST", "/api/v1/sessions", s.clerk.token, map[string]any{"kind": "hearing", "title": title}, &sess); err != nil {
		return err
	}
	base := "/api/v1/sessions/" + sess.ID
	sm.hearings.Add(1)
	if err := s.soakCall(ctx, "POST", base+"/assignments", s.clerk.token, map[string]any{"staff_id": s.judge.id}, nil); err != nil {
		return err
	}
	var e struct {
		Participant struct{ ID string } `json:"participant"`
		Ticket      string              `json:"ticket"`
	}
	if err := s.soakCall(ctx, "POST", base+"/enter", s.judge.token, nil, &e); err != nil {
		return err
	}
	judge := invitation{ParticipantID: e.Participant.ID, Token: s.judge.token, ticket: e.Ticket}
	var parties [2]invitation
	for i := range parties {
		if err := s.soakCall(ctx, "POST", base+"/invitations", s.clerk.token, map[string]any{"name": fmt.Sprintf("Party %d", i), "role": "party"}, &parties[i]); err != nil {
			return err
		}
	}
	media := &client.PublishOptions{Audio: true, Video: true, VideoBitrate: 150_000, FPS: 10}
	var peers []*peer
	defer func() {
		for _, p := range peers {
			p.c.Close()
		}
	}()
	for i, who := range []struct {
		inv  invitation
		name string
		opts *client.PublishOptions
	}{{judge, "judge", media}, {parties[0], "party 0", media}, {parties[1], "party 1", &client.PublishOptions{Audio: true}}} {
		if i > 0 { // admitted before joining: the waiting room publishes nothing
			if err := s.soakCall(ctx, "POST", base+"/participants/"+who.inv.ParticipantID+"/admit", judge.Token, nil, nil); err != nil {
				return err
			}
		}
		p, err := s.connect(base, who.inv, who.name, who.opts)
		if err != nil {
			return err
		}
		sm.joins.Add(1)
		peers = append(peers, p)
	}
	if !peers[1].flowing(peers[0], "camera", 30*time.Second) || !peers[0].flowing(peers[2], "microphone", 30*time.Second) {
		return errors.New(title + ": media does not flow")
	}
	body, _ := text(64 << 10)
	if err := s.soakCall(ctx, "POST", base+"/documents?name=exhibit.txt", parties[0].Token, body, nil); err != nil {
		return err
	}
	sm.uploads.Add(1)
	for i := range 3 {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := peers[0].chat(cctx, fmt.Sprintf("%s: message %d", title, i))
		cancel()
		if err != nil {
			return fmt.Errorf("%s: chat: %w", title, err)
		}
		sm.chats.Add(1)
	}
	for _, muted := range []bool{true, false} {
		if err := s.soakCall(ctx, "POST", base+"/participants/"+parties[1].ParticipantID+"/mute", judge.Token, map[string]any{"audio": muted}, nil); err != nil {
			return err
		}
	}
	// The parties leave, then the court closes the hearing.
	for _, p := range peers[1:] {
		p.c.Close()
	}
	return s.soakCall(ctx, "POST", base+"/close", s.clerk.token, nil, nil)
}

// soakCall makes a request that must succeed (2xx).
func (s *stack) soakCall(ctx context.Context, method, path, token string, body, out any) error {
	ct := ""
	if _, raw := body.([]byte); raw {
		ct = "text/plain"
	}
	a := s.do(ctx, method, path, token, body, ct)
	if !a.ok() {
		return fmt.Errorf("%s %s: %v", method, path, a)
	}
	if out != nil {
		if err := json.Unmarshal(a.body, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// sample is one measurement of the server process.
type sample struct {
	at         time.Duration
	rss, heap  float64 // bytes
	goroutines float64
	fds        float64
}

func (s sample) String() string {
	return fmt.Sprintf("RSS %.1f MiB, heap in use %.1f MiB, %v goroutines, %v open files",
		s.rss/(1<<20), s.heap/(1<<20), s.goroutines, s.fds)
}

// sampler measures the server and writes every sample to a CSV file.
type sampler struct {
	s     *stack
	f     *os.File
	w     *csv.Writer
	start time.Time // of the churn

	hearings, joins, uploads, chats atomic.Int64
}

func newSampler(s *stack, path string) (*sampler, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"seconds", "rss_bytes", "heap_inuse_bytes", "goroutines", "open_fds", "hearings", "joins", "uploads", "chats"})
	return &sampler{s: s, f: f, w: w, start: time.Now()}, nil
}

// sample measures the server now.
func (sm *sampler) sample() sample {
	t := sm.s.t
	t.Helper()
	at := time.Since(sm.start)
	pid := sm.s.c.PID()
	smp := sample{at: at, rss: rss(t, pid), fds: openFiles(t, pid)}
	var err error
	ctx := context.Background()
	if smp.goroutines, err = sm.s.c.Metric(ctx, "go_goroutines"); err != nil {
		t.Fatal(err)
	}
	if smp.heap, err = sm.s.c.Metric(ctx, "go_memstats_heap_inuse_bytes"); err != nil {
		t.Fatal(err)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	sm.w.Write([]string{f(at.Seconds()), f(smp.rss), f(smp.heap), f(smp.goroutines), f(smp.fds),
		strconv.FormatInt(sm.hearings.Load(), 10), strconv.FormatInt(sm.joins.Load(), 10),
		strconv.FormatInt(sm.uploads.Load(), 10), strconv.FormatInt(sm.chats.Load(), 10)})
	sm.w.Flush()
	return smp
}

func (sm *sampler) close() {
	sm.w.Flush()
	sm.f.Close()
}

// rss reads a process's resident set size from /proc.
func rss(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				t.Fatalf("VmRSS: %q: %v", v, err)
			}
			return kb * 1024
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// openFiles counts a process's open file descriptors.
func openFiles(t *testing.T, pid int) float64 {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return float64(len(fds))
}

// judge compares the first third of the samples after warm-up with the
// last third.
func judge(t *testing.T, judged []sample) {
	t.Helper()
	if len(judged) < 6 {
		t.Fatalf("%d samples after warm-up: too few to judge (a longer soak, or a shorter interval)", len(judged))
	}
	third := len(judged) / 3
	first, last := judged[:third], judged[len(judged)-third:]
	for _, m := range []struct {
		name          string
		of            func(sample) float64
		growth, slack float64
	}{
		{"resident memory (bytes)", func(s sample) float64 { return s.rss }, soakRSSGrowth, soakRSSSlack},
		{"goroutines", func(s sample) float64 { return s.goroutines }, soakGoroutineGrowth, soakGoroutineSlack},
		{"open files", func(s sample) float64 { return s.fds }, soakFDGrowth, soakFDSlack},
	} {
		a, b := peak(first, m.of), peak(last, m.of)
		bound := a*(1+m.growth) + m.slack
		t.Logf("%s: peak %.0f after warm-up, %.0f at the end (bound %.0f)", m.name, a, b, bound)
		if b > bound {
			t.Errorf("%s grew from %.0f to %.0f, beyond %.0f", m.name, a, b, bound)
		}
	}
}

func peak(ss []sample, of func(sample) float64) float64 {
	var p float64
	for _, s := range ss {
		p = max(p, of(s))
	}
	return p
}

// settles waits, once the churn is over and every client gone, for the
// server's goroutines and open files to come back to the idle server's.
func (s *stack) settles(t *testing.T, sm *sampler, idle sample) {
	t.Helper()
	http.DefaultClient.CloseIdleConnections()
	var last sample
	settled := wait.WithinEvery(time.Minute, time.Second, func() bool {
		last = sm.sample()
		return last.goroutines <= idle.goroutines+5 && last.fds <= idle.fds+3
	})
	if !settled {
		t.Fatalf("a minute after the churn the server still has %s; idle it had %s", last, idle)
	}
	t.Logf("after the churn: %s", last)
}

// envDuration reads a duration from the environment.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}
