// Package documents keeps a session's documents — evidence, exhibits, the
// will or contract of a notarial act — as write-once versions in the
// evidence store: uploads streamed with their SHA-256 computed on the way,
// exhibit labels and statuses, and PAdES signatures that each add a
// version. Every change is journalled with the SHA-256 of what it concerns.
//
// The package does not know how callers authenticate: the HTTP floor
// resolves the caller's role in the session and passes a Caller.
package documents

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
)

// Errors are fault errors: fault.NotFound for a document the caller may
// not see, fault.TooLarge over the upload limit, fault.Unsupported for a
// refused content type, fault.Invalid naming the field, fault.Conflict when
// the document's state forbids a change.

// Caller is who is acting, as the session layer established it.
type Caller = access.Caller

// Session is what documents need to know of a session.
type Session struct {
	ID    uuid.UUID
	Kind  access.Kind
	Title string
	// ActNumber is the notarial number once sealed, for seals.
	ActNumber string
}

// Document is one document with its version history.
type Document struct {
	ID          uuid.UUID `json:"id"`
	SessionID   uuid.UUID `json:"session_id"`
	Name        string    `json:"name"`
	ContentType string    `json:"content_type"`
	// Size and SHA256 are the original upload's.
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	Version int    `json:"version"` // the newest version
	// NewestSize and NewestSHA256 are the newest version's (a signature
	// adds a version: this is what the next signer signs).
	NewestSize   int64      `json:"newest_size"`
	NewestSHA256 string     `json:"newest_sha256"`
	Label        string     `json:"label,omitempty"`
	Status       string     `json:"status,omitempty"`
	UploadedBy   string     `json:"uploaded_by"`
	CreatedAt    time.Time  `json:"created_at"`
	Signatures   int        `json:"signatures"`
	Versions     []Version  `json:"versions,omitempty"`
	uploaderID   *uuid.UUID `json:"-"`
}

// Version is one stored version of a document.
type Version struct {
	Version    int       `json:"version"`
	Kind       string    `json:"kind"` // "original" or "signed"
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"`
	CreatedBy  string    `json:"created_by"`
	CreatedAt  time.Time `json:"created_at"`
	Signer     string    `json:"signer,omitempty"`
	SignerRole string    `json:"signer_role,omitempty"`
	key        string
}

// Exhibit statuses.
const (
	StatusSubmitted = "submitted"
	StatusAdmitted  = "admitted"
	StatusRejected  = "rejected"
)

// Config configures a Service.
type Config struct {
	DB      *database.DB
	Journal *journal.Journal
	Store   evidence.Store
	Logger  *slog.Logger
	// MaxUpload bounds an upload in bytes (default 200 MiB).
	MaxUpload int64
	// Retention keeps every stored version for this long (0: none).
	Retention time.Duration
	// TempDir holds signing's intermediate files (default os.TempDir()).
	TempDir string
	// Signing makes signatures; nil disables signing.
	Signing *Signing
}

// Service manages documents.
type Service struct {
	db        *database.DB
	journal   *journal.Journal
	store     evidence.Store
	catalog   *catalog.Catalog
	log       *slog.Logger
	maxUpload int64
	retention time.Duration
	tempDir   string
	signing   *Signing
	now       func() time.Time
	notifier  notifier
}

// New returns a document service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	maxUpload := cfg.MaxUpload
	if maxUpload <= 0 {
		maxUpload = 200 << 20
	}
	return &Service{
		db: cfg.DB, journal: cfg.Journal, store: cfg.Store, log: cfg.Logger,
		catalog:   catalog.New(catalog.Config{DB: cfg.DB, Store: cfg.Store, Journal: cfg.Journal, Logger: cfg.Logger}),
		maxUpload: maxUpload, retention: cfg.Retention, tempDir: cfg.TempDir, signing: cfg.Signing,
		now: database.Now,
	}
}

// MaxUpload is the configured upload limit.
func (s *Service) MaxUpload() int64 { return s.maxUpload }

// Visible reports whether the caller may see d: roles that see all
// documents see it; others see their own uploads and admitted exhibits.
func Visible(c Caller, d Document) bool {
	if access.Allowed(c.Role, access.SeeAllDocs) {
		return true
	}
	if !access.Allowed(c.Role, access.SeeDocuments) {
		return false
	}
	if d.uploaderID != nil && c.ParticipantID != uuid.Nil && *d.uploaderID == c.ParticipantID {
		return true
	}
	return d.Status == StatusAdmitted
}

const documentColumns = `d.id, d.session_id, d.name, d.content_type, d.sha256, d.uploaded_by, d.uploader_id, d.label, d.status, d.created_at,
	(SELECT size FROM document_versions v WHERE v.document_id = d.id AND v.version = 1),
	(SELECT MAX(version) FROM document_versions v WHERE v.document_id = d.id),
	(SELECT COUNT(*) FROM document_versions v WHERE v.document_id = d.id AND v.kind = 'signed'),
	(SELECT v.size FROM document_versions v WHERE v.document_id = d.id ORDER BY v.version DESC LIMIT 1),
	(SELECT v.sha256 FROM document_versions v WHERE v.document_id = d.id ORDER BY v.version DESC LIMIT 1)`

