package access

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated table in docs/roles.md")

const (
	beginMarker = "<!-- BEGIN GENERATED MATRIX (go test ./access -update) -->"
	endMarker   = "<!-- END GENERATED MATRIX -->"
)

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

// TestRolesDocMatchesMatrix fails when docs/roles.md describes a matrix
// other than the one the server enforces.
func TestRolesDocMatchesMatrix(t *testing.T) {
	const path = "../docs/roles.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated-matrix markers", path)
	}
	want := s[:i+len(beginMarker)] + "\n" + matrixMarkdown() + s[j:]
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
