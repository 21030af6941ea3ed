package faults

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// outcome is what a writer knows of its write.
type outcome int

const (
	// acked: the server answered 2xx. The write must be in the record,
	// exactly once.
	acked outcome = iota
	// maybe: no answer came (the connection broke, the server died) or
	// 503, which is also the answer to a commit whose outcome is unknown
	// (database.ErrCommitUncertain). At most once.
	maybe
	// refused: any other answer. Never in the record.
	refused
)

func (o outcome) String() string { return [...]string{"acked", "maybe", "refused"}[o] }

// classify says what an answer tells the writer.
func classify(a answer) outcome {
	switch {
	case a.ok():
		return acked
	case a.err != nil || a.status == http.StatusServiceUnavailable:
		return maybe
	}
	return refused
}

// outcomeOf classifies an answer, and fails the test on a 500: whatever
// the fault, an outage is 503 and a full disk 507.
func outcomeOf(t testing.TB, what string, a answer) outcome {
	if a.err == nil && a.status >= 500 && a.status != http.StatusServiceUnavailable && a.status != http.StatusInsufficientStorage {
		t.Errorf("%s: %v (an outage is 503, a full disk 507)", what, a)
	}
	return classify(a)
}

// ledger is what the writers of a scenario were told: every write they
// made and its outcome, to be compared with the record afterwards.
type ledger struct {
	t  testing.TB
	mu sync.Mutex
	// uploads by file name (each upload has a name of its own).
	uploads map[string]uploadWrite
	// invitations by the invited name.
	invitations map[string]outcome
	// chats by text.
	chats map[string]outcome
	// counted are writes that each add one journal entry of an action
	// about a participant, keyed "action participant-id".
	counted map[string]*[3]int
}

type uploadWrite struct {
	sha256 string
	out    outcome
}

func newLedger(t testing.TB) *ledger {
	return &ledger{t: t, uploads: map[string]uploadWrite{}, invitations: map[string]outcome{}, chats: map[string]outcome{}, counted: map[string]*[3]int{}}
}

// upload uploads body as name and notes the outcome.
func (l *ledger) upload(ctx context.Context, s *stack, base, token, name string, body []byte, sum string) answer {
	a := s.do(ctx, "POST", base+"/documents?name="+name, token, body, "text/plain")
	l.noteUpload(name, sum, a)
	return a
}

func (l *ledger) noteUpload(name, sum string, a answer) outcome {
	o := outcomeOf(l.t, "upload "+name, a)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.uploads[name] = uploadWrite{sha256: sum, out: o}
	return o
}

// invite invites someone and notes the outcome.
func (l *ledger) invite(ctx context.Context, s *stack, base, name, role string) (invitation, outcome) {
	a := s.do(ctx, "POST", base+"/invitations", s.clerk.token, map[string]any{"name": name, "role": role}, "")
	o := outcomeOf(l.t, "invitation of "+name, a)
	l.mu.Lock()
	l.invitations[name] = o
	l.mu.Unlock()
	var inv invitation
	if o == acked {
		json.Unmarshal(a.body, &inv)
	}
	return inv, o
}

// chat sends a chat message and notes the outcome: acked when its echo
// came back, refused when an error answered it (maybe when the error is
// unavailable, or when nothing answered).
func (l *ledger) chat(ctx context.Context, p *peer, text string) outcome {
	err := p.chat(ctx, text)
	var pe *protocol.Error
	o := acked
	switch {
	case err == nil:
	case errors.As(err, &pe) && pe.Code == protocol.CodeUnavailable:
		o = maybe
	case errors.As(err, &pe):
		o = refused
		if pe.Code == protocol.CodeInternal {
			l.t.Errorf("chat %q: %v (an outage is unavailable)", text, err)
		}
	default:
		o = maybe
	}
	l.mu.Lock()
	l.chats[text] = o
	l.mu.Unlock()
	return o
}

