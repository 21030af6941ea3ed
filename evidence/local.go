package evidence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Local is an evidence store in a directory of the local file system.
//
// An object is two files side by side: the data, named after the key's last
// segment, and a record ".<name>.meta" holding its SHA-256, size, content
// type, creation time, retention and legal hold. Both are read-only (0444).
// The record is the commit point: a Put streams the data into a temporary
// file, writes the record to another, and hard-links the record into place —
// os.Link fails when the name exists, so of several racing writers exactly
// one wins — and only then links the data into place. A crash between the two
// links leaves a record that names its temporary data file; the next reader
// finishes the job. Retain, LegalHold and Delete rewrite or remove the record
// under an exclusive flock on the data file, so they serialise with each
// other across processes too.
type Local struct {
	root string
	log  *slog.Logger
	bufs sync.Pool // *[]byte of copyBufferSize
}

var _ Store = (*Local)(nil)

// NewLocal opens (creating it if needed) the store in dir. log may be nil.
func NewLocal(dir string, log *slog.Logger) (*Local, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("evidence: local store %q: %w", dir, err)
	}
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("evidence: local store: %w", err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("evidence: local store: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("evidence: local store: %s is not a directory", root)
	}
	s := &Local{root: root, log: log.With("store", "local", "dir", root)}
	s.bufs.New = func() any { b := make([]byte, copyBufferSize); return &b }
	return s, nil
}

// Dir returns the store's absolute directory.
func (s *Local) Dir() string { return s.root }

// localPaths are the file names that make up one object.
type localPaths struct {
	key  string
	dir  string // directory holding the object
	name string // last key segment
	data string // the object's bytes
	meta string // its record
}

func (s *Local) paths(key string) localPaths {
	full := filepath.Join(s.root, filepath.FromSlash(key))
	dir, name := filepath.Split(full)
	return localPaths{
		key:  key,
		dir:  filepath.Clean(dir),
		name: name,
		data: full,
		meta: filepath.Join(dir, "."+name+metaSuffix),
	}
}

// temp returns a fresh temporary name next to the object. Temporary names
// start with '.', which keys never do, and end in ".tmp".
func (p localPaths) temp(kind string) string {
	return filepath.Join(p.dir, "."+p.name+"."+rand.Text()+"."+kind+".tmp")
}

const (
	metaSuffix     = ".meta"
	maxRecordBytes = 64 << 10
	copyBufferSize = 1 << 20
)

