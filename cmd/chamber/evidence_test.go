package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/chamber-court/chamber/evidence"
)

// TestEvidenceReconcileCommand: chamber evidence reconcile finds an object
// the store holds under a session that no record names (a failed upload's
// bytes), journals it once, and leaves the recorded evidence alone; the
// journal still verifies.
func TestEvidenceReconcileCommand(t *testing.T) {
	dir := t.TempDir()
	token := addStaff(t, dir, nil, "Clerk Mets", "clerk").Token
	s := startServer(t, dir, nil)
	var sess struct{ ID string }
	call(t, "POST", s.URL+"/api/v1/sessions", token, map[string]any{"kind": "hearing", "title": "Tamm v Kask"}, 201, &sess)
	pdf, err := os.ReadFile("../../documents/pades/testdata/libreoffice-will.pdf")
	if err != nil {
		t.Fatal(err)
	}
	call(t, "POST", s.URL+"/api/v1/sessions/"+sess.ID+"/documents?name=will.pdf", token, pdf, 201, nil)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	store, err := evidence.NewLocal(filepath.Join(dir, "data", "evidence"), nil)
	if err != nil {
		t.Fatal(err)
	}
	orphan := "sessions/" + sess.ID + "/documents/0b5e6d1c-51d4-4b6c-9f39-1c6f7e0b0a11/v1.pdf"
	if _, err := store.Put(context.Background(), orphan, bytes.NewReader([]byte("stored, never recorded")), evidence.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	run := func() map[string]any {
		t.Helper()
		out, errOut, code := chamber(t, dir, "evidence", "reconcile", "--json", "--evidence-orphan-grace", "1ns")
		if code != 0 {
			t.Fatalf("evidence reconcile: code %d\n%s%s", code, out, errOut)
		}
		var rep map[string]any
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("report %q: %v", out, err)
		}
		return rep
	}
	rep := run()
	orphans, _ := rep["orphans"].([]any)
	if len(orphans) != 1 || orphans[0].(map[string]any)["key"] != orphan || rep["recorded"].(float64) != 1 {
		t.Fatalf("first reconcile: %v", rep)
	}
	rep = run()
	if orphans, _ := rep["orphans"].([]any); len(orphans) != 0 || rep["known_orphans"].(float64) != 1 {
		t.Fatalf("second reconcile: %v", rep)
	}
	if out, errOut, code := chamber(t, dir, "journal", "verify"); code != 0 {
		t.Fatalf("journal verify after reconciling: %s%s", out, errOut)
	}
}
