package bundle

import (
	"archive/zip"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/digitorus/pkcs7"
	"github.com/google/uuid"

	"github.com/chamber-court/chamber/pki"
)

// Limits of what Verify reads. Everything else is streamed: evidence
// files through SHA-256, journal.json one entry at a time.
const (
	maxEntries      = 100_000  // files in the zip
	maxManifest     = 16 << 20 // manifest.json
	maxSignature    = 1 << 20  // manifest.json.p7s
	maxJournalValue = 1 << 20  // one journal entry or anchor
	maxAnchors      = 100_000
	// A file over ratioFloor may not claim to inflate more than maxRatio
	// times its compressed size: real bundles hold recordings and PDFs,
	// which hardly compress, and JSON, which compresses tenfold.
	maxRatio   = 200
	ratioFloor = 1 << 20
)

// Problem is one thing wrong with a bundle.
type Problem struct {
	Path   string `json:"path,omitempty"`
	Reason string `json:"reason"`
}

// Report is the result of Verify.
type Report struct {
	Valid       bool      `json:"valid"`
	SessionID   uuid.UUID `json:"session_id"`
	Files       int       `json:"files"`
	Signer      string    `json:"signer,omitempty"`
	SignedAt    time.Time `json:"timestamp,omitzero"`
	TSA         string    `json:"timestamp_authority,omitempty"`
	Entries     int       `json:"journal_entries"`
	JournalHead string    `json:"journal_head,omitempty"`
	Anchors     int       `json:"journal_anchors"`
	Problems    []Problem `json:"problems,omitempty"`
}

func (r *Report) problem(path, format string, args ...any) {
	r.Problems = append(r.Problems, Problem{Path: path, Reason: fmt.Sprintf(format, args...)})
}

// ErrNotBundle reports a file that is not a readable bundle at all.
var ErrNotBundle = errors.New("not a Chamber evidence bundle")

// Verify checks a bundle offline, in this order, and stops at the first
// stage that fails:
//
//  1. the zip itself: at most maxEntries files, every name a clean
//     relative path (no "..", no absolute or Windows path, no control
//     characters), no name twice (nor twice but for case), no file that
//     claims to inflate more than maxRatio times its size;
//  2. the manifest's signature and timestamp against roots: when they do
//     not hold, nothing else in the bundle can be trusted and nothing
//     else is read;
//  3. every file against the manifest (streamed through SHA-256, never
//     read past its declared size) and no file outside it;
//  4. the journal chain and its anchors, streamed one entry at a time.
//
// The bundle is valid only with no problem.
func Verify(r io.ReaderAt, size int64, roots *x509.CertPool) (*Report, error) {
	if roots == nil {
		roots = x509.NewCertPool() // nil would mean the system's roots
	}
	n, err := zipEntries(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotBundle, err)
	}
	rep := &Report{}
	if n > maxEntries {
		rep.problem("", "the zip holds %d files, more than the %d a bundle may", n, maxEntries)
		return rep, nil
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, fmt.Errorf("%w: %v", ErrNotBundle, err)
	}
	files := checkEntries(rep, zr.File)
	if len(rep.Problems) > 0 {
		return rep, nil
	}
	m, ok := verifyManifest(rep, files, roots)
	if !ok {
		return rep, nil
	}
	rep.SessionID, rep.Files = m.SessionID, len(m.Files)
	checkFiles(rep, files, m)
	if zf := files[JournalName]; zf == nil {
		rep.problem(JournalName, "missing")
	} else {
		verifyJournal(rep, zf, roots)
		checkRecord(rep, m, zf)
	}
	rep.Valid = len(rep.Problems) == 0
	return rep, nil
}

// checkRecord adds the problems of CheckRecord: evidence outside the
// record, or missing from it.
func checkRecord(rep *Report, m Manifest, zf *zip.File) {
	rc, err := open(zf)
	if err != nil {
		rep.problem(JournalName, "unreadable: %v", err)
		return
	}
	defer rc.Close()
	rep.Problems = append(rep.Problems, CheckRecord(m, rc)...)
}

