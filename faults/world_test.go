package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	le "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chamber-court/chamber/acts/mrz"
	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// invitation is how a participant takes part: an invitation as the API
// returns it, or an official's entry (their participant, their API token
// for REST and the join ticket for signalling).
type invitation struct {
	ParticipantID string `json:"participant_id"`
	Token         string `json:"token"`
	ticket        string // an official's join ticket; "" for invitees
}

// signalToken is what the participant's join message presents.
func (inv invitation) signalToken() string {
	if inv.ticket != "" {
		return inv.ticket
	}
	return inv.Token
}

// enter assigns an official to a session (by the holder of by, unless the
// official created it) and lets them in as themselves.
func (s *stack) enter(base string, official staff, by string) invitation {
	s.t.Helper()
	if by != "" {
		s.call("POST", base+"/assignments", by, map[string]any{"staff_id": official.id}, 201, nil)
	}
	var e struct {
		Participant struct {
			ID string `json:"id"`
		} `json:"participant"`
		Ticket string `json:"ticket"`
	}
	s.call("POST", base+"/enter", official.token, nil, 200, &e)
	return invitation{ParticipantID: e.Participant.ID, Token: official.token, ticket: e.Ticket}
}

// hearing is a session under test with its people.
type hearing struct {
	id    string
	base  string // /api/v1/sessions/<id>
	judge invitation
}

func (s *stack) newHearing(title string) *hearing {
	s.t.Helper()
	var sess struct{ ID string }
	s.call("POST", "/api/v1/sessions", s.clerk.token, map[string]any{"kind": "hearing", "title": title}, 201, &sess)
	h := &hearing{id: sess.ID, base: "/api/v1/sessions/" + sess.ID}
	h.judge = s.enter(h.base, s.judge, s.clerk.token)
	return h
}

func (s *stack) invite(base, name, role string) invitation {
	s.t.Helper()
	var inv invitation
	s.call("POST", base+"/invitations", s.clerk.token, map[string]any{"name": name, "role": role}, 201, &inv)
	return inv
}

// act is a notarial act under test: the notary, the embassy officer and
// the principal, and the act's document once designated.
type act struct {
	id, base                    string
	notary, officer, principal  invitation
	doc                         string
	notarySigned, principalSign bool
}

func (s *stack) newAct(title string) *act {
	s.t.Helper()
	var sess struct{ ID string }
	s.call("POST", "/api/v1/sessions", s.notary.token, map[string]any{"kind": "notarisation", "title": title, "act_type": "power_of_attorney"}, 201, &sess)
	a := &act{id: sess.ID, base: "/api/v1/sessions/" + sess.ID}
	// The notary presides as themselves and assigns the embassy officer;
	// only the principal is invited.
	a.notary = s.enter(a.base, s.notary, "")
	a.officer = s.enter(a.base, s.officer, s.notary.token)
	s.call("POST", a.base+"/invitations", s.notary.token, map[string]any{"name": "Mari Tamm", "role": "principal"}, 201, &a.principal)
	return a
}