// localRecord is the JSON record kept next to each object.
type localRecord struct {
	Version     int       `json:"v"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	ContentType string    `json:"content_type"`
	Created     time.Time `json:"created"`
	RetainUntil time.Time `json:"retain_until,omitzero"`
	LegalHold   bool      `json:"legal_hold,omitempty"`
	// Pending is the base name of the temporary file holding the data until
	// it is linked into place; it lets a reader finish a Put that crashed
	// after committing the record.
	Pending string `json:"pending,omitempty"`
}

func (r localRecord) object(key string) Object {
	return Object{
		Key:         key,
		Size:        r.Size,
		SHA256:      r.SHA256,
		ContentType: r.ContentType,
		Created:     r.Created,
		RetainUntil: r.RetainUntil,
		LegalHold:   r.LegalHold,
	}
}

// Put implements Store.
func (s *Local) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (obj Object, err error) {
	defer func() {
		observe(opPut, &err)
		if err == nil {
			storeBytes.WithLabelValues(opPut).Add(float64(obj.Size))
		}
	}()
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	retain := roundRetention(opts.RetainUntil)
	if !retain.IsZero() {
		if err := checkNewRetention(time.Time{}, retain, time.Now()); err != nil {
			return Object{}, err
		}
	}
	p := s.paths(key)
	if err := s.mkdirs(p); err != nil {
		return Object{}, err
	}
	// Fail fast when the key is taken rather than after streaming what may
	// be gigabytes; the link below is what actually decides.
	if err := s.checkFree(p); err != nil {
		return Object{}, err
	}

	tmp := p.temp("data")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return Object{}, fmt.Errorf("evidence: put %s: %w", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := newHasher()
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	if err := copyData(ctx, f, h, r, *bp); err != nil {
		return Object{}, fmt.Errorf("evidence: put %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return Object{}, fmt.Errorf("evidence: put %s: sync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return Object{}, fmt.Errorf("evidence: put %s: %w", key, err)
	}

	rec := localRecord{
		Version:     1,
		SHA256:      h.hex(),
		Size:        h.n,
		ContentType: contentType(opts.ContentType),
		Created:     now(),
		RetainUntil: retain,
		Pending:     filepath.Base(tmp),
	}
	// Last chance to give up: after the link the object exists.
	if err := ctx.Err(); err != nil {
		return Object{}, fmt.Errorf("evidence: put %s: %w", key, err)
	}
	if err := s.commitRecord(p, rec); err != nil {
		return Object{}, err
	}
	committed = true
	if err := s.finish(p, rec.Pending); err != nil {
		return Object{}, fmt.Errorf("evidence: put %s: committed but not linked (a reader will finish it): %w", key, err)
	}
	return rec.object(key), nil
}

// copyData copies r to f and h, stopping when ctx ends. Each chunk is hashed
// on another core while it is written, so hashing costs little time.
func copyData(ctx context.Context, f io.Writer, h io.Writer, r io.Reader, buf []byte) error {
	hashed := make(chan struct{}, 1)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			go func() {
				h.Write(buf[:n])
				hashed <- struct{}{}
			}()
			_, werr := f.Write(buf[:n])
			<-hashed
			if werr != nil {
				return werr
			}
		}
		if rerr == io.EOF {
			return ctx.Err()
		}
		if rerr != nil {
			return readError{rerr}
		}
	}
}

// checkFree reports ErrExists when key already holds an object (or a file
// that is not one of ours), and a conflict when its name is a directory.
func (s *Local) checkFree(p localPaths) error {
	if _, err := os.Lstat(p.meta); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, p.key)
	}
	fi, err := os.Lstat(p.data)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("evidence: put %s: %w", p.key, err)
	case fi.IsDir():
		return fmt.Errorf("%w: %s: other objects are stored below it (the local store cannot hold both)", ErrInvalidKey, p.key)
	default:
		return fmt.Errorf("%w: %s: a file without a record is in the way", ErrExists, p.key)
	}
}

// mkdirs creates the object's directory and any missing parents, syncing
// each parent so the new entries survive a crash.
func (s *Local) mkdirs(p localPaths) error {
	var missing []string
	for d := p.dir; d != s.root; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%w: %s: %s is an object, not a folder (the local store cannot hold both)", ErrInvalidKey, p.key, d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("evidence: put %s: %w", p.key, err)
		}
		missing = append(missing, d)
	}
	for _, d := range slices.Backward(missing) {
		if err := os.Mkdir(d, 0o750); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue // a concurrent Put made it
			}
			return fmt.Errorf("evidence: put %s: %w", p.key, err)
		}
		if err := syncDir(filepath.Dir(d)); err != nil {
			return fmt.Errorf("evidence: put %s: %w", p.key, err)
		}
	}
	return nil
}

// commitRecord writes rec to a temporary file and links it into place; the
// link fails if the record exists, which makes the key write-once.
func (s *Local) commitRecord(p localPaths, rec localRecord) error {
	tmp, err := writeRecordTemp(p, rec)
	if err != nil {
		return fmt.Errorf("evidence: put %s: %w", p.key, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, p.meta); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, p.key)
		}
		return fmt.Errorf("evidence: put %s: %w", p.key, err)
	}
	return nil
}

// replaceRecord atomically replaces the record of an existing object.
func (s *Local) replaceRecord(p localPaths, rec localRecord) error {
	tmp, err := writeRecordTemp(p, rec)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, p.meta); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(p.dir)
}

func writeRecordTemp(p localPaths, rec localRecord) (string, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	tmp := p.temp("meta")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// finish links the pending data file of a committed record into place.
// Several goroutines may race to do it; all succeed.
func (s *Local) finish(p localPaths, pending string) error {
	if pending == "" {
		return fmt.Errorf("%w: %s: data file missing", ErrNotFound, p.key)
	}
	tmp := filepath.Join(p.dir, pending)
	err := os.Link(tmp, p.data)
	switch {
	case err == nil, errors.Is(err, fs.ErrExist):
		// Linked by us or by a racing reader; drop the temporary name.
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return syncDir(p.dir)
	case errors.Is(err, fs.ErrNotExist):
		// The temporary name is gone: someone linked it and removed it,
		// or the object is being deleted.
		if _, err := os.Lstat(p.data); err == nil {
			return nil
		}
		return fmt.Errorf("%w: %s: data file missing", ErrNotFound, p.key)
	default:
		return err
	}
}

func readRecord(p localPaths) (localRecord, error) {
	f, err := os.Open(p.meta)
	if errors.Is(err, fs.ErrNotExist) {
		return localRecord{}, fmt.Errorf("%w: %s", ErrNotFound, p.key)
	}
	if err != nil {
		return localRecord{}, fmt.Errorf("evidence: %s: %w", p.key, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecordBytes+1))
	if err != nil {
		return localRecord{}, fmt.Errorf("evidence: %s: record: %w", p.key, err)
	}
	var rec localRecord
	if len(b) > maxRecordBytes {
		return localRecord{}, fmt.Errorf("%w: %s: record too large", ErrCorrupt, p.key)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return localRecord{}, fmt.Errorf("%w: %s: record: %v", ErrCorrupt, p.key, err)
	}
	if rec.Version != 1 || !validSHA256Hex(rec.SHA256) || rec.Size < 0 {
		return localRecord{}, fmt.Errorf("%w: %s: malformed record", ErrCorrupt, p.key)
	}
	return rec, nil
}

func validSHA256Hex(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// load returns the record of a complete object, finishing a Put that
// committed its record but did not link its data.
func (s *Local) load(p localPaths) (localRecord, error) {
	rec, err := readRecord(p)
	if err != nil {
		return localRecord{}, err
	}
	fi, err := os.Lstat(p.data)
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.finish(p, rec.Pending); err != nil {
			if errors.Is(err, ErrNotFound) {
				// A delete in progress or interrupted by a crash.
				s.log.Warn("evidence record without data", "key", p.key)
			}
			return localRecord{}, err
		}
		fi, err = os.Lstat(p.data)
	}
	if err != nil {
		return localRecord{}, fmt.Errorf("evidence: %s: %w", p.key, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != rec.Size {
		return localRecord{}, fmt.Errorf("%w: %s: file is %d bytes, record says %d", ErrCorrupt, p.key, fi.Size(), rec.Size)
	}
	return rec, nil
}

// Stat implements Store.
func (s *Local) Stat(ctx context.Context, key string) (obj Object, err error) {
	defer observe(opStat, &err)
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	if err := ctx.Err(); err != nil {
		return Object{}, err
	}
	rec, err := s.load(s.paths(key))
	if err != nil {
		return Object{}, err
	}
	return rec.object(key), nil
}

// open opens the data of a complete object and checks it against its record.
func (s *Local) open(ctx context.Context, key string) (*os.File, localRecord, error) {
	if err := ValidateKey(key); err != nil {
		return nil, localRecord{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, localRecord{}, err
	}
	p := s.paths(key)
	rec, err := s.load(p)
	if err != nil {
		return nil, localRecord{}, err
	}
	f, err := os.Open(p.data)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, localRecord{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, localRecord{}, fmt.Errorf("evidence: open %s: %w", key, err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != rec.Size {
		f.Close()
		return nil, localRecord{}, fmt.Errorf("%w: %s: size changed", ErrCorrupt, key)
	}
	return f, rec, nil
}

// Open implements Store.
func (s *Local) Open(ctx context.Context, key string) (_ Reader, obj Object, err error) {
	defer observe(opGet, &err)
	f, rec, err := s.open(ctx, key)
	if err != nil {
		return nil, Object{}, err
	}
	return &countingReader{r: f}, rec.object(key), nil
}

// Get implements Store.
func (s *Local) Get(ctx context.Context, key string, offset, length int64) (_ io.ReadCloser, err error) {
	defer observe(opGet, &err)
	f, rec, err := s.open(ctx, key)
	if err != nil {
		return nil, err
	}
	n, err := checkRange(offset, length, rec.Size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("evidence: get %s: %w", key, err)
	}
	return countingReadCloser{Reader: io.NewSectionReader(f, offset, n), Closer: f}, nil
}

// List implements Store.
func (s *Local) List(ctx context.Context, prefix string) (objs []Object, err error) {
	defer observe(opList, &err)
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	// Walk the deepest directory that contains every match.
	start := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	startDir := filepath.Join(s.root, filepath.FromSlash(start))
	var keys []string
	err = filepath.WalkDir(startDir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && name == startDir {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(s.root, name)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if name == startDir {
				return nil
			}
			// Prune folders that can hold no match.
			if dk := rel + "/"; !strings.HasPrefix(dk, prefix) && !strings.HasPrefix(prefix, dk) {
				return fs.SkipDir
			}
			return nil
		}
		base := d.Name()
		if !strings.HasPrefix(base, ".") || !strings.HasSuffix(base, metaSuffix) {
			return nil // data and temporary files
		}
		key := path.Join(path.Dir(rel), base[1:len(base)-len(metaSuffix)])
		if strings.HasPrefix(key, prefix) && ValidateKey(key) == nil {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("evidence: list %q: %w", prefix, err)
	}
	slices.Sort(keys)
	objs = make([]Object, 0, len(keys))
	for _, key := range keys {
		rec, err := s.load(s.paths(key))
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("evidence: list %q: %w", prefix, err)
		}
		objs = append(objs, rec.object(key))
	}
	return objs, nil
}

// update runs fn on the record of key under an exclusive flock on its data
// file. The lock is taken on the data file because its inode never changes,
// while the record is replaced by rename; after locking, the name is checked
// to still point at the locked file, so an object deleted meanwhile is
// reported as not found. The lock covers only a read and a small rewrite.
func (s *Local) update(ctx context.Context, key string, fn func(p localPaths, rec *localRecord) (write bool, err error)) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := s.paths(key)
	if _, err := s.load(p); err != nil {
		return err
	}
	f, err := os.Open(p.data)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return fmt.Errorf("evidence: %s: %w", key, err)
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return fmt.Errorf("evidence: lock %s: %w", key, err)
	}
	defer unlockFile(f)
	locked, err := f.Stat()
	if err != nil {
		return fmt.Errorf("evidence: %s: %w", key, err)
	}
	if cur, err := os.Lstat(p.data); err != nil || !os.SameFile(cur, locked) {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	rec, err := readRecord(p)
	if err != nil {
		return err
	}
	write, err := fn(p, &rec)
	if err != nil || !write {
		return err
	}
	rec.Pending = ""
	if err := s.replaceRecord(p, rec); err != nil {
		return fmt.Errorf("evidence: %s: record: %w", key, err)
	}
	return nil
}

// Retain implements Store.
func (s *Local) Retain(ctx context.Context, key string, until time.Time) (err error) {
	defer observe(opRetain, &err)
	until = roundRetention(until)
	return s.update(ctx, key, func(_ localPaths, rec *localRecord) (bool, error) {
		if err := checkNewRetention(rec.RetainUntil, until, time.Now()); err != nil {
			return false, fmt.Errorf("evidence: retain %s: %w", key, err)
		}
		if until.Equal(rec.RetainUntil) {
			return false, nil
		}
		rec.RetainUntil = until
		return true, nil
	})
}

// LegalHold implements Store.
func (s *Local) LegalHold(ctx context.Context, key string, on bool) (err error) {
	defer observe(opLegalHold, &err)
	return s.update(ctx, key, func(_ localPaths, rec *localRecord) (bool, error) {
		if rec.LegalHold == on {
			return false, nil
		}
		rec.LegalHold = on
		return true, nil
	})
}

// Delete implements Store. The data goes first, while the record still
// reserves the key, so no Put can slip in between; then the record.
func (s *Local) Delete(ctx context.Context, key string) (err error) {
	defer observe(opDelete, &err)
	return s.update(ctx, key, func(p localPaths, rec *localRecord) (bool, error) {
		if rec.LegalHold {
			return false, fmt.Errorf("%w: %s: legal hold", ErrRetained, key)
		}
		if t := time.Now(); t.Before(rec.RetainUntil) {
			return false, fmt.Errorf("%w: %s: retained until %s", ErrRetained, key, rec.RetainUntil.Format(time.RFC3339))
		}
		if rec.Pending != "" {
			if err := os.Remove(filepath.Join(p.dir, rec.Pending)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return false, fmt.Errorf("evidence: delete %s: %w", key, err)
			}
		}
		if err := os.Remove(p.data); err != nil {
			return false, fmt.Errorf("evidence: delete %s: %w", key, err)
		}
		if err := os.Remove(p.meta); err != nil {
			return false, fmt.Errorf("evidence: delete %s: record: %w", key, err)
		}
		if err := syncDir(p.dir); err != nil {
			return false, fmt.Errorf("evidence: delete %s: %w", key, err)
		}
		return false, nil
	})
}

// Ping implements Store: the directory must exist and take a new file.
func (s *Local) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.root, ".ping-*.tmp")
	if err != nil {
		return classify(fmt.Errorf("evidence: local store not writable: %w", err))
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return classify(fmt.Errorf("evidence: local store: %w", err))
	}
	return nil
}

// Probe implements Store: a file of probeSize bytes is written to the
// store's directory, synced and removed.
func (s *Local) Probe(ctx context.Context) (err error) {
	defer func() { err = classify(err) }()
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.root, ".probe-*.tmp")
	if err != nil {
		return fmt.Errorf("evidence: local write probe: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(probeData())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("evidence: local write probe: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func unlockFile(f *os.File) { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
