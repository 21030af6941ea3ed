package access

import (
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated tables in docs/roles.md")

// generated is one table of docs/roles.md that is rendered from this package.
type generated struct {
	begin, end string
	render     func() string
}

var generatedTables = []generated{
	{"<!-- BEGIN GENERATED MATRIX (go test ./access -update) -->", "<!-- END GENERATED MATRIX -->", matrixMarkdown},
	{"<!-- BEGIN GENERATED INVITES (go test ./access -update) -->", "<!-- END GENERATED INVITES -->", invitesMarkdown},
}

// matrixMarkdown renders the permission matrix as a Markdown table.
func matrixMarkdown() string {
	var b strings.Builder
	b.WriteString("| action |")
	for _, r := range MatrixRoles {
		b.WriteString(" " + string(r) + " |")
	}
	b.WriteString("\n|---|")
	for range MatrixRoles {
		b.WriteString(":-:|")
	}
	b.WriteString("\n")
	for _, a := range Actions {
		b.WriteString("| `" + string(a) + "` |")
		for _, r := range MatrixRoles {
			if Allowed(r, a) {
				b.WriteString(" ✓ |")
			} else {
				b.WriteString("   |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// invitesMarkdown renders who may invite (I) or assign (A) whom: one row
// per acting role, one column per role acted upon.
func invitesMarkdown() string {
	var b strings.Builder
	b.WriteString("| who ↓ may bring in → |")
	targets := MatrixRoles[:len(MatrixRoles)-1] // admin is never brought into a session
	for _, r := range targets {
		b.WriteString(" " + string(r) + " |")
	}
	b.WriteString("\n|---|")
	for range targets {
		b.WriteString(":-:|")
	}
	b.WriteString("\n")
	for _, by := range MatrixRoles {
		if len(invites[by]) == 0 && len(assigns[by]) == 0 {
			continue
		}
		b.WriteString("| " + string(by) + " |")
		for _, r := range targets {
			switch {
			case MayInvite(by, r):
				b.WriteString(" invite |")
			case MayAssign(by, r):
				b.WriteString(" assign |")
			default:
				b.WriteString("   |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestRolesDocMatchesMatrix fails when docs/roles.md describes a matrix or
// an invitation table other than the ones the server enforces.
func TestRolesDocMatchesMatrix(t *testing.T) {
	const path = "../docs/roles.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	want := s
	for _, g := range generatedTables {
		i, j := strings.Index(want, g.begin), strings.Index(want, g.end)
		if i < 0 || j < i {
			t.Fatalf("%s lacks the markers %s … %s", path, g.begin, g.end)
		}
		want = want[:i+len(g.begin)] + "\n" + g.render() + want[j:]
	}
	if want == s {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s is out of date with the permission matrix; run go test ./access -update", path)
}

func TestMatrixSanity(t *testing.T) {
	for _, k := range []Kind{Hearing, Notarisation} {
		p := Presiding(k)
		if !p.InKind(k) || !p.Presides() {
			t.Errorf("presiding role of %s", k)
		}
	}
	for r, acts := range matrix {
		for _, a := range acts {
			found := false
			for _, known := range Actions {
				found = found || known == a
			}
			if !found {
				t.Errorf("%s has unlisted action %s", r, a)
			}
		}
	}
	// Never: observers publish, embassy officers sign, parties moderate.
	for _, tc := range []struct {
		r Role
		a Action
	}{{Observer, Publish}, {Observer, Chat}, {EmbassyOfficer, Sign}, {Party, Admit}, {Witness, Upload}, {Admin, Sign}, {Admin, Publish}} {
		if Allowed(tc.r, tc.a) {
			t.Errorf("%s may %s", tc.r, tc.a)
		}
	}
}

// taking part is what any participant may do for themselves; every other
// action is a power over the session, its people or its record.
var takingPart = []Action{ViewSession, SeeParticipant, Publish, Chat, Upload, SeeDocuments}

// TestInvitesGrantNoMorePower: an invitation never carries an official role,
// never a role of the inviter's that the inviter cannot invite, and never a
// power the inviter lacks — so no token is worth more than its issuer.
func TestInvitesGrantNoMorePower(t *testing.T) {
	for by, roles := range invites {
		if !slices.Contains(MatrixRoles, by) || !Allowed(by, Invite) {
			t.Errorf("%s invites but may not %s", by, Invite)
		}
		for _, r := range roles {
			if r.IsOfficial() || r == Admin {
				t.Errorf("%s may invite the official role %s", by, r)
			}
			for _, a := range matrix[r] {
				if !slices.Contains(takingPart, a) && !Allowed(by, a) {
					t.Errorf("%s may invite %s, who may %s, which %s may not", by, r, a, by)
				}
			}
		}
	}
	for by, roles := range assigns {
		if !Allowed(by, AssignStaff) {
			t.Errorf("%s assigns but may not %s", by, AssignStaff)
		}
		for _, r := range roles {
			if !r.IsOfficial() || !r.IsStaff() {
				t.Errorf("%s may assign %s, which is not an official staff role", by, r)
			}
		}
	}
	for _, tc := range []struct{ by, r Role }{
		{Clerk, Judge}, {Clerk, Clerk}, {Admin, Judge}, {Admin, Clerk}, {Notary, Notary}, {Notary, EmbassyOfficer},
		{Admin, Principal}, {Judge, Judge}, {Party, Witness}, {EmbassyOfficer, Principal},
	} {
		if MayInvite(tc.by, tc.r) {
			t.Errorf("%s may invite %s", tc.by, tc.r)
		}
	}
	for _, r := range MatrixRoles {
		if Allowed(r, Invite) != (len(invites[r]) > 0) || Allowed(r, AssignStaff) != (len(assigns[r]) > 0) {
			t.Errorf("%s: the matrix and the invite/assign tables disagree", r)
		}
	}
}
