package documents

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"unicode"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/documents/pades"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

// Upload is one file as it arrives.
type Upload struct {
	Name        string
	ContentType string    // what the uploader claims ("" = no claim)
	Size        int64     // declared length, -1 when unknown
	Body        io.Reader // streamed, never held whole in memory
}

// unsupported says why a file was refused for its type.
func unsupported(claimed, sniffed string) error {
	if sniffed == "" {
		return fault.New(fault.Unsupported, "the file is not of an accepted type (PDF, JPEG, PNG, WebM, MP4, Ogg, plain text)")
	}
	return fault.New(fault.Unsupported, "the file claims to be %s but its content is %s", claimed, sniffed)
}

// cleanName keeps the last path element of an uploaded file's name and
// refuses names no one could display.
func cleanName(name string) (string, error) {
	name = strings.TrimSpace(path.Base(strings.ReplaceAll(name, `\`, "/")))
	if name == "" || name == "." || name == "/" {
		return "", fault.Invalidf("name", "a file name is required (?name=…)")
	}
	if len(name) > 255 || strings.ContainsFunc(name, unicode.IsControl) {
		return "", fault.Invalidf("name", "a file name of at most 255 printable characters is required")
	}
	return name, nil
}

// Upload streams a file into the evidence store as version 1 of a new
// document. The same bytes uploaded twice to one session are not stored
// twice: the existing document is returned with duplicate = true.
func (s *Service) Upload(ctx context.Context, c Caller, sess Session, u Upload) (doc Document, duplicate bool, err error) {
	if err := access.Check(c.Role, access.Upload); err != nil {
		return Document{}, false, err
	}
	name, err := cleanName(u.Name)
	if err != nil {
		return Document{}, false, err
	}
	if u.Size > s.maxUpload {
		return Document{}, false, fault.New(fault.TooLarge, "%d bytes declared, the limit is %d", u.Size, s.maxUpload)
	}
	br := bufio.NewReaderSize(u.Body, sniffLen)
	head, err := br.Peek(sniffLen)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		if errors.Is(err, fault.TooLarge) {
			return Document{}, false, err
		}
		return Document{}, false, fmt.Errorf("documents: read upload: %w", err)
	}
	sniffed := Sniff(head)
	claimed := claimedType(u.ContentType, name)
	if sniffed == "" || !matches(claimed, sniffed) {
		return Document{}, false, unsupported(claimed, sniffed)
	}

	docID := uuid.New()
	key := objectKey(sess.ID, docID, 1, sniffed)
	obj, err := s.store.Put(ctx, key, evidence.LimitReader(br, s.maxUpload, fault.TooLarge), evidence.PutOptions{ContentType: sniffed})
	if errors.Is(err, fault.TooLarge) {
		return Document{}, false, fault.New(fault.TooLarge, "the limit is %d bytes", s.maxUpload)
	}
	if err != nil {
		return Document{}, false, fmt.Errorf("documents: store upload: %w", err)
	}
	if obj.Size == 0 {
		s.discard(ctx, key)
		return Document{}, false, fault.Invalidf("body", "the file is empty")
	}

	if existing, err := s.bySHA(ctx, sess.ID, obj.SHA256); err == nil {
		s.discard(ctx, key)
		s.journalDuplicate(ctx, c, sess, existing, name)
		return existing, true, nil
	} else if !errors.Is(err, fault.NotFound) {
		s.discard(ctx, key)
		return Document{}, false, err
	}
	if sniffed == TypePDF {
		// Anything that will parse this PDF later (signing, verifying)
		// needs it to be sound; a file that is not is refused now, with
		// the reason, rather than stored as evidence nobody can use.
		// (A duplicate was checked when it was first stored.)
		if err := s.checkPDF(ctx, key, obj.Size); err != nil {
			s.discard(ctx, key)
			return Document{}, false, err
		}
	}
	if until := s.retainUntil(); !until.IsZero() {
		if err := s.store.Retain(ctx, key, until); err != nil {
			s.discard(ctx, key)
			return Document{}, false, fmt.Errorf("documents: retain upload: %w", err)
		}
	}

	status := ""
	if sess.Kind == access.Hearing {
		status = StatusSubmitted
	}
	var uploader sql.NullString
	if c.ParticipantID != uuid.Nil {
		uploader = sql.NullString{String: c.ParticipantID.String(), Valid: true}
	}
	now := s.now()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO documents (id, session_id, name, content_type, sha256, uploaded_by, uploader_id, status, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			docID.String(), sess.ID.String(), name, sniffed, obj.SHA256, c.Actor, uploader, status, database.Micros(now)); err != nil {
			return fmt.Errorf("documents: record upload: %w", err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO document_versions (document_id, version, object_key, size, sha256, kind, created_by, created_at)
			 VALUES ($1, 1, $2, $3, $4, 'original', $5, $6)`,
			docID.String(), key, obj.Size, obj.SHA256, c.Actor, database.Micros(now)); err != nil {
			return fmt.Errorf("documents: record version: %w", err)
		}
		_, err := s.journal.AppendTx(ctx, tx, journal.Record{SessionID: sess.ID, Actor: c.Actor, Action: "document.uploaded",
			Details: map[string]any{"document_id": docID, "name": name, "content_type": sniffed, "size": obj.Size,
				"sha256": obj.SHA256, "version": 1, "object_key": key}})
		return err
	})
	if err != nil {
		// Two identical uploads racing: the database's uniqueness picked
		// the winner; this one reports it.
		if existing, e := s.bySHA(ctx, sess.ID, obj.SHA256); e == nil {
			s.log.Warn("concurrent duplicate upload; the stored copy stays under retention", "key", key, "document", existing.ID)
			return existing, true, nil
		}
		s.log.Error("upload stored but not recorded", "key", key, "sha256", obj.SHA256, "err", err)
		return Document{}, false, err
	}
	doc, err = s.Get(ctx, docID)
	return doc, false, err
}

