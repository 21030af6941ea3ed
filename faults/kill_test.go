package faults

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/internal/wait"
)

// testChamberKilled: chamber serve dies (SIGKILL) during a notarial act —
// while it records the act, in the middle of an upload, between storing
// an upload and recording it, during the principal's signature and
// during the seal — and is started again on the same database, store and
// data directory each time. After each restart the act carries on from
// where the record says it is: the recording is recovered and plays, an
// upload whose answer was lost is in the record at most once (a failed
// attempt is an orphan journalled once), the signature is there once or
// can be given again, the seal is there once with its journal archive
// stored once; the act is signed and sealed, and the record checks out.
func testChamberKilled(t *testing.T, cl *cluster) {
	s := newStack(t, stackConfig{pg: cl.pg, minio: cl.minio})
	a := s.newAct("Power of attorney: the server dies")
	s.uploadDraft(a)
	l := newLedger(t)
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"Recording", func(t *testing.T) { s.killRecording(t, a) }},
		{"MidUpload", func(t *testing.T) { s.killMidUpload(t, a, l) }},
		{"UploadStored", func(t *testing.T) { s.killUploadStored(t, a, l) }},
		{"Signature", func(t *testing.T) { s.killSignature(t, a) }},
		{"Seal", func(t *testing.T) { s.killSeal(t, a) }},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) {
			return
		}
	}
	s.checkRecord(t, a.base, a.notary.Token, l)
	s.wholeAct(t)
}

// killRecording records the act with the notary and the principal on
// camera, kills the server once the recording's spool holds media, and
// starts it again: the recording is recovered from the spool and stored
// once (recording.recovered), and it plays.
func (s *stack) killRecording(t *testing.T, a *act) {
	// Real VP8, so that ffmpeg can decode what was recorded.
	opts := &client.PublishOptions{Audio: true, Video: true, VideoBitrate: 150_000, FPS: 10, VP8Frames: realVP8(t)}
	notary := s.joinWith(a.base, a.notary, "notary", opts)
	// Admitted before joining: the waiting room publishes nothing.
	s.call("POST", a.base+"/participants/"+a.principal.ParticipantID+"/admit", a.notary.Token, nil, 200, nil)
	principal := s.joinWith(a.base, a.principal, "principal", opts)
	if !notary.flowing(principal, "camera", 20*time.Second) {
		t.Fatal("the notary does not see the principal")
	}
	s.call("POST", a.base+"/recording", a.notary.Token, map[string]any{"action": "start"}, 200, nil)
	spool := filepath.Join(s.c.DataDir, "spool", "*", "[0-9]*") // 001.webm or 001.mkv, and 001.json
	waitFor(t, time.Minute, "the recording's spool to hold 64 KiB of media", func() bool {
		files, _ := filepath.Glob(spool)
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && filepath.Ext(f) != ".json" && fi.Size() > 64<<10 {
				return true
			}
		}
		return false
	})
	s.kill()
	s.restart()
	s.waitJournal(a.base, a.notary.Token, "recording.recovered", 1)
	s.verifyIdentity(a) // the act goes on
}

// killMidUpload kills the server while an upload's body is still coming:
// the upload is not acknowledged and leaves nothing in the record.
func (s *stack) killMidUpload(t *testing.T, a *act, l *ledger) {
	body, sum := text(24 << 20)
	parts := filepath.Join(s.minio.Dir(), ".minio.sys", "multipart", "*", "*", "*", "part.1")
	before := globSet(parts)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := make(chan answer, 1)
	go func() {
		res <- s.do(ctx, "POST", a.base+"/documents?name=killed-mid-upload.txt", a.notary.Token, pr, "text/plain")
	}()
	go func() {
		pw.Write(body[:20<<20]) // the rest never comes: the server dies first
	}()
	waitFor(t, time.Minute, "MinIO to hold a part of the upload", func() bool { return newIn(globSet(parts), before) })
	s.kill()
	// The client gives up sending the rest, as a browser whose server
	// went away would.
	pw.CloseWithError(io.ErrUnexpectedEOF)
	ans := <-res
	if o := l.noteUpload("killed-mid-upload.txt", sum, ans); o == acked {
		t.Errorf("an upload whose server died half-way was acknowledged: %v", ans)
	}
	s.restart()
	s.afterKill(t, a, l, "after-mid-upload.txt")
}

