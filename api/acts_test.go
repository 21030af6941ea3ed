package api_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
)

// TestRegisterScope: a notary's register holds the entries of their own
// acts only and an admin's every entry, on both engines; a notary corrects
// only their own acts' entries.
func TestRegisterScope(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		h := newHarness(t, db)
		// seal creates an act of the notary's and seals it. The ceremony
		// before sealing is TestNotarialActLifecycle's; here the act is
		// made ready to seal directly.
		seal := func(token, title string) uuid.UUID {
			t.Helper()
			s := h.createSession(token, map[string]any{"kind": "notarisation", "title": title, "act_type": "other"})
			if _, err := db.ExecContext(t.Context(), `INSERT INTO acts (session_id, state) VALUES ($1, 'notarised')`, s.ID.String()); err != nil {
				t.Fatal(err)
			}
			var sealed api.SealResponse
			h.must(h.do("POST", "/api/v1/sessions/"+s.ID.String()+"/seal", token, nil), 200).decode(t, &sealed)
			return sealed.Entry.ID
		}
		register := func(token string) []uuid.UUID {
			t.Helper()
			var reg []acts.RegisterEntry
			h.must(h.do("GET", "/api/v1/register", token, nil), 200).decode(t, &reg)
			ids := []uuid.UUID{}
			for _, e := range reg {
				ids = append(ids, e.ID)
			}
			slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
			return ids
		}
		sorted := func(ids ...uuid.UUID) []uuid.UUID {
			slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
			return ids
		}

		notaryA, notaryB, notaryC := h.staffToken(access.Notary), h.staffToken(access.Notary), h.staffToken(access.Notary)
		admin := h.staffToken(access.Admin)
		a1, a2, b1 := seal(notaryA, "A one"), seal(notaryA, "A two"), seal(notaryB, "B one")

		if got, want := register(notaryA), sorted(a1, a2); !slices.Equal(got, want) {
			t.Errorf("notary A's register %v, want %v", got, want)
		}
		if got, want := register(notaryB), sorted(b1); !slices.Equal(got, want) {
			t.Errorf("notary B's register %v, want %v", got, want)
		}
		if got := register(notaryC); len(got) != 0 {
			t.Errorf("a notary without acts sees %v", got)
		}
		if got, want := register(admin), sorted(a1, a2, b1); !slices.Equal(got, want) {
			t.Errorf("admin's register %v, want %v", got, want)
		}

		// Corrections: another notary's entry and an unknown one are not
		// found; the act's own notary corrects theirs.
		fix := map[string]any{"reason": "Fee typo", "fee": "EUR 10.00"}
		h.must(h.do("POST", "/api/v1/register/"+a1.String()+"/corrections", notaryB, fix), 404)
		h.must(h.do("POST", "/api/v1/register/"+uuid.NewString()+"/corrections", notaryA, fix), 404)
		var corrected acts.RegisterEntry
		h.must(h.do("POST", "/api/v1/register/"+a1.String()+"/corrections", notaryA, fix), 201).decode(t, &corrected)
		if corrected.Corrects == nil || *corrected.Corrects != a1 || corrected.Fee != "EUR 10.00" {
			t.Fatalf("correction %+v", corrected)
		}
		if got, want := register(notaryB), sorted(b1); !slices.Equal(got, want) {
			t.Errorf("after A's correction notary B's register %v, want %v", got, want)
		}
		if got, want := register(notaryA), sorted(a1, a2, corrected.ID); !slices.Equal(got, want) {
			t.Errorf("after the correction notary A's register %v, want %v", got, want)
		}
	})
}

// TestStillSizeLimit: an identity still is limited by acts.Config.MaxStill
// alone and a larger one is answered 413, also when the limit is above the
// 11 MiB the handler once capped the body at (which made it a 500).
func TestStillSizeLimit(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		const maxStill = 12 << 20
		h := newHarness(t, db, func(c *acts.Config) { c.MaxStill = maxStill })
		staff := h.staffToken(access.Notary)
		s := h.createSession(staff, map[string]any{"kind": "notarisation", "title": "Affidavit", "act_type": "other"})
		officer := h.official(staff, s.ID, "Consul Jaan Saar", access.EmbassyOfficer)
		principal := h.invite(staff, s.ID, "Mari Tamm", access.Principal)
		checks := "/api/v1/sessions/" + s.ID.String() + "/identity-checks"
		var check acts.Check
		h.must(h.do("POST", checks, officer.Token, map[string]any{"participant_id": principal.ParticipantID, "mrz": td3("TAMM", "MARI", "K0123456")}), 201).decode(t, &check)
		stills := checks + "/" + check.ID.String() + "/stills?kind="

		img := pngBytes(t)
		sized := func(n int) []byte { return append(slices.Clone(img), make([]byte, n-len(img))...) }
		h.must(h.raw("POST", stills+"face", officer.Token, "image/png", sized(maxStill)), 201)
		if r := h.raw("POST", stills+"document", officer.Token, "image/png", sized(maxStill+1)); r.Status != 413 || r.errorCode() != "too_large" {
			t.Fatalf("still over the limit: %d %s", r.Status, r.Body)
		}
	})
}
