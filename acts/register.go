package acts

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

// RegisterEntry is one line of the notary's register, holding what remote
// notarisation statutes (e.g. Virginia §47.1-14, Texas §406.108) require of
// an electronic journal. Entries are never edited or deleted: a correction
// is a new entry that names the one it corrects.
type RegisterEntry struct {
	ID          uuid.UUID           `json:"id"`
	Number      string              `json:"number"`
	SessionID   uuid.UUID           `json:"session_id"`
	RecordedAt  time.Time           `json:"recorded_at"`
	Corrects    *uuid.UUID          `json:"corrects,omitempty"`
	Correction  string              `json:"correction,omitempty"`
	ActType     string              `json:"act_type"`
	Title       string              `json:"title"`
	Description string              `json:"description"`
	SealedAt    time.Time           `json:"sealed_at"`
	Document    FinalDocument       `json:"document"`
	Principals  []RegisterPrincipal `json:"principals"`
	Notary      string              `json:"notary"`
	Fee         string              `json:"fee"`
	Recordings  []recordingRef      `json:"recordings"`
}

// RegisterPrincipal is a principal and the evidence of their identity.
type RegisterPrincipal struct {
	ParticipantID uuid.UUID `json:"participant_id"`
	Name          string    `json:"name"`
	Address       string    `json:"address"`
	// Identity is the verified identity check (document type, number,
	// issuing state, the check record, the embassy and officer).
	Identity *RegisterIdentity `json:"identity,omitempty"`
}

// RegisterIdentity is how a principal's identity was established.
type RegisterIdentity struct {
	CheckID             uuid.UUID `json:"check_id"`
	DocumentType        string    `json:"document_type"`
	DocumentNumber      string    `json:"document_number"`
	IssuingState        string    `json:"issuing_state"`
	Embassy             string    `json:"embassy"`
	Officer             string    `json:"officer"`
	FaceStillSHA256     string    `json:"face_still_sha256"`
	DocumentPhotoSHA256 string    `json:"document_photo_sha256"`
	VerifiedAt          string    `json:"verified_at"`
}

func buildEntry(number string, sessionID uuid.UUID, at time.Time, in SealInput, doc FinalDocument, principals []Principal, checks []Check, recordings []recordingRef) RegisterEntry {
	e := RegisterEntry{
		ID: uuid.New(), Number: number, SessionID: sessionID, RecordedAt: at, ActType: in.ActType, Title: in.Title,
		Description: trimmed(in.Description), SealedAt: at, Document: doc, Notary: in.Notary, Fee: trimmed(in.Fee),
		Recordings: recordings,
	}
	if e.Description == "" {
		e.Description = fmt.Sprintf("%s: %s (%s)", in.ActType, in.Title, doc.Name)
	}
	if e.Recordings == nil {
		e.Recordings = []recordingRef{}
	}
	for _, p := range principals {
		rp := RegisterPrincipal{ParticipantID: p.ID, Name: p.Name}
		for _, ch := range checks {
			if ch.ParticipantID != p.ID || ch.Status != CheckVerified {
				continue
			}
			id := &RegisterIdentity{CheckID: ch.ID, DocumentType: ch.Document.Type, DocumentNumber: ch.Document.Number,
				IssuingState: ch.Document.IssuingState, Embassy: ch.Embassy, Officer: ch.OfficerName, VerifiedAt: ch.DecidedAt}
			for _, st := range ch.Stills {
				if st.Kind == "face" {
					id.FaceStillSHA256 = st.SHA256
				} else {
					id.DocumentPhotoSHA256 = st.SHA256
				}
			}
			rp.Identity, rp.Address = id, ch.Address
		}
		e.Principals = append(e.Principals, rp)
	}
	return e
}

