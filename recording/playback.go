package recording

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/recording/webm"
)

// The read side: what the playback page is served. Only what the record
// names is served — a recording whose stop is recorded, and objects the
// evidence catalog holds under that recording's key prefix, checked
// against the SHA-256 the catalog holds for them.

// maxManifestSize bounds the manifest read into memory: a day's recording
// with a speaker change every second is a few megabytes.
const maxManifestSize = 32 << 20

// Recorded is a recording of a session's record, as the playback page
// lists it.
type Recorded struct {
	ID             uuid.UUID `json:"id"`
	StartedAt      time.Time `json:"started_at"`
	StoppedAt      time.Time `json:"stopped_at"`
	StartedBy      string    `json:"started_by"`
	Recovered      bool      `json:"recovered"`
	Files          int       `json:"files"`
	ManifestKey    string    `json:"manifest_key"`
	ManifestSHA256 string    `json:"manifest_sha256"`
	Composite      Composite `json:"composite"`
	Manifest       *Manifest `json:"manifest,omitempty"`
	manifestObject catalog.Object
}

// Manifest is a recording's manifest as served: the stored manifest and
// the name each file is served under.
type Manifest struct {
	webm.Manifest
	// Names are the files' names under …/recordings/{id}/files/, in the
	// order of Files.
	Names []string `json:"names"`
}

// Recordings lists a session's recorded recordings, oldest first. Running
// recordings, and stopped ones not yet stored and recorded, are not part
// of the record yet and are left out.
func (c *Controller) Recordings(ctx context.Context, sessionID uuid.UUID) ([]Recorded, error) {
	rows, err := c.cfg.DB.QueryContext(ctx, `SELECT id, started_by, started_at, stopped_at, manifest_key, manifest_sha256, files, recovered
		FROM recordings WHERE session_id = $1 AND manifest_key <> '' ORDER BY started_at, id`, sessionID.String())
	if err != nil {
		return nil, database.Classify(fmt.Errorf("recording: list: %w", err))
	}
	defer rows.Close()
	out := []Recorded{}
	for rows.Next() {
		var (
			r         Recorded
			id        string
			started   int64
			stopped   sql.NullInt64
			recovered bool
		)
		if err := rows.Scan(&id, &r.StartedBy, &started, &stopped, &r.ManifestKey, &r.ManifestSHA256, &r.Files, &recovered); err != nil {
			return nil, database.Classify(fmt.Errorf("recording: list: %w", err))
		}
		if r.ID, err = uuid.Parse(id); err != nil {
			return nil, fmt.Errorf("recording: list: %w", err)
		}
		r.StartedAt, r.StoppedAt, r.Recovered = database.Time(started), database.NullTime(stopped), recovered
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, database.Classify(fmt.Errorf("recording: list: %w", err))
	}
	objs, err := catalog.Session(ctx, c.cfg.DB, sessionID)
	if err != nil {
		return nil, database.Classify(err)
	}
	for i := range out {
		out[i].Composite = c.composites.state(out[i].ID, objs)
	}
	return out, nil
}

// Recording returns one recorded recording of a session with its manifest,
// read from the evidence store and checked against the record.
func (c *Controller) Recording(ctx context.Context, sessionID, recordingID uuid.UUID) (Recorded, error) {
	list, err := c.Recordings(ctx, sessionID)
	if err != nil {
		return Recorded{}, err
	}
	for _, r := range list {
		if r.ID != recordingID {
			continue
		}
		m, obj, err := c.readManifest(ctx, sessionID, r)
		if err != nil {
			return Recorded{}, err
		}
		served := Manifest{Manifest: m, Names: make([]string, len(m.Files))}
		for i, f := range m.Files {
			served.Names[i] = fileName(f.Key)
		}
		r.Manifest, r.manifestObject = &served, obj
		return r, nil
	}
	return Recorded{}, fmt.Errorf("recording %s: %w", recordingID, fault.NotFound)
}

