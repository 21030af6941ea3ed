// Package bundle builds a session's evidence bundle — every artefact, its
// journal with timestamp anchors, and a manifest signed by the court's or
// notary's certificate with an RFC 3161 timestamp — and verifies one
// offline, on a machine with no Chamber server.
package bundle

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/digitorus/pkcs7"
	"github.com/google/uuid"

	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
)

// Names inside the zip.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.json.p7s"
	JournalName   = "journal.json"
	ChatName      = "chat.json"
	SessionName   = "session.json"
	ReadmeName    = "README.txt"
	evidenceDir   = "evidence/"
)

// oidTimestampToken is id-aa-timeStampToken (RFC 3161 appendix A).
var oidTimestampToken = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14}

// Manifest lists every file of the bundle with its SHA-256 and size.
//
// Version 2 adds a promise the verifier checks (CheckRecord): the files
// under evidence/ are exactly the objects the session's journal lists as
// part of its record, with their SHA-256s — no failed write rides along,
// and nothing recorded is left out.
type Manifest struct {
	Version     int       `json:"version"`
	SessionID   uuid.UUID `json:"session_id"`
	GeneratedAt time.Time `json:"generated_at"`
	GeneratedBy string    `json:"generated_by"`
	Files       []File    `json:"files"`
}

// File is one file of the bundle.
type File struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Source is the evidence-store key the file was copied from.
	Source string `json:"source,omitempty"`
}

// JournalFile is journal.json: the session's entries, chained among
// themselves, and the timestamp anchors over them.
type JournalFile struct {
	Entries []journal.Entry  `json:"entries"`
	Anchors []journal.Anchor `json:"anchors"`
}

// Timestamper stamps a SHA-256 digest (RFC 3161).
type Timestamper interface {
	Timestamp(ctx context.Context, sha256Digest []byte) ([]byte, error)
}

// ManifestVersion is the version Build writes.
const ManifestVersion = 2

// Config is what Build needs.
type Config struct {
	Store   evidence.Store
	Journal *journal.Journal
	// Record lists the objects of a session's record (the evidence
	// catalog): the bundle carries exactly these, never a listing of the
	// store, which may hold failed writes.
	Record func(ctx context.Context, sessionID uuid.UUID) ([]catalog.Object, error)
	Signer pki.Signer
	TSA    Timestamper
}

// Build writes the bundle of a session to w. session is the session's
// description (its metadata, act, participants, documents), stored as
// session.json. Evidence objects are streamed, never held in memory.
func Build(ctx context.Context, w io.Writer, cfg Config, sessionID uuid.UUID, session any, actor string) (Manifest, error) {
	zw := zip.NewWriter(w)
	m := Manifest{Version: ManifestVersion, SessionID: sessionID, GeneratedAt: time.Now().UTC().Truncate(time.Second), GeneratedBy: actor}
	add := func(name, source string, r io.Reader) error {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: m.GeneratedAt})
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(fw, h), r)
		if err != nil {
			return fmt.Errorf("bundle: %s: %w", name, err)
		}
		m.Files = append(m.Files, File{Path: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, Source: source})
		return nil
	}
	addJSON := func(name string, v any) error {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		return add(name, "", strings.NewReader(string(b)+"\n"))
	}

	if err := addEvidence(ctx, cfg, sessionID, add, &m); err != nil {
		return Manifest{}, err
	}

	entries, err := cfg.Journal.Session(ctx, sessionID, 0, 0)
	if err != nil {
		return Manifest{}, err
	}
	jf := JournalFile{Entries: entries, Anchors: []journal.Anchor{}}
	if len(entries) > 0 {
		anchors, err := cfg.Journal.AnchorsBetween(ctx, entries[0].Seq, entries[len(entries)-1].Seq)
		if err != nil {
			return Manifest{}, err
		}
		mine := map[int64]string{}
		for _, e := range entries {
			mine[e.Seq] = e.Hash
		}
		// Only anchors over this session's own entries can be checked
		// without the rest of the journal.
		for _, a := range anchors {
			if mine[a.Seq] == a.Hash {
				jf.Anchors = append(jf.Anchors, a)
			}
		}
	}
	// Compact, so each entry's details keep the exact bytes its hash covers.
	jb, err := json.Marshal(jf)
	if err != nil {
		return Manifest{}, err
	}
	if err := add(JournalName, "", strings.NewReader(string(jb))); err != nil {
		return Manifest{}, err
	}
	var chat []map[string]any
	for _, e := range entries {
		if e.Action == "chat.message" {
			var d map[string]any
			json.Unmarshal(e.Details, &d)
			d["at"], d["seq"] = e.At, e.Seq
			chat = append(chat, d)
		}
	}
	if chat == nil {
		chat = []map[string]any{}
	}
	if err := addJSON(ChatName, chat); err != nil {
		return Manifest{}, err
	}
	if err := addJSON(SessionName, session); err != nil {
		return Manifest{}, err
	}
	if err := add(ReadmeName, "", strings.NewReader(readme)); err != nil {
		return Manifest{}, err
	}

	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, err
	}
	sig, err := sign(ctx, manifest, cfg.Signer, cfg.TSA)
	if err != nil {
		return Manifest{}, err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{ManifestName, manifest}, {SignatureName, sig}} {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: m.GeneratedAt})
		if err != nil {
			return Manifest{}, err
		}
		if _, err := fw.Write(f.data); err != nil {
			return Manifest{}, err
		}
	}
	return m, zw.Close()
}

