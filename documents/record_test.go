package documents_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/evidence/evidencetest"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
	"github.com/chamber-court/chamber/signers/signerstest"
)

var discard = slog.New(slog.DiscardHandler)

// fixture is a document service over a real database and store, with one
// hearing and a database that a test can make fail.
type fixture struct {
	db    *database.DB
	store evidence.Store
	jnl   *journal.Journal
	svc   *documents.Service
	sess  documents.Session
	fail  func(call func() error) error
	judge documents.Caller
	// tsaDown makes the signing TSA answer 503 (Retry-After: 3).
	tsaDown *atomic.Bool
}

// eachBackend runs f on SQLite with a local store and on PostgreSQL with
// MinIO, each with its own way of failing (see databasetest.Failing).
func eachBackend(t *testing.T, f func(t *testing.T, fx *fixture)) {
	for _, b := range []struct {
		name   string
		engine database.Engine
		store  func(t testing.TB) evidence.Store
	}{
		{"sqlite+local", database.SQLite, func(t testing.TB) evidence.Store { return evidencetest.Local(t) }},
		{"postgres+minio", database.Postgres, func(t testing.TB) evidence.Store { return evidencetest.MinIO(t) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			db, fail := databasetest.Failing(t, b.engine)
			f(t, newFixture(t, db, b.store(t), fail))
		})
	}
}

