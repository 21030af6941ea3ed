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
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/documents/pades"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
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
// document. The bytes become part of the record only with the
// transaction that inserts the document, its version, its catalog entry
// and its journal entry; until then they are stored without retention
// under a key of their own (a fresh document ID), so a failed attempt
// never collides with a later one and is deleted, or found by the
// reconciler, never shown.
//
// Storage is de-duplicated, visibility is not: the same bytes uploaded
// again by the same uploader are the same document (duplicate = true),
// even when the uploads race; uploaded by someone else they are a
// document of that person's own, with its own name and visibility, whose
// version shares the stored object.
func (s *Service) Upload(ctx context.Context, c Caller, sess Session, u Upload) (doc Document, duplicate bool, err error) {
	doc, duplicate, err = s.upload(ctx, c, sess, u)
	if err == nil && !duplicate {
		s.changed(sess.ID, doc.ID)
	}
	return doc, duplicate, err
}

func (s *Service) upload(ctx context.Context, c Caller, sess Session, u Upload) (doc Document, duplicate bool, err error) {
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
	body, sniffed, err := sniffUpload(u, name)
	if err != nil {
		return Document{}, false, err
	}
	docID := uuid.New()
	key := objectKey(sess.ID, docID, 1, sniffed)
	obj, err := s.store.Put(ctx, key, evidence.LimitReader(body, s.maxUpload, fault.TooLarge), evidence.PutOptions{ContentType: sniffed})
	if errors.Is(err, fault.TooLarge) {
		return Document{}, false, fault.New(fault.TooLarge, "the limit is %d bytes", s.maxUpload)
	}
	if err != nil {
		return Document{}, false, fmt.Errorf("documents: store upload: %w", err)
	}
	// Until the record names it, the object is an attempt: whatever ends
	// this call without recording it deletes it (it has no retention),
	// except a commit whose outcome is unknown.
	keep := false
	defer func() {
		if !keep {
			s.discard(ctx, key)
		}
	}()
	if existing, dup, err := s.vetStored(ctx, c, sess, key, name, sniffed, obj); dup || err != nil {
		return existing, dup, err
	}
	// Someone else's document with these bytes: share its stored object.
	stored, err := s.storedCopy(ctx, sess.ID, obj.SHA256)
	if err != nil {
		return Document{}, false, err
	}
	if stored == "" {
		stored = key
	}
	if err := s.recordUpload(ctx, c, sess, docID, name, sniffed, catalog.Object{Key: stored, Kind: catalog.Upload, Size: obj.Size, SHA256: obj.SHA256}); err != nil {
		keep = errors.Is(err, database.ErrCommitUncertain) // committed, perhaps: the reconciler decides
		return s.notRecorded(ctx, c, sess, key, obj, err)
	}
	keep = stored == key
	s.catalog.Retain(ctx, stored)
	doc, err = s.Get(ctx, docID)
	return doc, false, err
}

// sniffUpload reads the head of the upload, whose content type must be
// the one its name or Content-Type claims, and returns the whole body.
func sniffUpload(u Upload, name string) (io.Reader, string, error) {
	br := bufio.NewReaderSize(u.Body, sniffLen)
	head, err := br.Peek(sniffLen)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		if errors.Is(err, fault.TooLarge) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("documents: read upload: %w", err)
	}
	sniffed := Sniff(head)
	claimed := claimedType(u.ContentType, name)
	if sniffed == "" || !matches(claimed, sniffed) {
		return nil, "", unsupported(claimed, sniffed)
	}
	return br, sniffed, nil
}

// vetStored refuses an empty file and an unsound PDF, and finds the
// uploader's own earlier upload of the same bytes (dup).
func (s *Service) vetStored(ctx context.Context, c Caller, sess Session, key, name, sniffed string, obj evidence.Object) (existing Document, dup bool, err error) {
	if obj.Size == 0 {
		return Document{}, false, fault.Invalidf("body", "the file is empty")
	}
	if existing, err := s.byUploader(ctx, sess.ID, c.Actor, obj.SHA256); err == nil {
		s.journalDuplicate(ctx, c, sess, existing, name)
		return existing, true, nil
	} else if !errors.Is(err, fault.NotFound) {
		return Document{}, false, err
	}
	if sniffed == TypePDF {
		// Anything that will parse this PDF later (signing, verifying)
		// needs it to be sound; a file that is not is refused now, with
		// the reason, rather than stored as evidence nobody can use.
		if err := s.checkPDF(ctx, key, obj.Size); err != nil {
			return Document{}, false, err
		}
	}
	return Document{}, false, nil
}