// count notes the outcome of a write that adds one entry of action about
// participant pid to the journal.
func (l *ledger) count(action, pid string, a answer) outcome {
	o := outcomeOf(l.t, action+" "+pid, a)
	l.mu.Lock()
	defer l.mu.Unlock()
	k := action + " " + pid
	if l.counted[k] == nil {
		l.counted[k] = &[3]int{}
	}
	l.counted[k][o]++
	return o
}

func (l *ledger) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n [3]int
	for _, u := range l.uploads {
		n[u.out]++
	}
	for _, o := range l.invitations {
		n[o]++
	}
	for _, o := range l.chats {
		n[o]++
	}
	for _, c := range l.counted {
		for i := range c {
			n[i] += c[i]
		}
	}
	return fmt.Sprintf("%d acked, %d maybe, %d refused", n[acked], n[maybe], n[refused])
}

// requireAllAcked fails the test unless every write was acknowledged.
func (l *ledger) requireAllAcked(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, u := range l.uploads {
		if u.out != acked {
			t.Errorf("upload %s: %v", name, u.out)
		}
	}
	for name, o := range l.invitations {
		if o != acked {
			t.Errorf("invitation of %s: %v", name, o)
		}
	}
	for text, o := range l.chats {
		if o != acked {
			t.Errorf("chat %q: %v", text, o)
		}
	}
	for k, c := range l.counted {
		if c[maybe]+c[refused] > 0 {
			t.Errorf("%s: %d uncertain, %d refused", k, c[maybe], c[refused])
		}
	}
}

// entry is a journal entry as the API shows it.
type entry struct {
	Seq     int64           `json:"seq"`
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Details json.RawMessage `json:"details"`
}

func (s *stack) journal(base, token string) []entry {
	s.t.Helper()
	var es []entry
	s.call("GET", base+"/journal", token, nil, 200, &es)
	return es
}

// waitJournal waits until the session's journal holds at least n entries
// of action.
func (s *stack) waitJournal(base, token, action string, n int) {
	s.t.Helper()
	waitFor(s.t, 60*time.Second, fmt.Sprintf("%d %s journal entries", n, action), func() bool {
		got := 0
		for _, e := range s.journal(base, token) {
			if e.Action == action {
				got++
			}
		}
		return got >= n
	})
}

// detail reads one string field of an entry's details.
func (e entry) detail(field string) string {
	var m map[string]any
	json.Unmarshal(e.Details, &m)
	v, _ := m[field].(string)
	return v
}

// document is a document as the API lists it.
type document struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	SHA256   string `json:"sha256"`
	Versions []struct {
		Version int    `json:"version"`
		SHA256  string `json:"sha256"`
		Size    int64  `json:"size"`
	} `json:"versions"`
}

// checkRecord is every check the fault tests make of a session's record
// after a fault, once the server is ready again:
//   - what the ledger says was acknowledged is there exactly once, what
//     is uncertain at most once, what was refused not at all;
//   - every document and every version downloads with its SHA-256;
//   - the store holds exactly the catalog's objects and the orphans, and
//     `chamber evidence reconcile` journals each orphan exactly once;
//   - no view names an orphan: document versions and the bundle hold the
//     catalog's objects only, and the bundle verifies offline;
//   - every recording plays without an ffmpeg error;
//   - `chamber journal verify` passes.
func (s *stack) checkRecord(t *testing.T, base, token string, l *ledger) {
	t.Helper()
	sid := strings.TrimPrefix(base, "/api/v1/sessions/")
	// What is owed is delivered first: deferred journal entries, retention.
	s.waitMetric(2*time.Minute, "chamber_journal_deferred_entries", func(v float64) bool { return v == 0 })
	s.waitMetric(2*time.Minute, "chamber_evidence_retention_owed", func(v float64) bool { return v == 0 })
	s.waitMetric(2*time.Minute, "chamber_recordings_storage_pending", func(v float64) bool { return v == 0 })

	docs := s.checkDocuments(t, base, token)
	entries := s.journal(base, token)
	if l != nil {
		l.check(t, docs, entries, s.participants(base, token))
	}
	s.checkStore(t, sid, base, token)
	s.checkBundle(t, sid, base, token)
	s.verifyJournal(t)
}