func (s *Service) insertEntry(ctx context.Context, tx *sql.Tx, actor string, e RegisterEntry) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	var corrects sql.NullString
	if e.Corrects != nil {
		corrects = sql.NullString{String: e.Corrects.String(), Valid: true}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO register_entries (id, number, session_id, recorded_at, corrects, entry) VALUES ($1, $2, $3, $4, $5, $6)`,
		e.ID.String(), e.Number, e.SessionID.String(), database.Micros(e.RecordedAt), corrects, string(body)); err != nil {
		return fmt.Errorf("acts: register: %w", err)
	}
	// The journal holds every register entry in full: editing the table
	// breaks nothing there, and the journal chain shows the truth.
	_, err = s.cfg.Journal.AppendTx(ctx, tx, journal.Record{SessionID: e.SessionID, Actor: actor, Action: "register.entry", Details: json.RawMessage(body)})
	return err
}

// RegisterFilter narrows the register.
type RegisterFilter struct {
	From, To time.Time
	// Sessions limits the entries to these sessions (nil: all).
	Sessions []uuid.UUID
	// CreatedBy limits the entries to the acts of sessions this staff
	// member created (uuid.Nil: all). It is a subquery rather than a list
	// of session ids so that a notary with many acts loses none of them.
	CreatedBy uuid.UUID
}

// Register returns the register's entries, oldest first.
func (s *Service) Register(ctx context.Context, f RegisterFilter) ([]RegisterEntry, error) {
	q := `SELECT entry FROM register_entries WHERE 1 = 1`
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !f.From.IsZero() {
		q += ` AND recorded_at >= ` + arg(database.Micros(f.From))
	}
	if !f.To.IsZero() {
		q += ` AND recorded_at < ` + arg(database.Micros(f.To))
	}
	if f.Sessions != nil {
		if len(f.Sessions) == 0 {
			return []RegisterEntry{}, nil
		}
		var ph []string
		for _, id := range f.Sessions {
			ph = append(ph, arg(id.String()))
		}
		q += ` AND session_id IN (` + strings.Join(ph, ", ") + `)`
	}
	if f.CreatedBy != uuid.Nil {
		q += ` AND session_id IN (SELECT id FROM sessions WHERE created_by = ` + arg(f.CreatedBy.String()) + `)`
	}
	q += ` ORDER BY recorded_at, id`
	rows, err := s.cfg.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("acts: register: %w", err)
	}
	defer rows.Close()
	out := []RegisterEntry{}
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		var e RegisterEntry
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			return nil, fmt.Errorf("acts: register entry: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Entry returns one register entry; an unknown id is fault.NotFound.
func (s *Service) Entry(ctx context.Context, id uuid.UUID) (RegisterEntry, error) {
	var body string
	err := s.cfg.DB.QueryRowContext(ctx, `SELECT entry FROM register_entries WHERE id = $1`, id.String()).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return RegisterEntry{}, fmt.Errorf("register entry %s: %w", id, fault.NotFound)
	}
	if err != nil {
		return RegisterEntry{}, database.Classify(fmt.Errorf("acts: register entry: %w", err))
	}
	var e RegisterEntry
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		return RegisterEntry{}, fmt.Errorf("acts: register entry %s: %w", id, err)
	}
	return e, nil
}

// Correction is a correction of a register entry.
type Correction struct {
	Reason string `json:"reason"`
	// Fee, Description and Addresses (principal id → address) replace the
	// corrected entry's values when set.
	Fee         *string              `json:"fee,omitempty"`
	Description *string              `json:"description,omitempty"`
	Addresses   map[uuid.UUID]string `json:"addresses,omitempty"`
}

// Correct adds an entry that corrects an earlier one; the earlier entry
// stays as it was.
func (s *Service) Correct(ctx context.Context, c Caller, entryID uuid.UUID, corr Correction) (RegisterEntry, error) {
	corr.Reason = strings.TrimSpace(corr.Reason)
	if corr.Reason == "" || len(corr.Reason) > 1000 {
		return RegisterEntry{}, &fault.Error{Kind: fault.Invalid, Message: "a correction needs a reason", Fields: map[string]string{"reason": "1 to 1000 characters"}}
	}
	e, err := s.Entry(ctx, entryID)
	if err != nil {
		return RegisterEntry{}, err
	}
	e.ID, e.RecordedAt, e.Corrects, e.Correction = uuid.New(), s.now(), &entryID, corr.Reason
	if corr.Fee != nil {
		e.Fee = *corr.Fee
	}
	if corr.Description != nil {
		e.Description = *corr.Description
	}
	for i, p := range e.Principals {
		if a, ok := corr.Addresses[p.ParticipantID]; ok {
			e.Principals[i].Address = a
		}
	}
	err = s.tx(ctx, func(tx *sql.Tx) error { return s.insertEntry(ctx, tx, c.Actor, e) })
	return e, err
}

// WriteCSV exports register entries, one line per principal. Every cell
// goes through cell, so that no text typed by a participant or the notary
// runs as a spreadsheet formula.
func WriteCSV(w io.Writer, entries []RegisterEntry) error {
	cw := &cellWriter{csv.NewWriter(w)}
	cw.Write([]string{"entry_id", "number", "recorded_at", "corrects", "correction", "sealed_at", "act_type", "description",
		"document_name", "document_sha256", "principal_name", "principal_address", "id_document_type", "id_document_number",
		"id_issuing_state", "identity_check_id", "embassy", "officer", "notary", "fee", "recordings"})
	for _, e := range entries {
		var recs []string
		for _, r := range e.Recordings {
			recs = append(recs, r.ManifestKey+"#sha256="+r.ManifestSHA256)
		}
		corrects := ""
		if e.Corrects != nil {
			corrects = e.Corrects.String()
		}
		principals := e.Principals
		if len(principals) == 0 {
			principals = []RegisterPrincipal{{}}
		}
		for _, p := range principals {
			idType, idNum, idState, checkID, embassy, officer := "", "", "", "", "", ""
			if p.Identity != nil {
				idType, idNum, idState, checkID = p.Identity.DocumentType, p.Identity.DocumentNumber, p.Identity.IssuingState, p.Identity.CheckID.String()
				embassy, officer = p.Identity.Embassy, p.Identity.Officer
			}
			if err := cw.Write([]string{e.ID.String(), e.Number, e.RecordedAt.Format(time.RFC3339), corrects, e.Correction,
				e.SealedAt.Format(time.RFC3339), e.ActType, e.Description, e.Document.Name, e.Document.SHA256, p.Name, p.Address,
				idType, idNum, idState, checkID, embassy, officer, e.Notary, e.Fee, strings.Join(recs, " ")}); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// cellWriter neutralises each cell of each record it writes.
type cellWriter struct{ *csv.Writer }

func (w *cellWriter) Write(record []string) error {
	for i, c := range record {
		record[i] = cell(c)
	}
	return w.Writer.Write(record)
}

// cell neutralises a cell a spreadsheet would take for a formula (OWASP,
// "CSV Injection"): one beginning with =, +, -, @, a tab or a carriage
// return — also after leading spaces, which some spreadsheets skip — is
// prefixed with a single quote, which makes it text. Names, addresses,
// descriptions, fees and correction reasons come from people, and a
// notary's register is opened in spreadsheets.
func cell(s string) string {
	t := strings.TrimLeft(s, " ")
	if t == "" {
		return s
	}
	switch t[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