// addEvidence adds the objects of the session's record, each checked
// against the SHA-256 the record holds for it.
func addEvidence(ctx context.Context, cfg Config, sessionID uuid.UUID, add func(name, source string, r io.Reader) error, m *Manifest) error {
	if cfg.Record == nil {
		return errors.New("bundle: no record to take the evidence from")
	}
	objs, err := cfg.Record(ctx, sessionID)
	if err != nil {
		return fmt.Errorf("bundle: the session's record: %w", err)
	}
	prefix := "sessions/" + sessionID.String() + "/"
	for _, o := range objs {
		rc, err := cfg.Store.Get(ctx, o.Key, 0, -1)
		if err != nil {
			return fmt.Errorf("bundle: read %s: %w", o.Key, err)
		}
		err = add(evidenceDir+strings.TrimPrefix(o.Key, prefix), o.Key, rc)
		rc.Close()
		if err != nil {
			return err
		}
		// The copy must be what the record says was stored.
		if f := m.Files[len(m.Files)-1]; f.SHA256 != o.SHA256 || f.Size != o.Size {
			return fmt.Errorf("bundle: %s: %w (recorded %s, %d bytes; read %s, %d bytes)", o.Key, evidence.ErrCorrupt, o.SHA256, o.Size, f.SHA256, f.Size)
		}
	}
	return nil
}

// sign makes a detached CMS signature over data with an RFC 3161
// timestamp over the signature value (CAdES-T style).
func sign(ctx context.Context, data []byte, signer pki.Signer, tsa Timestamper) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(data)
	if err != nil {
		return nil, fmt.Errorf("bundle: sign: %w", err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(signer.Certificate(), pki.CryptoSigner(ctx, signer), signer.Chain(), pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("bundle: sign: %w", err)
	}
	sd.Detach()
	info := sd.GetSignedData()
	digest := sha256.Sum256(info.SignerInfos[0].EncryptedDigest)
	token, err := tsa.Timestamp(ctx, digest[:])
	if err != nil {
		return nil, fmt.Errorf("bundle: timestamp the manifest signature: %w", err)
	}
	if err := info.SignerInfos[0].SetUnauthenticatedAttributes([]pkcs7.Attribute{{Type: oidTimestampToken, Value: asn1.RawValue{FullBytes: token}}}); err != nil {
		return nil, err
	}
	return sd.Finish()
}

const readme = `Chamber evidence bundle
=======================

manifest.json      every file of this bundle with its SHA-256 and size
manifest.json.p7s  detached CMS signature over manifest.json by the court's or
                   notary's certificate, with an RFC 3161 timestamp
journal.json       the session's journal entries, hash-chained among
                   themselves, and the RFC 3161 timestamp anchors over them
chat.json          the session's chat, as journalled
session.json       the session, its act, participants and documents
evidence/          documents and all their versions, identity evidence,
                   recordings and their manifests, archived journals

Verify offline:    chamber bundle verify BUNDLE.zip --trust CA.pem
or by hand:        openssl cms -verify -binary -inform DER -in manifest.json.p7s \
                     -content manifest.json -CAfile CA.pem -purpose any
                   sha256sum each file against manifest.json
`

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

// ErrNotBundle reports a file that is not a readable bundle at all.
var ErrNotBundle = errors.New("not a Chamber evidence bundle")

// Verify checks a bundle offline: the manifest's signature and timestamp
// against roots, every file against the manifest (and no file outside it),
// and the journal chain and its anchors. It reports every problem it
// finds; the bundle is valid only with none.
func Verify(r io.ReaderAt, size int64, roots *x509.CertPool) (*Report, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotBundle, err)
	}
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		if _, dup := files[f.Name]; dup {
			return &Report{Problems: []Problem{{Path: f.Name, Reason: "appears twice in the zip"}}}, nil
		}
		files[f.Name] = f
	}
	rep := &Report{}
	problem := func(path, format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{Path: path, Reason: fmt.Sprintf(format, args...)})
	}
	manifestBytes, err := readAll(files[ManifestName], 16<<20)
	if err != nil {
		problem(ManifestName, "missing or unreadable: %v", err)
		return rep, nil
	}
	var m Manifest
	if err := json.Unmarshal(manifestBytes, &m); err != nil {
		// Still check the signature: it says whether the manifest was
		// changed or was never Chamber's.
		problem(ManifestName, "not a valid manifest: %v", err)
	}
	rep.SessionID, rep.Files = m.SessionID, len(m.Files)

	if sig, err := readAll(files[SignatureName], 1<<20); err != nil {
		problem(SignatureName, "missing or unreadable: %v", err)
	} else {
		verifySignature(rep, manifestBytes, sig, roots, problem)
	}
	if len(rep.Problems) > 0 && m.Version == 0 {
		return rep, nil
	}

	listed := map[string]bool{ManifestName: true, SignatureName: true}
	for _, f := range m.Files {
		listed[f.Path] = true
		zf := files[f.Path]
		if zf == nil {
			problem(f.Path, "listed in the manifest but missing from the bundle")
			continue
		}
		sum, n, err := hashFile(zf)
		switch {
		case err != nil:
			problem(f.Path, "unreadable: %v", err)
		case sum != f.SHA256:
			problem(f.Path, "SHA-256 %s does not match the manifest's %s: the file was changed", sum, f.SHA256)
		case n != f.Size:
			problem(f.Path, "size %d does not match the manifest's %d", n, f.Size)
		}
	}
	for name := range files {
		if !listed[name] && !strings.HasSuffix(name, "/") {
			problem(name, "in the bundle but not in the signed manifest")
		}
	}

	if jb, err := readAll(files[JournalName], 1<<30); err != nil {
		problem(JournalName, "missing or unreadable: %v", err)
	} else {
		verifyJournal(rep, jb, roots, problem)
		for _, p := range CheckRecord(m, jb) {
			problem(p.Path, "%s", p.Reason)
		}
	}
	rep.Valid = len(rep.Problems) == 0
	return rep, nil
}

