package signers_test

import (
	"crypto/x509"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
	"github.com/chamber-court/chamber/signers"
)

func devService(t *testing.T, db *database.DB, auto bool) (*signers.Service, *pki.Authority) {
	t.Helper()
	ca, err := pki.LoadOrCreateDev(t.TempDir(), "", discard)
	if err != nil {
		t.Fatal(err)
	}
	kek, _, err := signers.LoadOrCreateKEK(filepath.Join(t.TempDir(), "signer.kek"))
	if err != nil {
		t.Fatal(err)
	}
	return signers.New(signers.Config{DB: db, Journal: journal.New(journal.Config{DB: db, Timestamper: ca.TSA()}), Logger: discard, KEK: kek, CA: ca, AutoIssue: auto}), ca
}

func addStaff(t *testing.T, db *database.DB, name string) uuid.UUID {
	t.Helper()
	id := uuid.New()
	if _, err := db.ExecContext(t.Context(), `INSERT INTO staff (id, name, role, token_hash, created_at) VALUES ($1, $2, 'judge', $3, 0)`,
		id.String(), name, "none:"+id.String()); err != nil {
		t.Fatal(err)
	}
	return id
}

// Two first signatures at once get one identity between them.
func TestFirstNeedIssuesOneIdentity(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		svc, _ := devService(t, db, true)
		judge := addStaff(t, db, "Judge Saar")
		const n = 4
		ids := make([]uuid.UUID, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, id, err := svc.For(t.Context(), judge, "")
				ids[i], errs[i] = id.ID, err
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || ids[i] != ids[0] {
				t.Fatalf("first signature %d: identity %s, %v; the first got %s", i, ids[i], errs[i], ids[0])
			}
		}
		list, err := svc.List(t.Context(), judge)
		if err != nil || len(list) != 1 || list[0].Kind != signers.Issued || list[0].Subject == "" {
			t.Fatalf("identities: %+v, %v", list, err)
		}
	})
}

// Without AutoIssue nobody gets an identity they were not enrolled with;
// an issued identity's key opens with its KEK and signs.
func TestIssuedIdentity(t *testing.T) {
	db := databasetest.Open(t, database.SQLite)
	svc, ca := devService(t, db, false)
	judge := addStaff(t, db, "Judge Saar")
	if _, _, err := svc.For(t.Context(), judge, ""); fault.KindOf(err) != fault.Conflict {
		t.Fatalf("For without an identity: %v", err)
	}
	id, err := svc.Enroll(t.Context(), "system", signers.Enrolment{StaffID: judge, Issue: true})
	if err != nil {
		t.Fatal(err)
	}
	signer, got, err := svc.For(t.Context(), judge, "")
	if err != nil || got.ID != id.ID {
		t.Fatalf("For: %s, %v", got.ID, err)
	}
	cert := signer.Certificate()
	if cert.Subject.CommonName != "Judge Saar" || !ca.Issued(cert) || cert.KeyUsage&x509.KeyUsageContentCommitment == 0 {
		t.Fatalf("issued certificate: %s, key usage %v", cert.Subject, cert.KeyUsage)
	}
	if _, err := ca.CheckCertificate(t.Context(), cert, signer.Chain()); err != nil {
		t.Fatalf("the CA refuses its own staff certificate: %v", err)
	}
	// Enrolment of an unknown staff member.
	if _, err := svc.Enroll(t.Context(), "system", signers.Enrolment{StaffID: uuid.New(), Issue: true}); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("enrol unknown staff: %v", err)
	}
}