func (s *stack) participants(base, token string) map[string]int {
	s.t.Helper()
	var ps []struct{ Name string }
	s.call("GET", base+"/participants", token, nil, 200, &ps)
	n := map[string]int{}
	for _, p := range ps {
		n[p.Name]++
	}
	return n
}

// checkDocuments lists the session's documents and downloads every
// version of each, checking its SHA-256.
func (s *stack) checkDocuments(t *testing.T, base, token string) []document {
	t.Helper()
	var list []document
	s.call("GET", base+"/documents", token, nil, 200, &list)
	for i, d := range list {
		s.call("GET", "/api/v1/documents/"+d.ID, token, nil, 200, &list[i])
		for _, v := range list[i].Versions {
			var b []byte
			s.call("GET", fmt.Sprintf("/api/v1/documents/%s/content?version=%d", d.ID, v.Version), token, nil, 200, &b)
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != v.SHA256 || int64(len(b)) != v.Size {
				t.Errorf("document %s (%s) version %d downloads as %d bytes with another SHA-256", d.Name, d.ID, v.Version, len(b))
			}
		}
	}
	return list
}

// check compares the ledger with the documents, the journal and the
// participants.
func (l *ledger) check(t *testing.T, docs []document, entries []entry, people map[string]int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	byName := map[string][]document{}
	for _, d := range docs {
		byName[d.Name] = append(byName[d.Name], d)
	}
	actions := map[string]int{}
	uploaded := map[string]int{} // document.uploaded by document ID
	chats := map[string]int{}
	invited := map[string]int{}
	for _, e := range entries {
		switch e.Action {
		case "document.uploaded":
			uploaded[e.detail("document_id")]++
		case "chat.message":
			chats[e.detail("text")]++
		case "invitation.issued":
			invited[e.detail("name")]++
		}
		if pid := e.detail("participant_id"); pid != "" {
			actions[e.Action+" "+pid]++
		}
	}
	within := func(what string, got int, o outcome) {
		switch {
		case o == acked && got != 1:
			t.Errorf("%s was acknowledged but is in the record %d times", what, got)
		case o == maybe && got > 1:
			t.Errorf("%s (outcome unknown) is in the record %d times", what, got)
		case o == refused && got != 0:
			t.Errorf("%s was refused but is in the record %d times", what, got)
		}
	}
	for name, u := range l.uploads {
		ds := byName[name]
		within("upload "+name, len(ds), u.out)
		for _, d := range ds {
			within("upload "+name+" (journal)", uploaded[d.ID], u.out)
			if d.SHA256 != u.sha256 {
				t.Errorf("upload %s is listed with SHA-256 %s, sent %s", name, d.SHA256, u.sha256)
			}
		}
	}
	for name, o := range l.invitations {
		within("invitation of "+name, people[name], o)
		within("invitation of "+name+" (journal)", invited[name], o)
	}
	for text, o := range l.chats {
		within("chat "+text, chats[text], o)
	}
	for k, c := range l.counted {
		if got := actions[k]; got < c[acked] || got > c[acked]+c[maybe] {
			t.Errorf("%s: %d journal entries for %d acknowledged and %d uncertain writes", k, got, c[acked], c[maybe])
		}
	}
	var n [3]int
	for _, u := range l.uploads {
		n[u.out]++
	}
	t.Logf("ledger: %d uploads (%d acked, %d maybe, %d refused), %d invitations, %d chats, %d counted writes",
		len(l.uploads), n[acked], n[maybe], n[refused], len(l.invitations), len(l.chats), len(l.counted))
}

