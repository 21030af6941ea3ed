package bundle_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/bundle"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
)

func TestCheckRecord(t *testing.T) {
	sid := uuid.New()
	key := func(name string) string { return "sessions/" + sid.String() + "/" + name }
	journalOf := func(objs ...catalog.Object) []byte {
		entries := []map[string]any{{"seq": 1, "details": map[string]any{"name": "x"}}}
		for i, o := range objs {
			entries = append(entries, map[string]any{"seq": i + 2, "details": map[string]any{"objects": []catalog.Object{o}}})
		}
		// An orphan's entry and a legal hold's list of keys name no
		// object of the record.
		entries = append(entries,
			map[string]any{"seq": 90, "details": map[string]any{"object": map[string]any{"key": key("documents/x/v1.pdf"), "sha256": "bb"}}},
			map[string]any{"seq": 91, "details": map[string]any{"objects": []string{key("documents/x/v1.pdf")}}})
		b, _ := json.Marshal(map[string]any{"entries": entries})
		return b
	}
	doc := catalog.Object{Key: key("documents/a/v1.pdf"), SHA256: "aa", Size: 3}
	still := catalog.Object{Key: key("identity/c/face-1.png"), SHA256: "cc", Size: 4}
	file := func(o catalog.Object, sha string) bundle.File {
		return bundle.File{Path: "evidence/" + strings.TrimPrefix(o.Key, "sessions/"+sid.String()+"/"), SHA256: sha, Size: o.Size, Source: o.Key}
	}
	manifest := func(version int, files ...bundle.File) bundle.Manifest {
		files = append(files, bundle.File{Path: bundle.JournalName, SHA256: "00"})
		return bundle.Manifest{Version: version, SessionID: sid, Files: files}
	}
	orphan := bundle.File{Path: "evidence/documents/x/v1.pdf", SHA256: "bb", Size: 9, Source: key("documents/x/v1.pdf")}
	tests := []struct {
		name     string
		manifest bundle.Manifest
		journal  []byte
		want     []string // paths with problems
	}{
		{"exactly the record", manifest(2, file(doc, "aa"), file(still, "cc")), journalOf(doc, still), nil},
		{"a failed write rides along", manifest(2, file(doc, "aa"), file(still, "cc"), orphan), journalOf(doc, still), []string{orphan.Path}},
		{"a recorded object left out", manifest(2, file(doc, "aa")), journalOf(doc, still), []string{"evidence/identity/c/face-1.png"}},
		{"other bytes than recorded", manifest(2, file(doc, "ab"), file(still, "cc")), journalOf(doc, still), []string{"evidence/documents/a/v1.pdf"}},
		{"no source", manifest(2, bundle.File{Path: "evidence/documents/a/v1.pdf", SHA256: "aa"}), journalOf(), []string{"evidence/documents/a/v1.pdf"}},
		{"unreadable journal", manifest(2, file(doc, "aa")), []byte("{"), []string{bundle.JournalName}},
		{"version 1 promised nothing", manifest(1, file(doc, "aa"), orphan), journalOf(doc), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := bundle.CheckRecord(tt.manifest, bytes.NewReader(tt.journal))
			var got []string
			for _, p := range problems {
				got = append(got, p.Path)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("problems %+v; want them at %v", problems, tt.want)
			}
		})
	}
}

// TestBundleIsTheRecord: a bundle carries the objects of the session's
// record and no other object the store holds under the session (a failed
// upload's bytes); and a signed bundle whose evidence differs from the
// record its journal carries — an extra file, a missing one — does not
// verify, though every file matches the signed manifest. Before, Build
// took everything under the session's prefix and such a bundle verified
// VALID.
func TestBundleIsTheRecord(t *testing.T) {
	ctx := context.Background()
	discard := slog.New(slog.DiscardHandler)
	db := databasetest.Open(t, database.SQLite)
	store, err := evidence.NewLocal(t.TempDir(), discard)
	if err != nil {
		t.Fatal(err)
	}
	authority, err := pki.LoadOrCreateDev(t.TempDir(), "", discard)
	if err != nil {
		t.Fatal(err)
	}
	jnl := journal.New(journal.Config{DB: db, Timestamper: authority.TSA()})
	sid := uuid.New()
	prefix := "sessions/" + sid.String() + "/"

	// One recorded upload, one failed one.
	put := func(key, body string) catalog.Object {
		obj, err := store.Put(ctx, key, strings.NewReader(body), evidence.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return catalog.Of(catalog.Upload, obj)
	}
	recorded := put(prefix+"documents/a/v1.txt", "the contract")
	failed := put(prefix+"documents/b/v1.txt", "an upload whose transaction failed")
	if _, err := jnl.Append(ctx, journal.Record{SessionID: sid, Actor: "system", Action: "document.uploaded",
		Details: map[string]any{"objects": []catalog.Object{recorded}}}); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(authority.Root())
	build := func(objs ...catalog.Object) []byte {
		var b bytes.Buffer
		cfg := bundle.Config{Store: store, Journal: jnl, Signer: authority.Seal().AsSigner(), TSA: authority.TSA(),
			Record: func(context.Context, uuid.UUID) ([]catalog.Object, error) { return objs, nil }}
		if _, err := bundle.Build(ctx, &b, cfg, sid, map[string]any{}, "test"); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	verify := func(z []byte) *bundle.Report {
		rep, err := bundle.Verify(bytes.NewReader(z), int64(len(z)), roots)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}

	z := build(recorded)
	if rep := verify(z); !rep.Valid {
		t.Fatalf("the record's bundle: %+v", rep.Problems)
	}
	if names := zipNames(t, z); !contains(names, "evidence/documents/a/v1.txt") || contains(names, "evidence/documents/b/v1.txt") {
		t.Fatalf("bundle files %v; want the recorded upload and not the failed one", names)
	}

	for name, objs := range map[string][]catalog.Object{"extra": {recorded, failed}, "missing": {}} {
		rep := verify(build(objs...))
		if rep.Valid {
			t.Fatalf("a signed bundle with %s evidence verifies", name)
		}
		want := "evidence/documents/b/v1.txt"
		if name == "missing" {
			want = "evidence/documents/a/v1.txt"
		}
		found := false
		for _, p := range rep.Problems {
			found = found || p.Path == want
		}
		if !found {
			t.Fatalf("bundle with %s evidence: problems %+v do not name %s", name, rep.Problems, want)
		}
	}
}

func zipNames(t *testing.T, z []byte) []string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range zr.File {
		out = append(out, f.Name)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A journal.json cut short after its opening brace is unreadable, not an
// empty record: the streaming walk must reach the closing brace.
func TestTruncatedJournalIsNotEmpty(t *testing.T) {
	m := bundle.Manifest{Version: 2, SessionID: uuid.New()}
	for _, j := range []string{"{", `{"entries":[`, `{"entries":[]`} {
		problems := bundle.CheckRecord(m, strings.NewReader(j))
		if len(problems) != 1 || problems[0].Path != bundle.JournalName {
			t.Errorf("journal %q: problems %+v, want one at %s", j, problems, bundle.JournalName)
		}
	}
}
