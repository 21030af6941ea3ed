package main

import (
	"strings"
	"testing"
)

// staffMember is a staff member provisioned with the operator commands.
type staffMember struct {
	ID, Token string
}

// addStaff provisions a staff member with chamber staff add and gives them
// an API token with chamber token add; args select the database.
func addStaff(t testing.TB, dir string, args []string, name, role string) staffMember {
	t.Helper()
	id, errOut, code := chamber(t, dir, append([]string{"staff", "add", "--name", name, "--role", role}, args...)...)
	if code != 0 {
		t.Fatalf("staff add %s: exit %d\n%s", role, code, errOut)
	}
	scopes := "sessions:write,register:write"
	if role == "admin" {
		scopes += ",staff:admin"
	}
	id = strings.TrimSpace(id)
	tok, errOut, code := chamber(t, dir, append([]string{"token", "add", "--staff", id, "--scope", scopes, "--expires", "1h"}, args...)...)
	if code != 0 || !strings.HasPrefix(tok, "cha_") {
		t.Fatalf("token add: exit %d %q\n%s", code, tok, errOut)
	}
	return staffMember{ID: id, Token: strings.TrimSpace(tok)}
}

// entry is a staff member's entry into a session's room.
type entry struct {
	Participant struct {
		ID string `json:"id"`
	} `json:"participant"`
	Ticket string `json:"ticket"`
}

// enter lets a staff member into a session as themselves: their
// participant and a join ticket for the signalling connection.
func enter(t testing.TB, base, sessionID, token string) entry {
	t.Helper()
	var e entry
	call(t, "POST", base+"/api/v1/sessions/"+sessionID+"/enter", token, nil, 200, &e)
	return e
}

// assign has the holder of by assign a staff member to a session.
func assign(t testing.TB, base, sessionID, by, staffID string) {
	t.Helper()
	call(t, "POST", base+"/api/v1/sessions/"+sessionID+"/assignments", by, map[string]any{"staff_id": staffID}, 201, nil)
}
