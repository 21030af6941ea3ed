package sessions

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/journal"
)

// With several nodes (package cluster) a room's live state is held by its
// home node only. Everything that state is made of — spaces, admissions,
// mutes, consultations, interpreter links, revocations, the page being
// presented — is in the database, so a node that becomes the home rebuilds
// the room exactly (Rebuild); a REST change committed on another node
// reaches the home, which re-reads the participants (Refresh) before it
// passes the change's events on. Connection counts and the statuses
// clients report of themselves (a raised hand) are per node: clients
// report them again when they reconnect.

// Rebuild forgets what this process knew of a session's room and loads it
// afresh from the database. The room must have no connections here: it is
// called when this node has just become the room's home.
func (s *Service) Rebuild(ctx context.Context, sessionID uuid.UUID) error {
	s.live.forget(sessionID)
	if err := s.ensureLive(ctx, sessionID); err != nil {
		return err
	}
	var msg, doc string
	err := s.db.QueryRowContext(ctx, `SELECT presenting, presenting_doc FROM room_state WHERE session_id = $1`,
		sessionID.String()).Scan(&msg, &doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sessions: room state of %s: %w", sessionID, err)
	}
	if docID, err := uuid.Parse(doc); err == nil && msg != "" {
		s.live.setPresenting(sessionID, json.RawMessage(msg), docID)
	}
	return nil
}

// Forget drops what this process knows of a session's room: another node
// is its home now.
func (s *Service) Forget(sessionID uuid.UUID) { s.live.forget(sessionID) }

// Refresh re-reads a session's participants after another node changed
// them, keeping this node's connection counts and statuses. It returns
// those whose space changed, for CatchUp once the change's own events have
// gone out.
func (s *Service) Refresh(ctx context.Context, sessionID uuid.UUID) ([]Participant, error) {
	if !s.live.loaded(sessionID) {
		return nil, nil // loaded from the database when first needed
	}
	ps, err := s.participants(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	return s.live.refresh(sessionID, ps), nil
}

// CatchUp tells participants whose space changed on another node whom they
// may know of now, and shows the main room's presentation to those who
// entered it — what the node that made the change could not, having none
// of their connections.
func (s *Service) CatchUp(ctx context.Context, sessionID uuid.UUID, moved []Participant) {
	ids := make([]uuid.UUID, 0, len(moved))
	for _, p := range moved {
		s.catchUp(sessionID, p)
		ids = append(ids, p.ID)
	}
	s.tellKnown(ctx, sessionID, ids...)
}

// savePresenting stores the main room's presentation with the change
// that made it, so that a new home node shows it too.
func (s *Service) savePresenting(ctx context.Context, tx *sql.Tx, sessionID uuid.UUID, msg json.RawMessage, doc uuid.UUID) error {
	docText := ""
	if doc != uuid.Nil {
		docText = doc.String()
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO room_state (session_id, presenting, presenting_doc, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (session_id) DO UPDATE SET presenting = excluded.presenting, presenting_doc = excluded.presenting_doc,
			updated_at = excluded.updated_at`,
		sessionID.String(), string(msg), docText, s.now().UnixMicro())
	if err != nil {
		return fmt.Errorf("sessions: store the presentation: %w", err)
	}
	return nil
}

// RecordMove journals that a room's home changed nodes — after a node
// failed, drained or restarted — in the session's record, unless the
// session is closed (nothing is journalled after session.closed).
func (s *Service) RecordMove(ctx context.Context, sessionID uuid.UUID, node, previous string, token int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := s.record(ctx, tx, journal.Record{SessionID: sessionID, Actor: "node:" + node, Action: "room.moved",
			Details: map[string]any{"node_id": node, "previous_node_id": previous, "lease_token": token}})
		return err
	})
}

// Servable reports whether a session exists and is not closed: only such
// a session's room is worth a lease.
func (s *Service) Servable(ctx context.Context, sessionID uuid.UUID) bool {
	sess, err := s.Get(ctx, sessionID)
	return err == nil && sess.State != Closed
}
