package acts

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
)

// BeforeSign refuses a signature the act's lifecycle does not allow yet:
// a principal signs only after their identity was verified, and only the
// act's document; the notary signs only after every principal, and last.
func (s *Service) BeforeSign(ctx context.Context, c Caller, sessionID, documentID uuid.UUID) error {
	act, err := s.Get(ctx, sessionID)
	if err != nil {
		return err
	}
	if act.State == Sealed {
		return outOfOrder("the act is sealed (number %s): no more signatures", act.Number)
	}
	if act.DocumentID != nil && *act.DocumentID != documentID {
		return outOfOrder("this act's document is %s; sign that one", act.DocumentID)
	}
	switch {
	case c.Role == access.Principal:
		ok, err := verified(ctx, s.cfg.DB, sessionID, c.ParticipantID)
		if err != nil {
			return err
		}
		if !ok {
			return outOfOrder("your identity has not been verified by the embassy officer yet; you can sign once it is")
		}
		signed, err := hasSigned(ctx, s.cfg.DB, sessionID, c.ParticipantID, documentID)
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

// Signed is what a signature made, for the act's record.
type Signed struct {
	DocumentID uuid.UUID
	Version    int
	SHA256     string
	Serial     string
}

// AfterSign records a signature and advances the act: the first signature
// fixes the act's document; when every principal has signed the act is
// signed_by_principals; the notary's signature makes it notarised.
func (s *Service) AfterSign(ctx context.Context, c Caller, sessionID uuid.UUID, sig Signed) (Act, error) {
	principals, err := s.cfg.Principals(ctx, sessionID)
	if err != nil {
		return Act{}, err
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		act, err := s.get(ctx, tx, sessionID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO act_signatures (session_id, participant_id, role, document_id, version, sha256, serial, signed_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			sessionID.String(), participantKey(c), string(c.Role), sig.DocumentID.String(), sig.Version, sig.SHA256, sig.Serial,
			database.Micros(s.now())); err != nil {
			return fmt.Errorf("acts: record signature: %w", err)
		}
		if act.DocumentID == nil {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO acts (session_id, state, document_id) VALUES ($1, $2, $3)
				 ON CONFLICT (session_id) DO UPDATE SET document_id = excluded.document_id`,
				sessionID.String(), string(act.State), sig.DocumentID.String()); err != nil {
				return err
			}
		}
		switch {
		case c.Role == access.Principal && act.State == IdentityVerified:
			n := 0
			for _, p := range principals {
				signed, err := hasSigned(ctx, tx, sessionID, p.ID, sig.DocumentID)
				if err != nil {
					return err
				}
				if signed {
					n++
				}
			}
			if n == len(principals) {
				return s.setState(ctx, tx, sessionID, act.State, SignedByPrincipals, c.Actor, map[string]any{"document_id": sig.DocumentID, "sha256": sig.SHA256})
			}
		case c.Role.Presides() && act.State == SignedByPrincipals:
			return s.setState(ctx, tx, sessionID, act.State, Notarised, c.Actor,
				map[string]any{"document_id": sig.DocumentID, "version": sig.Version, "sha256": sig.SHA256, "certificate_serial": sig.Serial})
		}
		return nil
	})
	if err != nil {
		return Act{}, err
	}
	return s.Get(ctx, sessionID)
}

// participantKey identifies a signer in act_signatures: the participant,
// or the staff actor when signing by staff token.
func participantKey(c Caller) string {
	if c.ParticipantID != uuid.Nil {
		return c.ParticipantID.String()
	}
	return c.Actor
}