// draft is the PDF every act signs.
func draft(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../documents/pades/testdata/libreoffice-will.pdf")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// uploadDraft uploads the act's document as the notary and designates it.
func (s *stack) uploadDraft(a *act) {
	s.t.Helper()
	var doc struct{ ID string }
	s.call("POST", a.base+"/documents?name=power-of-attorney.pdf", a.notary.Token, draft(s.t), 201, &doc)
	a.doc = doc.ID
	s.call("PUT", a.base+"/act/document", a.notary.Token, map[string]any{"document_id": a.doc}, 200, nil)
}

// verifyIdentity has the officer check the principal's passport, with
// both stills, and verify it.
func (s *stack) verifyIdentity(a *act) {
	s.t.Helper()
	text, err := mrz.FormatTD3(mrz.Document{Type: "P", IssuingState: "EST", Surname: "TAMM", GivenNames: "MARI", Number: "KX1234567",
		Nationality: "EST", BirthDate: "1980-02-29", Sex: "F", ExpiryDate: time.Now().AddDate(3, 0, 0).Format(time.DateOnly)})
	if err != nil {
		s.t.Fatal(err)
	}
	var check struct{ ID string }
	s.call("POST", a.base+"/identity-checks", a.officer.Token, map[string]any{"participant_id": a.principal.ParticipantID, "mrz": text, "embassy": "Embassy of Estonia in London"}, 201, &check)
	for i, kind := range []string{"face", "document"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		ans := s.do(ctx, "POST", a.base+"/identity-checks/"+check.ID+"/stills?kind="+kind, a.officer.Token, stillPNG(s.t, i), "image/png")
		cancel()
		if ans.status != 201 {
			s.t.Fatalf("still %s: %v", kind, ans)
		}
	}
	s.call("POST", a.base+"/identity-checks/"+check.ID+"/outcome", a.officer.Token, map[string]any{"verified": true, "address": "1 Kensington Court, London"}, 200, nil)
}

var signRequest = map[string]any{"reason": "I grant this power of attorney", "location": "London"}

// finishAct has the principal and the notary sign the act's document and
// the notary seal it, whatever of this was done before.
func (s *stack) finishAct(a *act) {
	s.t.Helper()
	if !a.principalSign {
		s.call("POST", "/api/v1/documents/"+a.doc+"/signatures", a.principal.Token, signRequest, 201, nil)
		a.principalSign = true
	}
	if !a.notarySigned {
		s.call("POST", "/api/v1/documents/"+a.doc+"/signatures", a.notary.Token, map[string]any{"reason": "Notarised", "location": "Tallinn"}, 201, nil)
		a.notarySigned = true
	}
	var sealed struct {
		Act struct{ State, Number string }
	}
	s.call("POST", a.base+"/seal", a.notary.Token, map[string]any{"fee": "EUR 35.00"}, 200, &sealed)
	if sealed.Act.State != "sealed" || sealed.Act.Number == "" {
		s.t.Fatalf("seal: %+v", sealed)
	}
}

// actState reads the act's state through the API.
func (s *stack) actState(a *act) string {
	s.t.Helper()
	var v struct {
		Act struct{ State string } `json:"act"`
	}
	s.call("GET", a.base, a.notary.Token, nil, 200, &v)
	return v.Act.State
}

// wholeAct shows that the server can still take a notarial act from
// start to seal: a new act, its document, the identity check, both
// signatures, the seal, and a bundle that verifies.
func (s *stack) wholeAct(t *testing.T) {
	t.Helper()
	a := s.newAct("Power of attorney after the fault")
	s.uploadDraft(a)
	s.verifyIdentity(a)
	s.finishAct(a)
	s.waitJournal(a.base, a.notary.Token, "act.journal_archived", 1)
	s.checkRecord(t, a.base, a.notary.Token, nil)
}

func stillPNG(t testing.TB, n int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for x := range 64 {
		img.Set(x, (x+n)%48, color.RGBA{30, 60, 200, 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// text is an upload of n random printable bytes (a plain-text document
// unlike any other) and its SHA-256.
func text(n int) ([]byte, string) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\n"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// peer is a participant's real signalling client publishing synthetic
// audio and video. It counts the packets it receives from each publisher
// and hands chat echoes and errors to whoever waits for them.
type peer struct {
	t    *testing.T
	name string
	id   string
	c    *client.Client

	mu     sync.Mutex
	tracks []*client.RemoteTrack
	chats  map[string]chan error // text → its outcome
	ids    map[string]string     // request ID → text
	events chan protocol.Envelope
	other  chan protocol.Envelope // events nobody waits for
}

func (s *stack) join(base string, inv invitation, name string, publish bool) *peer {
	s.t.Helper()
	var opts *client.PublishOptions
	if publish {
		opts = &client.PublishOptions{Audio: true, Video: true, VideoBitrate: 150_000, FPS: 10}
	}
	return s.joinWith(base, inv, name, opts)
}

// joinWith connects a participant and, unless opts is nil, publishes.
func (s *stack) joinWith(base string, inv invitation, name string, opts *client.PublishOptions) *peer {
	s.t.Helper()
	p, err := s.connect(base, inv, name, opts)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { p.c.Close() })
	return p
}

// connect joins and, unless opts is nil, publishes; the caller closes the
// client.
func (s *stack) connect(base string, inv invitation, name string, opts *client.PublishOptions) (*peer, error) {
	sid := strings.TrimPrefix(base, "/api/v1/sessions/")
	p := &peer{t: s.t, name: name, id: inv.ParticipantID, chats: map[string]chan error{}, ids: map[string]string{},
		events: make(chan protocol.Envelope, 1024), other: make(chan protocol.Envelope, 1024)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		URL:          "ws" + strings.TrimPrefix(s.c.URL, "http") + "/api/v1/sessions/" + sid + "/signal",
		Token:        inv.signalToken(),
		LoopbackOnly: true,
		Events:       p.events,
		OnTrack: func(rt *client.RemoteTrack) {
			p.mu.Lock()
			p.tracks = append(p.tracks, rt)
			p.mu.Unlock()
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%s joins: %w", name, err)
	}
	p.c = c
	go p.route()
	if opts != nil {
		if _, err := c.Publish(ctx, *opts); err != nil {
			c.Close()
			return nil, fmt.Errorf("%s publishes: %w", name, err)
		}
	}
	return p, nil
}

// route hands each event to whoever waits for it; it ends with the
// connection.
func (p *peer) route() {
	for {
		select {
		case <-p.c.Done():
			p.mu.Lock()
			for text, ch := range p.chats {
				ch <- fmt.Errorf("connection closed")
				delete(p.chats, text)
			}
			p.mu.Unlock()
			return
		case e := <-p.events:
			p.dispatch(e)
		}
	}
}

func (p *peer) dispatch(e protocol.Envelope) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Type {
	case "chat":
		var m struct{ Text, From string }
		if json.Unmarshal(e.Data, &m) == nil && m.From == p.id {
			if ch := p.chats[m.Text]; ch != nil {
				ch <- nil
				delete(p.chats, m.Text)
				return
			}
		}
	case protocol.TypeError:
		if text, ok := p.ids[e.ID]; ok {
			var pe protocol.Error
			_ = json.Unmarshal(e.Data, &pe)
			if ch := p.chats[text]; ch != nil {
				ch <- &pe
				delete(p.chats, text)
			}
			return
		}
	}
	select {
	case p.other <- e:
	default: // nobody reads: the oldest news goes
	}
}

// chat sends a chat message and waits for its echo (the server's
// acknowledgement: it was journalled and broadcast) or its refusal.
func (p *peer) chat(ctx context.Context, text string) error {
	ch := make(chan error, 1)
	id := fmt.Sprintf("chat-%p-%s", p, text)
	p.mu.Lock()
	p.chats[text] = ch
	p.ids[id] = text
	p.mu.Unlock()
	msg, _ := json.Marshal(map[string]any{"type": "chat", "id": id, "data": map[string]string{"text": text}})
	if err := p.c.WriteRaw(ctx, msg); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// received counts the packets p has received of one publisher's source.
func (p *peer) received(from *peer, source string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n uint64
	for _, rt := range p.tracks {
		if rt.ParticipantID == from.id && rt.Source == source {
			n += rt.Stats().Packets
		}
	}
	return n
}

// flowing waits until p's count of from's source grows by 20 packets.
func (p *peer) flowing(from *peer, source string, within time.Duration) bool {
	start := p.received(from, source)
	return wait.WithinEvery(within, 100*time.Millisecond, func() bool { return p.received(from, source) > start+20 })
}

// waitEvent waits for an event of type typ that nobody else waited for.
func (p *peer) waitEvent(within time.Duration, typ string) protocol.Envelope {
	p.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case e := <-p.other:
			if e.Type == typ {
				return e
			}
		case <-deadline:
			p.t.Fatalf("%s never received a %s event", p.name, typ)
		}
	}
}

var (
	vp8Once   sync.Once
	vp8Frames [][]byte
	vp8Err    error
)

// realVP8 is three seconds of real VP8 at 10 frames a second (ffmpeg's
// test pattern, one keyframe and then predicted frames), for publishers
// whose recordings a decoder must play: the synthetic frames of the Go
// client are VP8-shaped, not decodable.
func realVP8(t testing.TB) [][]byte {
	t.Helper()
	ffmpeg := testenv.Command(t, "ffmpeg")
	vp8Once.Do(func() {
		dir, err := os.MkdirTemp("", "chamber-faults-vp8-")
		if err != nil {
			vp8Err = err
			return
		}
		defer os.RemoveAll(dir)
		ivf := filepath.Join(dir, "pattern.ivf")
		out, err := exec.Command(ffmpeg, "-hide_banner", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
			"-t", "3", "-c:v", "libvpx", "-g", "30", "-auto-alt-ref", "0", "-lag-in-frames", "0", "-deadline", "realtime",
			"-b:v", "150k", "-f", "ivf", ivf).CombinedOutput()
		if err != nil {
			vp8Err = fmt.Errorf("ffmpeg: %v\n%s", err, out)
			return
		}
		vp8Frames, vp8Err = readIVF(ivf)
	})
	if vp8Err != nil {
		t.Fatal(vp8Err)
	}
	return vp8Frames
}

// readIVF reads the frames of an IVF file: a 32-byte header, then per
// frame a 12-byte header (little-endian size, timestamp) and the frame.
func readIVF(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 32 || string(b[:4]) != "DKIF" {
		return nil, fmt.Errorf("%s is not an IVF file", path)
	}
	var frames [][]byte
	for off := int(le.LittleEndian.Uint16(b[6:])); off+12 <= len(b); {
		n := int(le.LittleEndian.Uint32(b[off:]))
		off += 12
		if n == 0 || off+n > len(b) {
			return nil, fmt.Errorf("%s: a frame of %d bytes at %d", path, n, off)
		}
		frames = append(frames, b[off:off+n])
		off += n
	}
	if len(frames) == 0 {
		return nil, fmt.Errorf("%s holds no frames", path)
	}
	return frames, nil
}