// zipEntries reads the number of files from the end of central directory
// record (or its ZIP64 form), before archive/zip allocates a record for
// each of them.
func zipEntries(r io.ReaderAt, size int64) (uint64, error) {
	const eocdLen, maxComment = 22, 65535
	tail := make([]byte, min(size, eocdLen+maxComment))
	if _, err := r.ReadAt(tail, size-int64(len(tail))); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	i := len(tail) - eocdLen
	for ; i >= 0; i-- {
		if binary.LittleEndian.Uint32(tail[i:]) == 0x06054b50 {
			break
		}
	}
	if i < 0 {
		return 0, errors.New("no end of central directory")
	}
	n := uint64(binary.LittleEndian.Uint16(tail[i+10:]))
	if n != 0xffff || i < 20 || binary.LittleEndian.Uint32(tail[i-20:]) != 0x07064b50 {
		return n, nil
	}
	// ZIP64: the locator points at the ZIP64 end of central directory.
	var rec [56]byte
	off := int64(binary.LittleEndian.Uint64(tail[i-20+8:]))
	if off < 0 || off > size-56 {
		return 0, errors.New("bad ZIP64 locator")
	}
	if _, err := r.ReadAt(rec[:], off); err != nil || binary.LittleEndian.Uint32(rec[:]) != 0x06064b50 {
		return 0, errors.New("bad ZIP64 end of central directory")
	}
	return binary.LittleEndian.Uint64(rec[32:]), nil
}

// checkEntries refuses unsafe names, duplicates and zip bombs, and
// returns the files by name.
func checkEntries(rep *Report, entries []*zip.File) map[string]*zip.File {
	files := map[string]*zip.File{}
	folded := map[string]string{}
	for _, f := range entries {
		if why := unsafeName(f.Name); why != "" {
			rep.problem(f.Name, "refused: %s", why)
			continue
		}
		if _, dup := files[f.Name]; dup {
			rep.problem(f.Name, "refused: appears twice in the zip")
			continue
		}
		if other, dup := folded[strings.ToLower(f.Name)]; dup {
			rep.problem(f.Name, "refused: the same name as %s but for case", other)
			continue
		}
		if why := bomb(f); why != "" {
			rep.problem(f.Name, "refused: %s", why)
			continue
		}
		files[f.Name] = f
		folded[strings.ToLower(f.Name)] = f.Name
	}
	return files
}