// checkPDF runs the bounded structure check on a stored PDF.
func (s *Service) checkPDF(ctx context.Context, key string, size int64) error {
	r, _, err := s.store.Open(ctx, key)
	if err != nil {
		return fmt.Errorf("documents: reopen upload: %w", err)
	}
	defer r.Close()
	_, err = pades.Check(ctx, r, size)
	return err
}

// discard deletes an object that never became a document (empty or
// duplicate upload). It has no retention yet, so the store allows it.
func (s *Service) discard(ctx context.Context, key string) {
	if err := s.store.Delete(context.WithoutCancel(ctx), key); err != nil {
		s.log.Warn("could not delete a discarded upload", "key", key, "err", err)
	}
}

func (s *Service) journalDuplicate(ctx context.Context, c Caller, sess Session, existing Document, name string) {
	if _, err := s.journal.Append(ctx, journal.Record{SessionID: sess.ID, Actor: c.Actor, Action: "document.upload_duplicate",
		Details: map[string]any{"document_id": existing.ID, "name": name, "sha256": existing.SHA256}}); err != nil {
		s.log.Error("journal duplicate upload", "err", err)
	}
}

func (s *Service) bySHA(ctx context.Context, sessionID uuid.UUID, sha string) (Document, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT id FROM documents WHERE session_id = $1 AND sha256 = $2`, sessionID.String(), sha).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return Document{}, fault.NotFound
	}
	if err != nil {
		return Document{}, fmt.Errorf("documents: lookup by hash: %w", err)
	}
	docID, _ := uuid.Parse(id)
	return s.Get(ctx, docID)
}

// exhibitLabel is how courts number exhibits: a party letter or two and a
// number, e.g. P-1, D-3, CL-12.
var exhibitLabel = regexp.MustCompile(`^[A-Z]{1,4}-[0-9]{1,5}$`)

// ExhibitChange labels an exhibit and/or sets its status; nil is unchanged.
type ExhibitChange struct {
	Label  *string `json:"label,omitempty"`
	Status *string `json:"status,omitempty"`
}

// Label changes an exhibit's label and status (clerk or judge).
func (s *Service) Label(ctx context.Context, c Caller, sess Session, docID uuid.UUID, ch ExhibitChange) (Document, error) {
	if err := access.Check(c.Role, access.LabelExhibit); err != nil {
		return Document{}, err
	}
	if sess.Kind != access.Hearing {
		return Document{}, fault.New(fault.Conflict, "exhibits are labelled in hearings only")
	}
	if ch.Label == nil && ch.Status == nil {
		return Document{}, fault.Invalidf("label", "give label and/or status")
	}
	if ch.Label != nil && !exhibitLabel.MatchString(*ch.Label) {
		return Document{}, fault.Invalidf("label", "an exhibit label looks like P-1 or D-3")
	}
	if ch.Status != nil && *ch.Status != StatusSubmitted && *ch.Status != StatusAdmitted && *ch.Status != StatusRejected {
		return Document{}, fault.Invalidf("status", "status is submitted, admitted or rejected")
	}
	d, err := s.Get(ctx, docID)
	if err != nil {
		return Document{}, err
	}
	if d.SessionID != sess.ID {
		return Document{}, fmt.Errorf("document %s: %w", docID, fault.NotFound)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if ch.Label != nil {
			var taken int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM documents WHERE session_id = $1 AND label = $2 AND id <> $3`,
				sess.ID.String(), *ch.Label, docID.String()).Scan(&taken); err != nil {
				return err
			}
			if taken > 0 {
				return fault.New(fault.Conflict, "label %s is already used in this session", *ch.Label)
			}
			d.Label = *ch.Label
		}
		if ch.Status != nil {
			d.Status = *ch.Status
		}
		if _, err := tx.ExecContext(ctx, `UPDATE documents SET label = $1, status = $2 WHERE id = $3`, d.Label, d.Status, docID.String()); err != nil {
			return fmt.Errorf("documents: label: %w", err)
		}
		_, err := s.journal.AppendTx(ctx, tx, journal.Record{SessionID: sess.ID, Actor: c.Actor, Action: "exhibit.updated",
			Details: map[string]any{"document_id": docID, "name": d.Name, "label": d.Label, "status": d.Status, "sha256": d.SHA256}})
		return err
	})
	if err != nil {
		return Document{}, err
	}
	return d, nil
}
