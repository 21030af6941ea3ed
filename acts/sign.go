package acts

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/journal"
)

// Designation is the document the notary makes the act's document.
type Designation struct {
	DocumentID uuid.UUID `json:"document_id"`
}

// Designate makes a document the act's document: the one every principal
// and then the notary sign, and the only one signable in the act. The
// notary designates before anyone signs; once a signature is recorded the
// choice is fixed. doc is the document as the document layer has it (a
// PDF of this session, checked by the caller).
func (s *Service) Designate(ctx context.Context, c Caller, sessionID uuid.UUID, doc FinalDocument) (Act, error) {
	if err := access.Check(c.Role, access.Seal); err != nil {
		return Act{}, err
	}
	var act Act
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if act, err = s.lock(ctx, tx, sessionID); err != nil {
			return err
		}
		if act.State == Sealed {
			return outOfOrder("the act is sealed (number %s)", act.Number)
		}
		var signatures int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM act_signatures WHERE session_id = $1`, sessionID.String()).Scan(&signatures); err != nil {
			return fmt.Errorf("acts: designate: %w", err)
		}
		if signatures > 0 {
			if act.DocumentID != nil && *act.DocumentID == doc.ID {
				return nil
			}
			return outOfOrder("the act's document is fixed once anyone has signed it")
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO acts (session_id, state, document_id) VALUES ($1, $2, $3)
			 ON CONFLICT (session_id) DO UPDATE SET document_id = excluded.document_id`,
			sessionID.String(), string(act.State), doc.ID.String()); err != nil {
			return fmt.Errorf("acts: designate: %w", err)
		}
		act.DocumentID = &doc.ID
		_, err = s.cfg.Journal.AppendTx(ctx, tx, journal.Record{SessionID: sessionID, Actor: c.Actor, Action: "act.document_designated",
			Details: map[string]any{"document": doc}})
		return err
	})
	if err != nil {
		return Act{}, err
	}
	s.notify(sessionID, EventActUpdated, act)
	return act, nil
}