// unsafeName says why a name could write outside a directory it is
// extracted to, or mean different files to different tools.
func unsafeName(name string) string {
	clean := strings.TrimSuffix(name, "/")
	switch {
	case name == "" || clean == "":
		return "an empty name"
	case !utf8.ValidString(name):
		return "a name that is not UTF-8"
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "a control character in the name"
	case strings.Contains(name, `\`):
		return "a backslash in the name"
	case strings.HasPrefix(name, "/"):
		return "an absolute path"
	case len(clean) >= 2 && clean[1] == ':':
		return "a drive letter"
	case path.Clean(clean) != clean:
		return "a path that is not clean (.., . or //)"
	case clean == ".." || strings.HasPrefix(clean, "../"):
		return "a path outside the bundle (..)"
	}
	return ""
}

// bomb says why an entry's sizes are not believable.
func bomb(f *zip.File) string {
	switch {
	case f.Method != zip.Store && f.Method != zip.Deflate:
		return fmt.Sprintf("compression method %d", f.Method)
	case f.Method == zip.Store && f.UncompressedSize64 != f.CompressedSize64:
		return "a stored file whose sizes differ"
	case f.UncompressedSize64 > ratioFloor && f.UncompressedSize64/max(f.CompressedSize64, 1) > maxRatio:
		return fmt.Sprintf("claims %d bytes from %d compressed (more than %d:1)", f.UncompressedSize64, f.CompressedSize64, maxRatio)
	}
	return ""
}

// open opens a zip file for reading no further than its declared size;
// archive/zip also fails a read that goes past it.
func open(f *zip.File) (io.ReadCloser, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, int64(f.UncompressedSize64)), rc}, nil
}

func readSmall(f *zip.File, limit int64) ([]byte, error) {
	if f == nil {
		return nil, errors.New("not in the bundle")
	}
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	rc, err := open(f)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// verifyManifest checks the manifest's signature and timestamp, then
// parses it; ok is false when the bundle cannot be trusted.
func verifyManifest(rep *Report, files map[string]*zip.File, roots *x509.CertPool) (Manifest, bool) {
	manifest, err := readSmall(files[ManifestName], maxManifest)
	if err != nil {
		rep.problem(ManifestName, "missing or unreadable: %v", err)
		return Manifest{}, false
	}
	sig, err := readSmall(files[SignatureName], maxSignature)
	if err != nil {
		rep.problem(SignatureName, "missing or unreadable: %v", err)
		return Manifest{}, false
	}
	if !verifySignature(rep, manifest, sig, roots) {
		return Manifest{}, false
	}
	var m Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		rep.problem(ManifestName, "signed, but not a valid manifest: %v", err)
		return Manifest{}, false
	}
	if len(m.Files) > maxEntries {
		rep.problem(ManifestName, "lists %d files, more than %d", len(m.Files), maxEntries)
		return Manifest{}, false
	}
	return m, true
}

// verifySignature checks the detached CMS signature over the manifest
// and its RFC 3161 timestamp.
func verifySignature(rep *Report, manifest, sig []byte, roots *x509.CertPool) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			rep.problem(SignatureName, "not a CMS signature: parser panic: %v", p)
			ok = false
		}
	}()
	p7, err := pkcs7.Parse(sig)
	if err != nil {
		rep.problem(SignatureName, "not a CMS signature: %v", err)
		return false
	}
	if len(p7.Signers) != 1 {
		rep.problem(SignatureName, "has %d signers, want 1", len(p7.Signers))
		return false
	}
	p7.Content = manifest
	si := p7.Signers[0]
	var token []byte
	for _, a := range si.UnauthenticatedAttributes {
		if a.Type.Equal(oidTimestampToken) {
			token = a.Value.Bytes // the attribute's value is a SET holding the token
		}
	}
	if token == nil {
		rep.problem(SignatureName, "carries no RFC 3161 timestamp")
		return false
	}
	digest := sha256.Sum256(si.EncryptedDigest)
	at, tsa, err := pki.VerifyTimestamp(token, digest[:], roots)
	if err != nil {
		rep.problem(SignatureName, "timestamp does not verify: %v", err)
		return false
	}
	if err := p7.VerifyWithChainAtTime(roots, at); err != nil {
		rep.problem(ManifestName, "signature does not verify: %v", err)
		return false
	}
	rep.SignedAt, rep.TSA = at, tsa.Subject.String()
	if c := p7.GetOnlySigner(); c != nil {
		rep.Signer = c.Subject.String()
	}
	return true
}

// checkFiles hashes every listed file and names files nobody listed.
func checkFiles(rep *Report, files map[string]*zip.File, m Manifest) {
	listed := map[string]bool{ManifestName: true, SignatureName: true}
	for _, f := range m.Files {
		listed[f.Path] = true
		zf := files[f.Path]
		if zf == nil {
			rep.problem(f.Path, "listed in the manifest but missing from the bundle")
			continue
		}
		if zf.UncompressedSize64 != uint64(f.Size) {
			rep.problem(f.Path, "size %d does not match the manifest's %d", zf.UncompressedSize64, f.Size)
			continue
		}
		sum, n, err := hashFile(zf)
		switch {
		case err != nil:
			rep.problem(f.Path, "unreadable: %v", err)
		case sum != f.SHA256:
			rep.problem(f.Path, "SHA-256 %s does not match the manifest's %s: the file was changed", sum, f.SHA256)
		case n != f.Size:
			rep.problem(f.Path, "size %d does not match the manifest's %d", n, f.Size)
		}
	}
	for name := range files {
		if !listed[name] && !strings.HasSuffix(name, "/") {
			rep.problem(name, "in the bundle but not in the signed manifest")
		}
	}
}

func hashFile(f *zip.File) (string, int64, error) {
	rc, err := open(f)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