func newFixture(t *testing.T, db *database.DB, store evidence.Store, fail func(func() error) error) *fixture {
	t.Helper()
	authority, err := pki.LoadOrCreateDev(t.TempDir(), "", discard)
	if err != nil {
		t.Fatal(err)
	}
	tsa := authority.TSA()
	jnl := journal.New(journal.Config{DB: db, Timestamper: tsa})
	// Signatures are stamped over HTTP, as with --tsa-url, by a TSA a
	// test can take down.
	var tsaDown atomic.Bool
	tsaServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tsaDown.Load() {
			w.Header().Set("Retry-After", "3")
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		tsa.ServeHTTP(w, r)
	}))
	t.Cleanup(tsaServer.Close)
	svc := documents.New(documents.Config{DB: db, Journal: jnl, Store: store, Logger: discard, MaxUpload: 8 << 20,
		Retention: time.Hour, TempDir: t.TempDir(),
		Signing: &documents.Signing{Signers: signerstest.AutoIssue(t, db, jnl, authority), Principals: authority, Check: authority.CheckCertificate,
			TSA: &pki.TSAClient{URL: tsaServer.URL}, Certificates: []*x509.Certificate{authority.Root()}}})
	staff, judge, sid := uuid.NewString(), uuid.NewString(), uuid.New()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `INSERT INTO staff (id, name, role, token_hash, created_at) VALUES ($1, 'Clerk', 'clerk', $2, 0), ($3, 'Judge Saar', 'judge', $4, 0)`,
		staff, uuid.NewString(), judge, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO sessions (id, kind, title, state, created_by, created_at) VALUES ($1, 'hearing', 'Tamm v Kask', 'open', $2, 0)`,
		sid.String(), staff); err != nil {
		t.Fatal(err)
	}
	return &fixture{db: db, store: store, jnl: jnl, svc: svc, fail: fail, tsaDown: &tsaDown,
		sess:  documents.Session{ID: sid, Kind: access.Hearing, Title: "Tamm v Kask"},
		judge: documents.Caller{Actor: "staff:" + judge, Name: "Judge Saar", Role: access.Judge}}
}

func party(name string) documents.Caller {
	id := uuid.New()
	return documents.Caller{Actor: "participant:" + id.String(), Name: name, Role: access.Party, ParticipantID: id}
}

func samplePDF(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("pades/testdata/libreoffice-will.pdf")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (fx *fixture) upload(t *testing.T, c documents.Caller, name string, body []byte) (documents.Document, bool, error) {
	t.Helper()
	return fx.svc.Upload(t.Context(), c, fx.sess, documents.Upload{Name: name, ContentType: documents.TypePDF, Size: int64(len(body)), Body: bytes.NewReader(body)})
}

// judgment uploads the judge's judgment and returns it with the call that
// signs it as the judge.
func (fx *fixture) judgment(t *testing.T) (documents.Document, func() error) {
	t.Helper()
	doc, _, err := fx.upload(t, fx.judge, "judgment.pdf", samplePDF(t))
	if err != nil {
		t.Fatal(err)
	}
	return doc, func() error {
		_, _, err := fx.svc.Sign(t.Context(), fx.judge, fx.sess, doc.ID, documents.SignRequest{Reason: "Judgment", Location: "Tallinn"}, nil)
		return err
	}
}

// stored lists the session's objects as the store holds them.
func (fx *fixture) stored(t *testing.T) []evidence.Object {
	t.Helper()
	objs, err := fx.store.List(t.Context(), "sessions/"+fx.sess.ID.String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// recorded lists the session's objects as the record names them.
func (fx *fixture) recorded(t *testing.T) []catalog.Object {
	t.Helper()
	objs, err := catalog.Session(t.Context(), fx.db, fx.sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// sameObjects fails unless the store holds exactly the objects the record
// names, with their SHA-256s, every one of them under retention.
func (fx *fixture) sameObjects(t *testing.T) {
	t.Helper()
	stored, recorded := fx.stored(t), fx.recorded(t)
	if len(stored) != len(recorded) {
		t.Fatalf("the store holds %d objects, the record names %d: %v vs %v", len(stored), len(recorded), stored, recorded)
	}
	for i, o := range stored {
		if o.Key != recorded[i].Key || o.SHA256 != recorded[i].SHA256 {
			t.Fatalf("stored %s (%s), recorded %s (%s)", o.Key, o.SHA256, recorded[i].Key, recorded[i].SHA256)
		}
		if o.RetainUntil.IsZero() {
			t.Errorf("%s is part of the record but not under retention", o.Key)
		}
	}
}

// TestFailedSignatureDoesNotBlockTheDocument: a signature whose
// transaction fails (PostgreSQL: the backend terminated while it waited
// for the journal; SQLite: a full disk) leaves nothing in the record and
// nothing under retention, and the next signature succeeds. Before, the
// signed file was stored under v2.pdf with COMPLIANCE retention ahead of
// the transaction, so every later signature hit the write-once key: the
// document could never be signed again.
func TestFailedSignatureDoesNotBlockTheDocument(t *testing.T) {
	eachBackend(t, func(t *testing.T, fx *fixture) {
		doc, sign := fx.judgment(t)
		err := fx.fail(sign)
		if k := fault.KindOf(err); k != fault.Unavailable && k != fault.InsufficientStorage {
			t.Fatalf("signature during the failure: %v (kind %s); want unavailable or insufficient_storage", err, k)
		}
		if d, err := fx.svc.Get(t.Context(), doc.ID); err != nil || d.Version != 1 || d.Signatures != 0 {
			t.Fatalf("after the failed signature: %+v, %v", d, err)
		}
		fx.sameObjects(t)

		if err := sign(); err != nil {
			t.Fatalf("the next signature: %v", err)
		}
		d, err := fx.svc.Get(t.Context(), doc.ID)
		if err != nil || d.Version != 2 || d.Signatures != 1 {
			t.Fatalf("after signing again: %+v, %v", d, err)
		}
		fx.sameObjects(t)
	})
}

// TestSignatureWhileTheTSAIsDown: a signature while the timestamp
// authority is down is an outage — unavailable (503) with the TSA's
// Retry-After — and not Chamber's failure (it was 500 internal): nothing
// is signed, stored or journalled, and the same signature succeeds once
// the TSA is back.
func TestSignatureWhileTheTSAIsDown(t *testing.T) {
	eachBackend(t, func(t *testing.T, fx *fixture) {
		doc, sign := fx.judgment(t)
		entries := func() []journal.Entry {
			es, err := fx.jnl.Session(t.Context(), fx.sess.ID, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			return es
		}
		before := len(entries())
		fx.tsaDown.Store(true)
		err := sign()
		var fe *fault.Error
		if !errors.As(err, &fe) || fe.Kind != fault.Unavailable || fe.RetryAfter != 3*time.Second {
			t.Fatalf("signature with the TSA down: %v (kind %s); want unavailable, retry after 3 s", err, fault.KindOf(err))
		}
		if d, err := fx.svc.Get(t.Context(), doc.ID); err != nil || d.Version != 1 || d.Signatures != 0 {
			t.Fatalf("after the refused signature: %+v, %v", d, err)
		}
		if after := entries(); len(after) != before {
			t.Fatalf("the session's journal grew from %d to %d entries: %+v", before, len(after), after[len(after)-1])
		}
		fx.sameObjects(t)

		fx.tsaDown.Store(false)
		if err := sign(); err != nil {
			t.Fatalf("the signature once the TSA is back: %v", err)
		}
		if d, err := fx.svc.Get(t.Context(), doc.ID); err != nil || d.Version != 2 || d.Signatures != 1 {
			t.Fatalf("after signing again: %+v, %v", d, err)
		}
		fx.sameObjects(t)
	})
}

// TestFailedUploadLeavesNoEvidence: an upload whose transaction fails is
// answered with the outage, and its bytes are not evidence: not in the
// record, and not left in the store (before, they stayed there, under
// retention, and every bundle of the session carried them).
func TestFailedUploadLeavesNoEvidence(t *testing.T) {
	eachBackend(t, func(t *testing.T, fx *fixture) {
		err := fx.fail(func() error {
			_, _, err := fx.upload(t, party("Mari Tamm"), "contract.pdf", samplePDF(t))
			return err
		})
		if k := fault.KindOf(err); k != fault.Unavailable && k != fault.InsufficientStorage {
			t.Fatalf("upload during the failure: %v (kind %s); want unavailable or insufficient_storage", err, k)
		}
		if list, err := fx.svc.List(t.Context(), documents.Caller{Role: access.Admin}, fx.sess.ID); err != nil || len(list) != 0 {
			t.Fatalf("documents after the failed upload: %v, %v", list, err)
		}
		fx.sameObjects(t)
		if n := len(fx.stored(t)); n != 0 {
			t.Fatalf("the failed upload left %d objects in the store", n)
		}
	})
}

// TestConcurrentIdenticalUploads: ten identical uploads by one uploader at
// once make one document; every caller gets its ID, and the store holds
// one object, the one the record names (before: one document and nine
// retained orphan copies, all in the bundle).
func TestConcurrentIdenticalUploads(t *testing.T) {
	eachBackend(t, func(t *testing.T, fx *fixture) {
		pdf := samplePDF(t)
		p := party("Mari Tamm")
		const n = 10
		var (
			wg    sync.WaitGroup
			ids   = make([]uuid.UUID, n)
			dups  = make([]bool, n)
			errs  = make([]error, n)
			start = make(chan struct{})
		)
		for i := range n {
			wg.Go(func() {
				<-start
				var d documents.Document
				d, dups[i], errs[i] = fx.upload(t, p, "contract.pdf", pdf)
				ids[i] = d.ID
			})
		}
		close(start)
		wg.Wait()
		fresh := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("upload %d: %v", i, errs[i])
			}
			if ids[i] != ids[0] {
				t.Fatalf("upload %d made document %s, upload 0 made %s", i, ids[i], ids[0])
			}
			if !dups[i] {
				fresh++
			}
		}
		if fresh != 1 {
			t.Fatalf("%d uploads report a new document; want 1", fresh)
		}
		list, err := fx.svc.List(t.Context(), documents.Caller{Role: access.Admin}, fx.sess.ID)
		if err != nil || len(list) != 1 {
			t.Fatalf("documents: %d, %v", len(list), err)
		}
		fx.sameObjects(t)
		if got := len(fx.stored(t)); got != 1 {
			t.Fatalf("the store holds %d objects; want 1", got)
		}
	})
}

// TestSameBytesAnotherUploader: party B uploading the bytes of party A's
// unadmitted exhibit gets a document of B's own — B's name for it, B as
// uploader, visible to B — while A's stays hidden from B. The stored bytes
// are shared (before: B got A's document ID and name back, and B's upload
// disappeared).
func TestSameBytesAnotherUploader(t *testing.T) {
	eachBackend(t, func(t *testing.T, fx *fixture) {
		pdf := samplePDF(t)
		a, b := party("Mari Tamm"), party("Jaan Kask")
		docA, _, err := fx.upload(t, a, "secret-exhibit.pdf", pdf)
		if err != nil {
			t.Fatal(err)
		}
		docB, dup, err := fx.upload(t, b, "my-copy.pdf", pdf)
		if err != nil {
			t.Fatal(err)
		}
		if dup || docB.ID == docA.ID || docB.Name != "my-copy.pdf" || docB.UploadedBy != b.Actor || docB.SHA256 != docA.SHA256 {
			t.Fatalf("B's upload: duplicate=%v %+v (A's is %s)", dup, docB, docA.ID)
		}
		if !documents.Visible(b, docB) || documents.Visible(b, docA) {
			t.Fatalf("B sees own=%v, A's=%v; want true, false", documents.Visible(b, docB), documents.Visible(b, docA))
		}
		list, err := fx.svc.List(t.Context(), b, fx.sess.ID)
		if err != nil || len(list) != 1 || list[0].ID != docB.ID {
			t.Fatalf("B's list: %+v, %v", list, err)
		}
		// Both read the same bytes; one object is stored.
		for _, d := range []documents.Document{docA, docB} {
			full, err := fx.svc.Get(t.Context(), d.ID)
			if err != nil {
				t.Fatal(err)
			}
			r, _, err := fx.svc.Open(t.Context(), full, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			got.ReadFrom(r)
			r.Close()
			if !bytes.Equal(got.Bytes(), pdf) {
				t.Fatalf("%s reads other bytes", d.Name)
			}
		}
		fx.sameObjects(t)
		if got := len(fx.stored(t)); got != 1 {
			t.Fatalf("the store holds %d objects; want the one shared", got)
		}
	})
}

// TestUploadDuringStoreOutage: with the store unreachable an upload fails
// fast as fault.Unavailable (503), and nothing is recorded.
func TestUploadRefusedWhenStoreFails(t *testing.T) {
	db := databasetest.Open(t, database.SQLite)
	dir := t.TempDir()
	store, err := evidence.NewLocal(dir, discard)
	if err != nil {
		t.Fatal(err)
	}
	fx := newFixture(t, db, store, nil)
	// A file where the session's folder should be: the store cannot
	// write there.
	if err := os.MkdirAll(dir+"/sessions", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/sessions/"+fx.sess.ID.String(), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	_, _, err = fx.upload(t, party("Mari Tamm"), "contract.pdf", samplePDF(t))
	if err == nil || errors.Is(err, fault.Conflict) {
		t.Fatalf("upload into a broken store: %v", err)
	}
	if objs := fx.recorded(t); len(objs) != 0 {
		t.Fatalf("recorded %v", objs)
	}
}