// catalogKeys are the session's objects in the record.
func (s *stack) catalogKeys(t *testing.T, sid string) map[string]bool {
	t.Helper()
	return s.keys(t, `SELECT object_key FROM evidence_objects WHERE session_id = $1`, sid)
}

func (s *stack) orphanKeys(t *testing.T, sid string) map[string]bool {
	t.Helper()
	return s.keys(t, `SELECT object_key FROM evidence_orphans WHERE session_id = $1`, sid)
}

func (s *stack) keys(t *testing.T, q, sid string) map[string]bool {
	t.Helper()
	rows, err := s.db.Query(q, sid)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		out[k] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// reconcileReport is the JSON of chamber evidence reconcile.
type reconcileReport struct {
	Objects      int `json:"objects"`
	Recorded     int `json:"recorded"`
	Pending      int `json:"pending"`
	KnownOrphans int `json:"known_orphans"`
	Orphans      []struct {
		Key string `json:"key"`
	} `json:"orphans"`
	Missing []string `json:"missing"`
}

func (s *stack) reconcile(t *testing.T) reconcileReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, errOut, code, err := s.c.Command(ctx, "evidence", "reconcile", "--json", "--evidence-orphan-grace", "1ns")
	if err != nil || code != 0 {
		t.Fatalf("chamber evidence reconcile: exit %d %v\n%s%s", code, err, out, errOut)
	}
	var rep reconcileReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("chamber evidence reconcile: %q: %v", out, err)
	}
	return rep
}

