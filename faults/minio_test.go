package faults

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
)

// testMinIOFaults: MinIO dies (SIGKILL) or hangs (SIGSTOP, then SIGCONT)
// in the middle of a multipart upload and at the moment an upload's object
// is complete in MinIO — of a single PUT and of a multipart upload. Each
// time the upload is not acknowledged (or, killed after MinIO committed
// and answered, acknowledged and in the record with its retention owed
// until MinIO is back), readiness reports the store down, a later upload
// is answered 503 at once, and once MinIO is back the record holds exactly
// what was acknowledged, with the failed attempts journalled as orphans.
// The kills and the freezes each have a MinIO and a server of their own,
// and run in parallel.
func testMinIOKilled(t *testing.T, cl *cluster) { testMinIOFaults(t, cl, "killed") }
func testMinIOFrozen(t *testing.T, cl *cluster) { testMinIOFaults(t, cl, "frozen") }

func testMinIOFaults(t *testing.T, cl *cluster, how string) {
	m := testenv.StartMinIO(t, "")
	breakIt, mend := m.Kill, m.Start
	if how == "frozen" {
		breakIt, mend = m.Freeze, m.Thaw
	}
	s := newStack(t, stackConfig{pg: cl.pg, minio: m})
	h := s.newHearing("Tamm v Kask: the store fails")
	party := s.invite(h.base, "Party Mari Tamm", "party").Token
	l := newLedger(t)
	mf := &minioFault{s: s, m: m, base: h.base, token: party, l: l}
	body, sum := text(64 << 10)
	if a := l.upload(context.Background(), s, h.base, party, "before.txt", body, sum); !a.ok() {
		t.Fatalf("upload before any fault: %v", a)
	}
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"MidUpload", func(t *testing.T) { mf.midUpload(t, how+"-mid-upload.txt", breakIt, mend) }},
		{"AtCompletionOfPut", func(t *testing.T) { mf.atCompletion(t, how+"-at-put.txt", 1<<20, breakIt, mend) }},
		{"AtCompletionOfMultipart", func(t *testing.T) { mf.atCompletion(t, how+"-at-multipart.txt", 12<<20, breakIt, mend) }},
	}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) {
			st.run(t)
			s.checkRecord(t, h.base, s.clerk.token, l)
		}) {
			return
		}
	}
	s.wholeAct(t)
}

type minioFault struct {
	s     *stack
	m     *testenv.MinIOServer
	base  string
	token string
	l     *ledger
}

// midUpload streams a 24 MiB upload, stalls it once MinIO holds two of its
// parts, breaks MinIO, sends the rest, and checks the answer and the
// outage; then mends MinIO.
func (f *minioFault) midUpload(t *testing.T, name string, breakIt, mend func()) {
	body, sum := text(24 << 20)
	parts := filepath.Join(f.m.Dir(), ".minio.sys", "multipart", "*", "*", "*", "part.2")
	before := globSet(parts) // parts of uploads an earlier fault left behind
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := make(chan answer, 1)
	go func() { res <- f.s.do(ctx, "POST", f.base+"/documents?name="+name, f.token, pr, "text/plain") }()
	if _, err := pw.Write(body[:20<<20]); err != nil {
		t.Fatalf("sending the first 20 MiB: %v", err)
	}
	waitFor(t, time.Minute, "MinIO to hold two parts of the upload", func() bool { return newIn(globSet(parts), before) })
	breakIt()
	broken := time.Now()
	go func() {
		pw.Write(body[20<<20:])
		pw.Close()
	}()
	a := <-res
	t.Logf("the upload whose store failed half-way: %v after %v", a, time.Since(broken).Round(time.Millisecond))
	if o := f.l.noteUpload(name, sum, a); o == acked {
		t.Errorf("an upload whose store failed half-way was acknowledged: %v", a)
	}
	f.outage(t, mend)
}

// atCompletion uploads size bytes and breaks MinIO the moment the object
// is complete in MinIO's directory, before Chamber can record it.
func (f *minioFault) atCompletion(t *testing.T, name string, size int, breakIt, mend func()) {
	body, sum := text(size)
	sid := filepath.Base(f.base)
	objects := filepath.Join(f.m.Dir(), f.s.bucket, "sessions", sid, "documents", "*", "v1.txt", "xl.meta")
	before := globSet(objects)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := make(chan answer, 1)
	go func() { res <- f.s.do(ctx, "POST", f.base+"/documents?name="+name, f.token, body, "text/plain") }()
	// Polling MinIO's directory as closely as we can.
	if !wait.WithinEvery(time.Minute, time.Millisecond, func() bool { return newIn(globSet(objects), before) }) {
		t.Fatal("the upload never reached MinIO")
	}
	breakIt()
	broken := time.Now()
	a := <-res
	t.Logf("the upload whose store failed at completion: %v after %v", a, time.Since(broken).Round(time.Millisecond))
	f.l.noteUpload(name, sum, a)
	f.outage(t, mend)
}

// outage checks what the server says while MinIO is broken — readiness
// down, an upload answered 503 — and mends MinIO.
func (f *minioFault) outage(t *testing.T, mend func()) {
	f.s.waitNotReady(30*time.Second, "evidence")
	body, sum := text(4 << 10)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	a := f.l.upload(ctx, f.s, f.base, f.token, "during-outage-"+filepath.Base(t.Name())+".txt", body, sum)
	if a.status != http.StatusServiceUnavailable {
		t.Errorf("an upload while the store is down: %v, want 503", a)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the upload while the store is down took %v to be answered", took)
	}
	mend()
	f.s.waitReady(time.Minute)
	body, sum = text(4 << 10)
	if a := f.l.upload(ctx, f.s, f.base, f.token, "after-"+filepath.Base(t.Name())+".txt", body, sum); !a.ok() {
		t.Errorf("an upload once the store is back: %v", a)
	}
}

// newIn reports whether now holds a name that before did not.
func newIn(now, before map[string]bool) bool {
	for k := range now {
		if !before[k] {
			return true
		}
	}
	return false
}

func globSet(glob string) map[string]bool {
	m, _ := filepath.Glob(glob)
	out := make(map[string]bool, len(m))
	for _, k := range m {
		out[k] = true
	}
	return out
}