// notRecorded answers an upload whose recording failed with err.
func (s *Service) notRecorded(ctx context.Context, c Caller, sess Session, key string, obj evidence.Object, err error) (Document, bool, error) {
	if errors.Is(err, database.ErrCommitUncertain) {
		s.log.Error("upload stored; whether it was recorded is unknown", "key", key, "sha256", obj.SHA256, "err", err)
		return Document{}, false, err
	}
	// Identical uploads by one uploader racing: the database's
	// uniqueness picked the winner; this one reports it.
	if existing, e := s.byUploader(ctx, sess.ID, c.Actor, obj.SHA256); e == nil {
		return existing, true, nil
	}
	return Document{}, false, err
}

// recordUpload writes a new document, its first version, its catalog entry
// and its journal entry in one transaction.
func (s *Service) recordUpload(ctx context.Context, c Caller, sess Session, docID uuid.UUID, name, contentType string, obj catalog.Object) error {
	status := ""
	if sess.Kind == access.Hearing {
		status = StatusSubmitted
	}
	var uploader sql.NullString
	if c.ParticipantID != uuid.Nil {
		uploader = sql.NullString{String: c.ParticipantID.String(), Valid: true}
	}
	now := s.now()
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO documents (id, session_id, name, content_type, sha256, uploaded_by, uploader_id, status, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			docID.String(), sess.ID.String(), name, contentType, obj.SHA256, c.Actor, uploader, status, database.Micros(now)); err != nil {
			return fmt.Errorf("documents: record upload: %w", err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO document_versions (document_id, version, object_key, size, sha256, kind, created_by, created_at)
			 VALUES ($1, 1, $2, $3, $4, 'original', $5, $6)`,
			docID.String(), obj.Key, obj.Size, obj.SHA256, c.Actor, database.Micros(now)); err != nil {
			return fmt.Errorf("documents: record version: %w", err)
		}
		if err := catalog.Add(ctx, tx, sess.ID, s.retainUntil(), obj); err != nil {
			return err
		}
		_, err := s.journal.AppendTx(ctx, tx, journal.Record{SessionID: sess.ID, Actor: c.Actor, Action: "document.uploaded",
			Details: map[string]any{"document_id": docID, "name": name, "content_type": contentType, "size": obj.Size,
				"sha256": obj.SHA256, "version": 1, "object_key": obj.Key, "objects": []catalog.Object{obj}}})
		return err
	})
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

// discard deletes an object that never became part of the record (an
// empty, duplicate, refused or unrecorded upload, a signature that was not
// recorded). It has no retention, so the store allows it; if the store
// refuses now, the reconciler finds it later.
func (s *Service) discard(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.store.Delete(ctx, key); err != nil && !errors.Is(err, evidence.ErrNotFound) {
		s.log.Warn("could not delete an object that is not part of the record; the reconciler will report it", "key", key, "err", err)
	}
}

func (s *Service) journalDuplicate(ctx context.Context, c Caller, sess Session, existing Document, name string) {
	if _, err := s.journal.Append(ctx, journal.Record{SessionID: sess.ID, Actor: c.Actor, Action: "document.upload_duplicate",
		Details: map[string]any{"document_id": existing.ID, "name": name, "sha256": existing.SHA256}}); err != nil {
		s.log.Error("journal duplicate upload", "err", err)
	}
}

// byUploader returns the uploader's document with these bytes.
func (s *Service) byUploader(ctx context.Context, sessionID uuid.UUID, actor, sha string) (Document, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT id FROM documents WHERE session_id = $1 AND uploaded_by = $2 AND sha256 = $3`,
		sessionID.String(), actor, sha).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return Document{}, fault.NotFound
	}
	if err != nil {
		return Document{}, database.Classify(fmt.Errorf("documents: lookup by hash: %w", err))
	}
	docID, _ := uuid.Parse(id)
	return s.Get(ctx, docID)
}

// storedCopy returns the key of an object of the session's record holding
// these bytes, or "".
func (s *Service) storedCopy(ctx context.Context, sessionID uuid.UUID, sha string) (string, error) {
	var key string
	err := s.db.QueryRowContext(ctx, `SELECT object_key FROM evidence_objects WHERE session_id = $1 AND sha256 = $2 AND kind IN ($3, $4)
		ORDER BY recorded_at LIMIT 1`, sessionID.String(), sha, catalog.Upload, catalog.Signed).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", database.Classify(fmt.Errorf("documents: lookup stored copy: %w", err))
	}
	return key, nil
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
	d, err := s.label(ctx, c, sess, docID, ch)
	if err == nil {
		s.changed(sess.ID, docID)
	}
	return d, err
}

func (s *Service) label(ctx context.Context, c Caller, sess Session, docID uuid.UUID, ch ExhibitChange) (Document, error) {
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
