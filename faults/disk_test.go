package faults

import (
	"context"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/testenv"
)

// testDiskFull: the local evidence store lives on a small file system
// (a 64 MiB tmpfs), which fills up during a notarial act. An upload
// bigger than the space left fails half-way with 507 and leaves no
// partial file behind; with the disk full readiness reports the store
// down and uploads and signatures are answered 507 and change nothing;
// once space is freed the server is ready again by itself, the act is
// signed and sealed, and the record holds exactly what was acknowledged.
func testDiskFull(t *testing.T, cl *cluster) {
	small := testenv.SmallFS(t, 64<<20)
	store := filepath.Join(small, "evidence")
	if err := os.Mkdir(store, 0o750); err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackConfig{pg: cl.pg, evidenceDir: store})
	a := s.newAct("Power of attorney: the disk fills up")
	s.uploadDraft(a)
	s.verifyIdentity(a)
	l := newLedger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	body, sum := text(64 << 10)
	if ans := l.upload(ctx, s, a.base, a.notary.Token, "before.txt", body, sum); !ans.ok() {
		t.Fatalf("an upload before the disk fills: %v", ans)
	}

	// Nearly full: 2 MiB left, an upload of 4 MiB.
	reserve := filepath.Join(small, "reserve")
	if err := os.WriteFile(reserve, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	freeFirst := testenv.Fill(t, small)
	if err := os.Remove(reserve); err != nil {
		t.Fatal(err)
	}
	body, sum = text(4 << 20)
	if ans := l.upload(ctx, s, a.base, a.notary.Token, "too-big-for-the-disk.txt", body, sum); ans.status != http.StatusInsufficientStorage {
		t.Errorf("an upload bigger than the space left: %v, want 507", ans)
	}
	noPartialFiles(t, store)

	// Full.
	freeRest := testenv.Fill(t, small)
	s.waitNotReady(30*time.Second, "evidence")
	body, sum = text(16 << 10)
	if ans := l.upload(ctx, s, a.base, a.notary.Token, "disk-full.txt", body, sum); ans.status != http.StatusInsufficientStorage {
		t.Errorf("an upload with the disk full: %v, want 507", ans)
	}
	if ans := s.do(ctx, "POST", "/api/v1/documents/"+a.doc+"/signatures", a.principal.Token, signRequest, ""); ans.status != http.StatusInsufficientStorage {
		t.Errorf("a signature with the disk full: %v, want 507", ans)
	}
	if state := s.actState(a); state != "identity_verified" {
		t.Errorf("after a signature refused for want of disk the act is %s", state)
	}
	noPartialFiles(t, store)

	freeRest()
	freeFirst()
	s.waitReady(time.Minute)
	body, sum = text(64 << 10)
	if ans := l.upload(ctx, s, a.base, a.notary.Token, "after.txt", body, sum); !ans.ok() {
		t.Errorf("an upload once the disk has room: %v", ans)
	}
	s.finishAct(a)
	s.waitJournal(a.base, a.notary.Token, "act.journal_archived", 1)
	s.checkRecord(t, a.base, a.notary.Token, l)
	s.wholeAct(t)
}

// noPartialFiles fails the test if a write left a temporary file in the
// local store's directory.
func noPartialFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".tmp") && !strings.HasPrefix(d.Name(), ".probe-") {
			t.Errorf("a failed write left %s behind", path)
		}
		return nil
	})
}