func verifySignature(rep *Report, manifest, sig []byte, roots *x509.CertPool, problem func(string, string, ...any)) {
	p7, err := pkcs7.Parse(sig)
	if err != nil {
		problem(SignatureName, "not a CMS signature: %v", err)
		return
	}
	if len(p7.Signers) != 1 {
		problem(SignatureName, "has %d signers, want 1", len(p7.Signers))
		return
	}
	p7.Content = manifest
	si := p7.Signers[0]
	var token []byte
	for _, a := range si.UnauthenticatedAttributes {
		if a.Type.Equal(oidTimestampToken) {
			// The attribute's value is a SET holding the token.
			token = a.Value.Bytes
		}
	}
	at := time.Now()
	if token == nil {
		problem(SignatureName, "carries no RFC 3161 timestamp")
	} else {
		digest := sha256.Sum256(si.EncryptedDigest)
		t, tsa, err := pki.VerifyTimestamp(token, digest[:], roots)
		if err != nil {
			problem(SignatureName, "timestamp does not verify: %v", err)
		} else {
			at, rep.SignedAt, rep.TSA = t, t, tsa.Subject.String()
		}
	}
	if err := p7.VerifyWithChainAtTime(roots, at); err != nil {
		problem(ManifestName, "signature does not verify: %v", err)
		return
	}
	if c := p7.GetOnlySigner(); c != nil {
		rep.Signer = c.Subject.String()
	}
}

func verifyJournal(rep *Report, data []byte, roots *x509.CertPool, problem func(string, string, ...any)) {
	var jf JournalFile
	if err := json.Unmarshal(data, &jf); err != nil {
		problem(JournalName, "not valid JSON: %v", err)
		return
	}
	chain := journal.Chain{Subset: true}
	hashes := map[int64]string{}
	for _, e := range jf.Entries {
		if e.SessionID != rep.SessionID {
			problem(JournalName, "entry %d belongs to session %s, not %s", e.Seq, e.SessionID, rep.SessionID)
			return
		}
		// The bundle's journal is indented for people to read; the hash
		// covers the details as the journal stored them, in canonical JSON.
		if len(e.Details) > 0 {
			details, err := journal.Canonical(e.Details)
			if err != nil {
				problem(JournalName, "entry %d: details: %v", e.Seq, err)
				return
			}
			e.Details = details
		}
		if err := chain.Add(e); err != nil {
			problem(JournalName, "%v", err)
			return
		}
		hashes[e.Seq] = e.Hash
	}
	rep.Entries, rep.JournalHead = int(chain.Count()), chain.Head()
	verify := func(token, digest []byte) (time.Time, error) {
		t, _, err := pki.VerifyTimestamp(token, digest, roots)
		return t, err
	}
	for _, a := range jf.Anchors {
		if hashes[a.Seq] != a.Hash {
			problem(JournalName, "anchor at entry %d covers a hash that is not that entry's", a.Seq)
			continue
		}
		if _, err := journal.VerifyAnchor(a, verify); err != nil {
			problem(JournalName, "%v", err)
			continue
		}
		rep.Anchors++
	}
}

func readAll(f *zip.File, limit int64) ([]byte, error) {
	if f == nil {
		return nil, errors.New("not in the bundle")
	}
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit+1))
}

func hashFile(f *zip.File) (string, int64, error) {
	rc, err := f.Open()
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	var h hash.Hash = sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