// lock takes the act's row lock for the rest of tx (an UPDATE, which both
// engines lock; SQLite's write transaction holds the database anyway) and
// returns the act, creating its row as a draft if it has none. Every
// change of an act's document, signatories or state takes it first, so
// two of them never decide on the same state.
func (s *Service) lock(ctx context.Context, tx *sql.Tx, sessionID uuid.UUID) (Act, error) {
	if _, err := tx.ExecContext(ctx, `INSERT INTO acts (session_id, state) VALUES ($1, $2) ON CONFLICT (session_id) DO NOTHING`,
		sessionID.String(), string(Draft)); err != nil {
		return Act{}, fmt.Errorf("acts: lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE acts SET state = state WHERE session_id = $1`, sessionID.String()); err != nil {
		return Act{}, fmt.Errorf("acts: lock: %w", err)
	}
	return s.get(ctx, tx, sessionID)
}

// BeforeSign refuses early a signature the act's lifecycle does not allow
// (SignHook checks again, in the transaction that records it): only the
// act's document, once the notary designated it, is signed; a principal
// signs once their identity was verified, once, and before the notary; the
// notary signs after every principal, and last.
func (s *Service) BeforeSign(ctx context.Context, c Caller, sessionID, documentID uuid.UUID) error {
	act, err := s.Get(ctx, sessionID)
	if err != nil {
		return err
	}
	return s.maySign(ctx, s.cfg.DB, c, act, sessionID, documentID)
}

func (s *Service) maySign(ctx context.Context, q querier, c Caller, act Act, sessionID, documentID uuid.UUID) error {
	if act.State == Sealed {
		return outOfOrder("the act is sealed (number %s): no more signatures", act.Number)
	}
	if act.DocumentID == nil {
		return outOfOrder("the notary has not designated the act's document yet")
	}
	if *act.DocumentID != documentID {
		return outOfOrder("this act's document is %s; sign that one", act.DocumentID)
	}
	switch {
	case c.Role == access.Principal:
		ok, err := verified(ctx, q, sessionID, c.ParticipantID)
		if err != nil {
			return err
		}
		if !ok {
			return outOfOrder("your identity has not been verified by the embassy officer yet; you can sign once it is")
		}
		signed, err := hasSigned(ctx, q, sessionID, c.ParticipantID, documentID)
		if err != nil {
			return err
		}
		if signed {
			return outOfOrder("you have already signed this document")
		}
		if act.State == Notarised {
			return outOfOrder("the notary has already signed; principals sign before the notary")
		}
	case c.Role.Presides():
		if act.State != SignedByPrincipals {
			return outOfOrder("the notary signs last: every principal's identity must be verified and every principal must sign first (act is %s)", act.State)
		}
	}
	return nil
}

// hasSigned reports whether a participant signed a document of the act; q
// is the database, or the transaction that is recording a signature.
func hasSigned(ctx context.Context, q querier, sessionID, participantID, documentID uuid.UUID) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM act_signatures WHERE session_id = $1 AND participant_id = $2 AND document_id = $3`,
		sessionID.String(), participantID.String(), documentID.String()).Scan(&n)
	return n > 0, err
}

// SignHook returns what the document layer runs inside the transaction
// that records a signature in the act: first the act's row is locked and
// the lifecycle checked again under that lock; last the signatory is
// recorded and the act advanced — signed_by_principals when every
// principal has signed, notarised with the notary's signature. The
// signature, the act's state and their journal entries commit together or
// not at all.
func (s *Service) SignHook(ctx context.Context, c Caller, sessionID uuid.UUID) (documents.SignHook, error) {
	principals, err := s.cfg.Principals(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	return &signHook{s: s, c: c, sessionID: sessionID, principals: principals}, nil
}

type signHook struct {
	s          *Service
	c          Caller
	sessionID  uuid.UUID
	principals []Principal
	act        Act // as Lock found it
}

func (h *signHook) Lock(ctx context.Context, tx *sql.Tx, documentID uuid.UUID) error {
	act, err := h.s.lock(ctx, tx, h.sessionID)
	if err != nil {
		return err
	}
	if err := h.s.maySign(ctx, tx, h.c, act, h.sessionID, documentID); err != nil {
		return err
	}
	h.act = act
	return nil
}

func (h *signHook) Record(ctx context.Context, tx *sql.Tx, sig documents.Signature) error {
	s, c, sessionID, act, rec := h.s, h.c, h.sessionID, h.act, sig.Record
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO act_signatures (session_id, participant_id, role, document_id, version, sha256, serial, signed_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		sessionID.String(), participantKey(c), string(c.Role), sig.DocumentID.String(), rec.Version, rec.SHA256, rec.CertificateSerial,
		database.Micros(s.now())); err != nil {
		return fmt.Errorf("acts: record signature: %w", err)
	}
	switch {
	case c.Role == access.Principal && act.State == IdentityVerified:
		n := 0
		for _, p := range h.principals {
			signed, err := hasSigned(ctx, tx, sessionID, p.ID, sig.DocumentID)
			if err != nil {
				return err
			}
			if signed {
				n++
			}
		}
		if n == len(h.principals) {
			return s.setState(ctx, tx, sessionID, act.State, SignedByPrincipals, c.Actor, map[string]any{"document_id": sig.DocumentID, "sha256": rec.SHA256})
		}
	case c.Role.Presides() && act.State == SignedByPrincipals:
		return s.setState(ctx, tx, sessionID, act.State, Notarised, c.Actor,
			map[string]any{"document_id": sig.DocumentID, "version": rec.Version, "sha256": rec.SHA256, "certificate_serial": rec.CertificateSerial})
	}
	return nil
}

// Committed tells the room the act's state once the signature has
// committed (a signature may have advanced it).
func (h *signHook) Committed(ctx context.Context) {
	act, err := h.s.Get(ctx, h.sessionID)
	if err != nil {
		h.s.cfg.Logger.Warn("acts: reading the act after a signature", "session", h.sessionID, "err", err)
		return
	}
	h.s.notify(h.sessionID, EventActUpdated, act)
}

// participantKey identifies a signer in act_signatures: the participant,
// or the staff actor when signing by staff token.
func participantKey(c Caller) string {
	if c.ParticipantID != uuid.Nil {
		return c.ParticipantID.String()
	}
	return c.Actor
}