func scanDocument(row interface{ Scan(...any) error }) (Document, error) {
	var (
		d                 Document
		id, sessionID     string
		uploader          sql.NullString
		created           int64
		size              sql.NullInt64
		version, sigCount sql.NullInt64
		newestSize        sql.NullInt64
		newestSHA256      sql.NullString
	)
	if err := row.Scan(&id, &sessionID, &d.Name, &d.ContentType, &d.SHA256, &d.UploadedBy, &uploader, &d.Label, &d.Status,
		&created, &size, &version, &sigCount, &newestSize, &newestSHA256); err != nil {
		return Document{}, err
	}
	d.ID, _ = uuid.Parse(id)
	d.SessionID, _ = uuid.Parse(sessionID)
	if uploader.Valid {
		if u, err := uuid.Parse(uploader.String); err == nil {
			d.uploaderID = &u
		}
	}
	d.CreatedAt = database.Time(created)
	d.Size, d.Version, d.Signatures = size.Int64, int(version.Int64), int(sigCount.Int64)
	d.NewestSize, d.NewestSHA256 = newestSize.Int64, newestSHA256.String
	return d, nil
}

// Get returns a document with its versions. Callers check Visible.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (Document, error) {
	d, err := scanDocument(s.db.QueryRowContext(ctx, `SELECT `+documentColumns+` FROM documents d WHERE d.id = $1`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return Document{}, fmt.Errorf("document %s: %w", id, fault.NotFound)
	}
	if err != nil {
		return Document{}, database.Classify(fmt.Errorf("documents: get: %w", err))
	}
	if d.Versions, err = s.versions(ctx, id); err != nil {
		return Document{}, err
	}
	return d, nil
}

func (s *Service) versions(ctx context.Context, id uuid.UUID) ([]Version, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT version, kind, size, sha256, created_by, created_at, signer, signer_role, object_key
		FROM document_versions WHERE document_id = $1 ORDER BY version`, id.String())
	if err != nil {
		return nil, database.Classify(fmt.Errorf("documents: versions: %w", err))
	}
	defer rows.Close()
	var out []Version
	for rows.Next() {
		var (
			v       Version
			created int64
		)
		if err := rows.Scan(&v.Version, &v.Kind, &v.Size, &v.SHA256, &v.CreatedBy, &created, &v.Signer, &v.SignerRole, &v.key); err != nil {
			return nil, err
		}
		v.CreatedAt = database.Time(created)
		out = append(out, v)
	}
	return out, rows.Err()
}

// List returns the session's documents the caller may see.
func (s *Service) List(ctx context.Context, c Caller, sessionID uuid.UUID) ([]Document, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+documentColumns+` FROM documents d WHERE d.session_id = $1 ORDER BY d.created_at, d.id`, sessionID.String())
	if err != nil {
		return nil, database.Classify(fmt.Errorf("documents: list: %w", err))
	}
	defer rows.Close()
	out := []Document{}
	for rows.Next() {
		d, err := scanDocument(rows)
		if err != nil {
			return nil, err
		}
		if Visible(c, d) {
			out = append(out, d)
		}
	}
	return out, rows.Err()
}

// Open opens one version (0 = newest) for reading.
func (s *Service) Open(ctx context.Context, d Document, version int) (evidence.Reader, Version, error) {
	if version == 0 {
		version = d.Version
	}
	for _, v := range d.Versions {
		if v.Version == version {
			r, obj, err := s.store.Open(ctx, v.key)
			if err != nil {
				return nil, Version{}, fmt.Errorf("documents: open %s v%d: %w", d.ID, version, err)
			}
			if obj.SHA256 != "" && obj.SHA256 != v.SHA256 {
				r.Close()
				return nil, Version{}, fmt.Errorf("documents: %s v%d: stored object's SHA-256 %s differs from the record %s: %w",
					d.ID, version, obj.SHA256, v.SHA256, evidence.ErrCorrupt)
			}
			return r, v, nil
		}
	}
	return nil, Version{}, fmt.Errorf("document %s has no version %d: %w", d.ID, version, fault.NotFound)
}

// objectKey is where an upload's bytes live: under a document ID made for
// this upload, so no attempt ever meets another's key.
func objectKey(sessionID, docID uuid.UUID, version int, contentType string) string {
	return fmt.Sprintf("sessions/%s/documents/%s/v%d%s", sessionID, docID, version, Extension(contentType))
}

// signedKey is where a signed version's bytes live: the version number and
// an attempt ID, so an attempt whose transaction failed (its object
// orphaned, perhaps under retention somewhere) never blocks the next.
func signedKey(sessionID, docID uuid.UUID, version int) string {
	return fmt.Sprintf("sessions/%s/documents/%s/v%d-%s.pdf", sessionID, docID, version, attemptID())
}

// attemptID is a short random ID that keeps one write's key apart from
// every other attempt's.
func attemptID() string { return strings.ToLower(rand.Text()[:10]) }

// Extension is the file name extension for a sniffed content type.
func Extension(contentType string) string {
	switch contentType {
	case TypePDF:
		return ".pdf"
	case TypeJPEG:
		return ".jpg"
	case TypePNG:
		return ".png"
	case TypeWebM:
		return ".webm"
	case TypeMP4:
		return ".mp4"
	case TypeOgg:
		return ".ogg"
	case TypeText:
		return ".txt"
	}
	return ""
}

func (s *Service) tx(ctx context.Context, f func(tx *sql.Tx) error) error {
	return s.db.InTx(ctx, f)
}

// retainUntil is the retention date for objects stored now.
func (s *Service) retainUntil() time.Time {
	if s.retention <= 0 {
		return time.Time{}
	}
	return s.now().Add(s.retention)
}
