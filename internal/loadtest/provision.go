package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Provisioner makes the hearings and participants a load test needs on a
// real server. It holds whatever staff credential the command was given (a
// staff or API token, see cmd/chamber/loadtest.go): the load generator
// itself never sees one, so a change in how staff authenticate changes the
// provisioner, not this package.
type Provisioner interface {
	// CreateHearing creates a hearing and returns its ID.
	CreateHearing(ctx context.Context, title string) (uuid.UUID, error)
	// AddParticipant invites someone named name to the session in role,
	// admits them from the waiting room and returns their join token.
	AddParticipant(ctx context.Context, session uuid.UUID, name, role string) (string, error)
}

// Roles the load generator invites: in the one-room mode publishers are
// witnesses (a role of both kinds of session that publishes) and
// subscribers observers; in a room every participant publishes and is a
// party, counsel or witness in turn — roles that every staff role allowed
// to invite may invite (the presiding judge and the clerk are staff, never
// invited).
const (
	rolePublisher  = "witness"
	roleSubscriber = "observer"
)

var roomRoles = []string{"party", "counsel", "witness"}

// roomRole is the role of a room's participant i.
func roomRole(i int) string { return roomRoles[i%len(roomRoles)] }

// tokens returns the join tokens of the one-room mode's participants:
// publishers first, then subscribers.
func (cfg *Config) tokens(ctx context.Context, n int) ([]string, error) {
	switch {
	case cfg.TokenFile != "":
		toks, err := readTokens(cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		out := make([]string, n)
		for i := range out {
			out[i] = toks[i%len(toks)]
		}
		return out, nil
	case cfg.Provisioner != nil:
		out := make([]string, n)
		for i := range out {
			role, name := roleSubscriber, fmt.Sprintf("Load subscriber %d", i-cfg.Publishers+1)
			if i < cfg.Publishers {
				role, name = rolePublisher, fmt.Sprintf("Load publisher %d", i+1)
			}
			tok, err := cfg.Provisioner.AddParticipant(ctx, cfg.SessionID, name, role)
			if err != nil {
				return nil, fmt.Errorf("loadtest: provisioning participants: %w", err)
			}
			out[i] = tok
		}
		return out, nil
	}
	return nil, errors.New("loadtest: either a token file or a provisioner (a staff token) is required")
}

// readTokens reads a token file: one token a line; blank lines and lines
// starting with # are skipped.
func readTokens(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	defer f.Close()
	var toks []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" && !strings.HasPrefix(t, "#") {
			toks = append(toks, t)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("loadtest: reading tokens: %w", err)
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("loadtest: %s holds no token", path)
	}
	return toks, nil
}

// provisionRooms creates the rooms' hearings and their participants.
func (cfg *Config) provisionRooms(ctx context.Context) ([]*room, error) {
	if cfg.Provisioner == nil {
		return nil, errors.New("loadtest: the room mode needs a provisioner (a staff token) to create its hearings")
	}
	stamp := time.Now().UTC().Format("2006-01-02T15:04:05Z")
	rooms := make([]*room, cfg.Rooms)
	for r := range rooms {
		id, err := cfg.Provisioner.CreateHearing(ctx, fmt.Sprintf("Load test %s, room %d", stamp, r+1))
		if err != nil {
			return nil, fmt.Errorf("loadtest: creating hearing %d: %w", r+1, err)
		}
		rm := &room{index: r, session: id, members: make([]*member, cfg.Participants)}
		for i := range rm.members {
			role := roomRole(i)
			tok, err := cfg.Provisioner.AddParticipant(ctx, id, fmt.Sprintf("Room %d %s %d", r+1, role, i+1), role)
			if err != nil {
				return nil, fmt.Errorf("loadtest: room %d participant %d: %w", r+1, i+1, err)
			}
			rm.members[i] = &member{role: role, token: tok}
		}
		rooms[r] = rm
	}
	return rooms, nil
}
