package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/recording"
	"github.com/chamber-court/chamber/sessions"
	"github.com/chamber-court/chamber/signaling"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// syncLog is a log the test reads back.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestEveryEventHasAnAudience is the adapter's table, event by event: who
// of a notarial act's room receives each (a notary, a principal, another
// principal, an observer watching, a witness waiting), and an event no
// case names reaches nobody, with a warning.
func TestEveryEventHasAnAudience(t *testing.T) {
	ctx := context.Background()
	db := databasetest.Open(t, database.SQLite)
	var logs syncLog
	svc := sessions.New(sessions.Config{DB: db, Journal: journal.New(journal.Config{DB: db}), Logger: slog.New(slog.DiscardHandler)})
	h := sessionHooks{svc: svc, log: slog.New(slog.NewTextHandler(&logs, nil))}
	st, err := svc.AddStaff(ctx, "system", sessions.NewStaff{Name: "Notary", Role: access.Notary})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := svc.AddAPIToken(ctx, "system", st.ID, sessions.NewAPIToken{Name: "test", Scopes: []string{sessions.ScopeSessionsWrite}})
	if err != nil {
		t.Fatal(err)
	}
	staff, _ := svc.Authenticate(ctx, tok.Token)
	sess, err := svc.Create(ctx, staff, sessions.NewSession{Kind: access.Notarisation, Title: "Act", ActType: "will"})
	if err != nil {
		t.Fatal(err)
	}
	join := func(name string, role access.Role, admit bool) uuid.UUID {
		inv, err := svc.Invite(ctx, staff, sess.ID, sessions.NewInvitation{Name: name, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Connected(ctx, sess.ID, inv.ParticipantID); err != nil {
			t.Fatal(err)
		}
		if admit {
			if _, err := svc.Admit(ctx, staff, sess.ID, inv.ParticipantID); err != nil {
				t.Fatal(err)
			}
		}
		return inv.ParticipantID
	}
	// The notary is staff and enters as themselves (no invitation).
	entry, err := svc.Enter(ctx, staff, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Connected(ctx, sess.ID, entry.Participant.ID); err != nil {
		t.Fatal(err)
	}
	notary := entry.Participant.ID
	principal := join("Mari Tamm", access.Principal, true)
	other := join("Jaan Kask", access.Principal, true)
	observer := join("Viewer", access.Observer, true)
	witness := join("Witness", access.Witness, false)
	cons, err := svc.OpenConsultation(ctx, staff, sess.ID, []uuid.UUID{other})
	if err != nil {
		t.Fatal(err)
	}
	record := func(id uuid.UUID) json.RawMessage {
		p, err := svc.Participant(ctx, staff, sess.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(p)
		return b
	}
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	peer := func(id uuid.UUID) json.RawMessage {
		b, _ := json.Marshal(protocol.PeerEvent{Participant: protocol.Participant{ID: id.String()}})
		return b
	}
	receivers := []uuid.UUID{notary, principal, other, observer, witness}
	const N, P, O, V, W = 1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 4 // notary, principal, other, viewer, witness
	all := N | P | O | V | W
	for _, tc := range []struct {
		what string
		ev   signaling.Event
		want int // the receivers (bits, in the order of receivers)
	}{
		{"a track", signaling.Event{Type: protocol.TypeTrackPublished, Subject: notary, Data: raw(`{}`)}, all},
		{"a track gone", signaling.Event{Type: protocol.TypeTrackUnpublished, Subject: notary, Data: raw(`{}`)}, all},
		{"the notary speaking", signaling.Event{Type: protocol.TypeActiveSpeaker, Subject: notary, Data: raw(`{}`)}, N | P | V},
		{"the principal in consultation speaking", signaling.Event{Type: protocol.TypeActiveSpeaker, Subject: other, Data: raw(`{}`)}, O},
		{"the notary's connection", signaling.Event{Type: protocol.TypePeerJoined, Subject: notary, Data: peer(notary)}, N | P | O | V},
		{"the observer's connection", signaling.Event{Type: protocol.TypePeerLeft, Subject: observer, Data: peer(observer)}, N | P | O | V},
		{"the witness's connection", signaling.Event{Type: protocol.TypePeerJoined, Subject: witness, Data: peer(witness)}, N | P | O | W},
		{"the notary's record", signaling.Event{Type: sessions.EventParticipantUpdated, Data: record(notary)}, N | P | O | V},
		{"the witness's record", signaling.Event{Type: sessions.EventParticipantAdded, Data: record(witness)}, N | P | O | W},
		{"the principal in consultation's record", signaling.Event{Type: sessions.EventParticipantUpdated, Data: record(other)}, N | P | O},
		{"a removal", signaling.Event{Type: sessions.EventParticipantRemoved, Data: raw(`{"participant_id":"` + witness.String() + `"}`)}, N | P | O},
		{"a consultation", signaling.Event{Type: sessions.EventConsultationOpened, Data: raw(`{}`)}, N | P | O},
		{"a consultation closed", signaling.Event{Type: sessions.EventConsultationClosed, Data: raw(`{}`)}, N | P | O},
		{"the witness's list", signaling.Event{Type: sessions.EventParticipantsKnown, Data: raw(`{"for":"` + witness.String() + `"}`)}, W},
		{"chat in the room", signaling.Event{Type: sessions.MessageChat, Data: raw(`{"space":"main"}`)}, N | P | V},
		{"chat in the consultation", signaling.Event{Type: sessions.MessageChat, Data: raw(`{"space":"` + cons.ID.String() + `"}`)}, O},
		{"a raised hand in the room", signaling.Event{Type: sessions.MessageStatus, Data: raw(`{"space":"main"}`)}, N | P | V},
		{"a raised hand in the consultation", signaling.Event{Type: sessions.MessageStatus, Data: raw(`{"space":"` + cons.ID.String() + `"}`)}, O},
		{"a presented page", signaling.Event{Type: sessions.MessagePresent, Data: raw(`{}`)}, N | P | V},
		{"the session", signaling.Event{Type: sessions.EventSessionUpdated, Data: raw(`{}`)}, all},
		{"the close", signaling.Event{Type: sessions.EventSessionClosed, Data: raw(`{}`)}, all},
		{"the recording", signaling.Event{Type: recording.EventRecording, Data: raw(`{}`)}, all},
		{"the act", signaling.Event{Type: acts.EventActUpdated, Data: raw(`{}`)}, all},
		{"the principal's identity check", signaling.Event{Type: acts.EventIdentityCheck, Data: raw(`{"participant_id":"` + principal.String() + `"}`)}, N | P},
		{"a document", signaling.Event{Type: documents.EventChanged, Data: raw(`{}`)}, N | P | O},
		{"something new", signaling.Event{Type: "surprise", Data: raw(`{}`)}, 0},
	} {
		got := 0
		for i, r := range receivers {
			if _, ok := h.Filter(sess.ID, r, tc.ev); ok {
				got |= 1 << i
			}
		}
		if got != tc.want {
			t.Errorf("%s (%s): receivers %05b, want %05b (bits: witness viewer other principal notary)", tc.what, tc.ev.Type, got, tc.want)
		}
	}
	// The observer learns the notary, on stage, as {id, name, role, space,
	// connected}.
	data, _ := h.Filter(sess.ID, observer, signaling.Event{Type: sessions.EventParticipantUpdated, Data: record(notary)})
	var seen map[string]any
	if err := json.Unmarshal(data, &seen); err != nil || len(seen) != 5 {
		t.Errorf("the observer learns %s of the notary, want the stage view", data)
	}
	if n, m := strings.Count(logs.String(), "without an audience"), strings.Count(logs.String(), "type=surprise"); n != len(receivers) || m != n {
		t.Errorf("%d warnings for events without an audience, want one per receiver of the new one:\n%s", n, logs.String())
	}
}

func TestAllowPrivateCandidatesDefault(t *testing.T) {
	for _, c := range []struct {
		publicURL string
		flag      string // "" = not given
		want      bool
	}{
		{"http://localhost:8080", "", true},
		{"http://127.0.0.1:8080", "", true},
		{"http://[::1]:8080", "", true},
		{"https://court.internal.localhost", "", true},
		{"http://192.168.1.20:8080", "", true},
		{"http://10.0.0.5", "", true},
		{"https://court.example", "", false},
		{"https://203.0.113.9", "", false},
		{"https://court.example", "true", true},
		{"http://localhost:8080", "false", false},
		{"::not a url", "", false},
	} {
		var m mediaConfig
		if c.flag != "" {
			if err := m.allowPrivateCandidates.Set(c.flag); err != nil {
				t.Fatal(err)
			}
		}
		cfg := m.signalingConfig(c.publicURL)
		if cfg.AllowPrivateCandidates == nil || *cfg.AllowPrivateCandidates != c.want {
			t.Errorf("--public-url %s, flag %q: allow private candidates %v, want %v", c.publicURL, c.flag, cfg.AllowPrivateCandidates, c.want)
		}
	}
}