// readManifest reads a recording's stored manifest, which must be the one
// its row and the catalog name, with their SHA-256.
func (c *Controller) readManifest(ctx context.Context, sessionID uuid.UUID, r Recorded) (webm.Manifest, catalog.Object, error) {
	obj, ok, err := catalog.Lookup(ctx, c.cfg.DB, sessionID, r.ManifestKey)
	if err != nil {
		return webm.Manifest{}, catalog.Object{}, database.Classify(err)
	}
	if !ok || obj.SHA256 != r.ManifestSHA256 || obj.Kind != catalog.RecordingManifest {
		return webm.Manifest{}, catalog.Object{}, fmt.Errorf("%w: recording %s: its manifest %s is not the catalog's", evidence.ErrCorrupt, r.ID, r.ManifestKey)
	}
	b, err := c.readVerified(ctx, obj, maxManifestSize)
	if err != nil {
		return webm.Manifest{}, catalog.Object{}, err
	}
	var m webm.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return webm.Manifest{}, catalog.Object{}, fmt.Errorf("recording %s: manifest: %w", r.ID, err)
	}
	if m.RecordingID != r.ID || m.SessionID != sessionID {
		return webm.Manifest{}, catalog.Object{}, fmt.Errorf("%w: manifest %s names recording %s of session %s", evidence.ErrCorrupt, obj.Key, m.RecordingID, m.SessionID)
	}
	return m, obj, nil
}

// readVerified reads a small catalogued object whole and checks its size
// and SHA-256 against the catalog.
func (c *Controller) readVerified(ctx context.Context, obj catalog.Object, limit int64) ([]byte, error) {
	if obj.Size > limit {
		return nil, fmt.Errorf("recording: %s is %d bytes, more than %d: %w", obj.Key, obj.Size, limit, fault.TooLarge)
	}
	rc, err := c.cfg.Store.Get(ctx, obj.Key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("recording: read %s: %w", obj.Key, err)
	}
	if int64(len(b)) != obj.Size || sha256Hex(b) != obj.SHA256 {
		return nil, fmt.Errorf("%w: %s", evidence.ErrCorrupt, obj.Key)
	}
	return b, nil
}

// servedKinds are the kinds of object a recording's files route serves.
var servedKinds = map[string]bool{
	catalog.RecordingFile: true, catalog.RecordingManifest: true, catalog.RecordingComposite: true,
}

// fileName is the name a recording's object is served under: the last
// segment of its key.
func fileName(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }

// Open opens a file of a recorded recording — one of its media files, its
// manifest or its composite — by the name it is served under, for reading
// with byte ranges. Only an object the catalog names as part of the
// session's record, under the recording's key prefix, is opened, and only
// if the store holds the bytes the catalog recorded (size and SHA-256).
// Anything else is NotFound.
func (c *Controller) Open(ctx context.Context, sessionID, recordingID uuid.UUID, name string) (evidence.Reader, evidence.Object, error) {
	key := prefix(sessionID) + recordingID.String() + "/" + name
	if name == "" || strings.ContainsAny(name, "/\\") || evidence.ValidateKey(key) != nil {
		return nil, evidence.Object{}, fmt.Errorf("recording file %q: %w", name, fault.NotFound)
	}
	obj, ok, err := catalog.Lookup(ctx, c.cfg.DB, sessionID, key)
	if err != nil {
		return nil, evidence.Object{}, database.Classify(err)
	}
	if !ok || !servedKinds[obj.Kind] {
		return nil, evidence.Object{}, fmt.Errorf("recording file %s: %w", key, fault.NotFound)
	}
	rd, stored, err := c.cfg.Store.Open(ctx, key)
	if errors.Is(err, evidence.ErrNotFound) {
		// Recorded but gone from the store: the reconciler reports it.
		return nil, evidence.Object{}, fmt.Errorf("%w: %s is recorded but not stored", evidence.ErrCorrupt, key)
	}
	if err != nil {
		return nil, evidence.Object{}, err
	}
	if stored.Size != obj.Size || (stored.SHA256 != "" && stored.SHA256 != obj.SHA256) {
		rd.Close()
		return nil, evidence.Object{}, fmt.Errorf("%w: %s: stored %d bytes %s, recorded %d bytes %s", evidence.ErrCorrupt, key,
			stored.Size, stored.SHA256, obj.Size, obj.SHA256)
	}
	stored.SHA256 = obj.SHA256
	return rd, stored, nil
}
