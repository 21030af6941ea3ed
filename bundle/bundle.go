// Package bundle builds a session's evidence bundle — every artefact, its
// journal with timestamp anchors, and a manifest signed by the court's or
// notary's certificate with an RFC 3161 timestamp — and verifies one
// offline, on a machine with no Chamber server.
package bundle

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
	b := &builder{zw: zip.NewWriter(w), m: Manifest{Version: ManifestVersion, SessionID: sessionID,
		GeneratedAt: time.Now().UTC().Truncate(time.Second), GeneratedBy: actor}}
	if err := addEvidence(ctx, cfg, sessionID, b.add, &b.m); err != nil {
		return Manifest{}, err
	}
	jf, err := journalFile(ctx, cfg.Journal, sessionID)
	if err != nil {
		return Manifest{}, err
	}
	// Compact, so each entry's details keep the exact bytes its hash covers.
	jb, err := json.Marshal(jf)
	if err != nil {
		return Manifest{}, err
	}
	if err := b.add(JournalName, "", strings.NewReader(string(jb))); err != nil {
		return Manifest{}, err
	}
	if err := b.addJSON(ChatName, chatMessages(jf.Entries)); err != nil {
		return Manifest{}, err
	}
	if err := b.addJSON(SessionName, session); err != nil {
		return Manifest{}, err
	}
	if err := b.add(ReadmeName, "", strings.NewReader(readme)); err != nil {
		return Manifest{}, err
	}
	if err := b.seal(ctx, cfg.Signer, cfg.TSA); err != nil {
		return Manifest{}, err
	}
	return b.m, b.zw.Close()
}

// builder writes a bundle's files and lists them in its manifest.
type builder struct {
	zw *zip.Writer
	m  Manifest
}

func (b *builder) create(name string) (io.Writer, error) {
	return b.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: b.m.GeneratedAt})
}

// add writes r as the file name, copied from the evidence-store key
// source ("" when the bundle makes it), and lists it in the manifest.
func (b *builder) add(name, source string, r io.Reader) error {
	fw, err := b.create(name)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(fw, h), r)
	if err != nil {
		return fmt.Errorf("bundle: %s: %w", name, err)
	}
	b.m.Files = append(b.m.Files, File{Path: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, Source: source})
	return nil
}

func (b *builder) addJSON(name string, v any) error {
	bs, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return b.add(name, "", strings.NewReader(string(bs)+"\n"))
}

// seal writes the manifest and its signature, the two files the manifest
// does not list.
func (b *builder) seal(ctx context.Context, signer pki.Signer, tsa Timestamper) error {
	sort.Slice(b.m.Files, func(i, j int) bool { return b.m.Files[i].Path < b.m.Files[j].Path })
	manifest, err := json.MarshalIndent(b.m, "", "  ")
	if err != nil {
		return err
	}
	sig, err := sign(ctx, manifest, signer, tsa)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{ManifestName, manifest}, {SignatureName, sig}} {
		fw, err := b.create(f.name)
		if err != nil {
			return err
		}
		if _, err := fw.Write(f.data); err != nil {
			return err
		}
	}
	return nil
}

// journalFile reads the session's journal entries and the anchors over
// them.
func journalFile(ctx context.Context, j *journal.Journal, sessionID uuid.UUID) (JournalFile, error) {
	entries, err := j.Session(ctx, sessionID, 0, 0)
	if err != nil {
		return JournalFile{}, err
	}
	jf := JournalFile{Entries: entries, Anchors: []journal.Anchor{}}
	if len(entries) == 0 {
		return jf, nil
	}
	anchors, err := j.AnchorsBetween(ctx, entries[0].Seq, entries[len(entries)-1].Seq)
	if err != nil {
		return JournalFile{}, err
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
	return jf, nil
}

// chatMessages are the chat messages among entries, each with its time
// and journal sequence number; never nil, so chat.json is a list.
func chatMessages(entries []journal.Entry) []map[string]any {
	chat := []map[string]any{}
	for _, e := range entries {
		if e.Action == "chat.message" {
			var d map[string]any
			// Details that are not an object (null, or unreadable) still
			// leave the message's place in the chat.
			if json.Unmarshal(e.Details, &d) != nil || d == nil {
				d = map[string]any{}
			}
			d["at"], d["seq"] = e.At, e.Seq
			chat = append(chat, d)
		}
	}
	return chat
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