// checkStore reconciles and compares the store with the record: every
// stored object of the session is recorded or an orphan journalled
// exactly once, and no document version names an orphan.
func (s *stack) checkStore(t *testing.T, sid, base, token string) {
	t.Helper()
	first := s.reconcile(t)
	second := s.reconcile(t)
	if len(second.Orphans) != 0 {
		t.Errorf("a second reconciliation found orphans again: %+v", second.Orphans)
	}
	if len(first.Missing)+len(second.Missing) != 0 {
		t.Errorf("the record names objects the store lacks: %v %v", first.Missing, second.Missing)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stored, err := s.store.List(ctx, "sessions/"+sid+"/")
	if err != nil {
		t.Fatal(err)
	}
	recorded, orphans := s.catalogKeys(t, sid), s.orphanKeys(t, sid)
	for k := range recorded {
		if orphans[k] {
			t.Errorf("%s is both recorded and an orphan", k)
		}
	}
	inStore := map[string]bool{}
	for _, o := range stored {
		inStore[o.Key] = true
		if !recorded[o.Key] && !orphans[o.Key] {
			t.Errorf("%s is in the store, neither recorded nor a journalled orphan", o.Key)
		}
	}
	for k := range recorded {
		if !inStore[k] {
			t.Errorf("%s is recorded but not in the store", k)
		}
	}
	found := map[string]int{}
	for _, e := range s.journal(base, token) {
		if e.Action == "orphan.found" {
			var d struct {
				Object struct{ Key string } `json:"object"`
			}
			json.Unmarshal(e.Details, &d)
			found[d.Object.Key]++
		}
	}
	for k := range orphans {
		if found[k] != 1 {
			t.Errorf("orphan %s is journalled %d times", k, found[k])
		}
	}
	for k, n := range found {
		if !orphans[k] {
			t.Errorf("orphan.found journalled %d times for %s, which is no orphan", n, k)
		}
	}
	// Every version a view can show names a recorded object.
	for k := range s.keys(t, `SELECT v.object_key FROM document_versions v JOIN documents d ON d.id = v.document_id WHERE d.session_id = $1`, sid) {
		if !recorded[k] {
			t.Errorf("a document version names %s, which is not in the record", k)
		}
	}
	if len(orphans) > 0 {
		t.Logf("orphans (failed writes, journalled once): %v", sortedKeys(orphans))
	}
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkBundle downloads the session's bundle: its evidence is exactly the
// catalog, it verifies offline, and every recording in it plays.
//
// The bundle is a snapshot of a record that may still grow while it is
// made (a recording's composite is made in the background, and a restart
// composes what a killed server left unmade), so the catalog is read
// before and after the download: the bundle holds at least the first and
// at most the second, and exactly the catalog when the two agree. When
// they differ the download is taken again.
func (s *stack) checkBundle(t *testing.T, sid, base, token string) {
	t.Helper()
	var zipped, caPEM []byte
	var zr *zip.Reader
	var got []string
	prefix := "sessions/" + sid + "/"
	for attempt := 1; ; attempt++ {
		before := s.catalogKeys(t, sid)
		s.call("GET", base+"/bundle", token, nil, 200, &zipped)
		after := s.catalogKeys(t, sid)
		var err error
		if zr, err = zip.NewReader(bytes.NewReader(zipped), int64(len(zipped))); err != nil {
			t.Fatal(err)
		}
		got = bundleEvidence(zr)
		inBundle := map[string]bool{}
		for _, name := range got {
			k := prefix + strings.TrimPrefix(name, "evidence/")
			inBundle[k] = true
			if !after[k] {
				t.Errorf("the bundle holds %s, which is not in the record", name)
			}
		}
		for k := range before {
			if !inBundle[k] {
				t.Errorf("the record held %s before the bundle was made, the bundle lacks it", k)
			}
		}
		if t.Failed() || maps.Equal(before, after) {
			break
		}
		if attempt == 3 {
			t.Fatalf("the record kept growing over three bundle downloads (%d, then %d objects)", len(before), len(after))
		}
		t.Logf("the record grew while the bundle was made (%d → %d objects); downloading it again", len(before), len(after))
	}
	s.call("GET", "/pki/ca.pem", "", nil, 200, &caPEM)
	work := t.TempDir()
	for _, f := range zr.File {
		if ext := filepath.Ext(f.Name); strings.HasPrefix(f.Name, "evidence/") && (ext == ".webm" || ext == ".mkv") {
			playable(t, f, work)
		}
	}
	bundleFile, caFile := filepath.Join(work, "bundle.zip"), filepath.Join(work, "ca.pem")
	os.WriteFile(bundleFile, zipped, 0o644)
	os.WriteFile(caFile, caPEM, 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, errOut, code, err := s.c.Command(ctx, "bundle", "verify", bundleFile, "--trust", caFile)
	if err != nil || code != 0 || !strings.HasPrefix(out, "VALID") {
		t.Errorf("chamber bundle verify: exit %d %v\n%s%s", code, err, out, errOut)
	}
}

// bundleEvidence names the evidence files in a bundle.
func bundleEvidence(zr *zip.Reader) []string {
	var out []string
	for _, f := range zr.File {
		if strings.HasPrefix(f.Name, "evidence/") {
			out = append(out, f.Name)
		}
	}
	return out
}

// playable decodes a recording with ffmpeg, which must print nothing.
func playable(t *testing.T, f *zip.File, dir string) {
	t.Helper()
	ffmpeg := testenv.Command(t, "ffmpeg")
	path := filepath.Join(dir, strings.ReplaceAll(f.Name, "/", "_"))
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(out, rc)
	rc.Close()
	out.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	msg, err := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(msg) != 0 {
		t.Errorf("ffmpeg -v error -i %s: %v\n%s", f.Name, err, msg)
	} else {
		t.Logf("recording %s (%d bytes) plays", f.Name, f.UncompressedSize64)
	}
}

// verifyJournal runs chamber journal verify.
func (s *stack) verifyJournal(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, errOut, code, err := s.c.Command(ctx, "journal", "verify")
	if err != nil || code != 0 || !strings.HasPrefix(out, "OK") {
		t.Errorf("chamber journal verify: exit %d %v\n%s%s", code, err, out, errOut)
	}
}