// killUploadStored kills the server the moment an upload's object is
// complete in the store, before (or while) the server records it.
func (s *stack) killUploadStored(t *testing.T, a *act, l *ledger) {
	body, sum := text(1 << 20)
	objects := filepath.Join(s.minio.Dir(), s.bucket, "sessions", a.id, "documents", "*", "v1.txt", "xl.meta")
	before := globSet(objects)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := make(chan answer, 1)
	go func() {
		res <- s.do(ctx, "POST", a.base+"/documents?name=killed-when-stored.txt", a.notary.Token, body, "text/plain")
	}()
	s.killWhen(t, "the upload to be stored", func() bool { return newIn(globSet(objects), before) })
	ans := <-res
	t.Logf("the upload whose server died when it was stored: %v", ans)
	l.noteUpload("killed-when-stored.txt", sum, ans)
	s.restart()
	s.afterKill(t, a, l, "after-stored-upload.txt")
}

// killSignature kills the server the moment the principal's signed
// version is in the store: after restarting, the act either holds the
// signature (once) or takes it again.
func (s *stack) killSignature(t *testing.T, a *act) {
	objects := filepath.Join(s.minio.Dir(), s.bucket, "sessions", a.id, "documents", a.doc, "v2-*.pdf", "xl.meta")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := make(chan answer, 1)
	go func() {
		res <- s.do(ctx, "POST", "/api/v1/documents/"+a.doc+"/signatures", a.principal.Token, signRequest, "")
	}()
	s.killWhen(t, "the signed version to be stored", func() bool { return len(globSet(objects)) > 0 })
	ans := <-res
	t.Logf("the signature whose server died when it was stored: %v", ans)
	s.restart()
	state := s.actState(a)
	if ans.ok() && state != "signed_by_principals" {
		t.Errorf("the principal's signature was acknowledged, the act is %s", state)
	}
	a.principalSign = state == "signed_by_principals"
	s.finishSigning(t, a)
}

// finishSigning has whoever has not signed sign, and checks that each
// signature is in the record once.
func (s *stack) finishSigning(t *testing.T, a *act) {
	if !a.principalSign {
		s.call("POST", "/api/v1/documents/"+a.doc+"/signatures", a.principal.Token, signRequest, 201, nil)
		a.principalSign = true
	}
	s.call("POST", "/api/v1/documents/"+a.doc+"/signatures", a.notary.Token, map[string]any{"reason": "Notarised", "location": "Tallinn"}, 201, nil)
	a.notarySigned = true
	if n := s.count(a.base, a.notary.Token, "document.signed"); n != 2 {
		t.Errorf("the act's document is signed %d times in the journal, want 2", n)
	}
}

// killSeal kills the server the moment the database holds the act
// sealed, while its journal archive is being stored: after restarting,
// the act is sealed once and its archive is stored and recorded once.
func (s *stack) killSeal(t *testing.T, a *act) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := make(chan answer, 1)
	go func() {
		res <- s.do(ctx, "POST", a.base+"/seal", a.notary.Token, map[string]any{"fee": "EUR 35.00"}, "")
	}()
	s.killWhen(t, "the act to be sealed", func() bool {
		var state string
		s.db.QueryRow(`SELECT state FROM acts WHERE session_id = $1`, a.id).Scan(&state)
		return state == "sealed"
	})
	ans := <-res
	t.Logf("the seal whose server died at its commit: %v", ans)
	s.restart()
	if state := s.actState(a); state != "sealed" {
		t.Fatalf("the act is %s after a seal whose commit was seen", state)
	}
	s.waitJournal(a.base, a.notary.Token, "act.journal_archived", 1)
	for _, action := range []string{"act.sealed", "act.journal_archived"} {
		if n := s.count(a.base, a.notary.Token, action); n != 1 {
			t.Errorf("%s is in the journal %d times", action, n)
		}
	}
}

// killWhen polls cond as closely as it can and kills the server the
// moment it holds.
func (s *stack) killWhen(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !wait.WithinEvery(time.Minute, time.Millisecond, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
	s.kill()
}

// afterKill checks that the restarted server takes an upload.
func (s *stack) afterKill(t *testing.T, a *act, l *ledger, name string) {
	t.Helper()
	body, sum := text(16 << 10)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if ans := l.upload(ctx, s, a.base, a.notary.Token, name, body, sum); !ans.ok() {
		t.Errorf("an upload after the restart: %v", ans)
	}
}

// count is how many entries of action the session's journal holds.
func (s *stack) count(base, token, action string) int {
	n := 0
	for _, e := range s.journal(base, token) {
		if e.Action == action {
			n++
		}
	}
	return n
}
