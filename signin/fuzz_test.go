package signin

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/chamber-court/chamber/access"
)

// FuzzClaims: whatever shape a provider's claims have, reading the role
// claim and the name never panics, the name is bounded, and a mapped role
// is a staff role.
func FuzzClaims(f *testing.F) {
	f.Add(`{"sub":"s","groups":["judges","x"],"name":"Mari"}`, "groups")
	f.Add(`{"sub":"s","realm_access":{"roles":["clerks"]},"profile_attributes":{"given_name":"Jaan","family_name":"Saar"}}`, "realm_access.roles")
	f.Add(`{"sub":"s","roles":"judges","given_name":5}`, "roles")
	f.Add(`{"a":{"b":{"c":[1,"clerks",null]}}}`, "a.b.c")
	p := &Provider{cfg: Config{RoleMap: []RoleMapping{{Value: "judges", Role: access.Judge}, {Value: "clerks", Role: access.Clerk}}}}
	f.Fuzz(func(t *testing.T, raw, path string) {
		var claims map[string]any
		if json.Unmarshal([]byte(raw), &claims) != nil {
			return
		}
		if r := p.mapRole(claimValues(claims, path)); r != "" && !r.IsStaff() {
			t.Fatalf("mapped to %q", r)
		}
		if n := nameOf(claims, "subject"); n == "" || len(n) > 200 || (utf8.ValidString(raw) && !utf8.ValidString(n)) {
			t.Fatalf("name %q", n)
		}
	})
}
