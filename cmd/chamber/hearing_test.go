package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// peer is one participant: a real signalling client that publishes
// synthetic audio and video and counts what it receives, per publisher.
type peer struct {
	t      *testing.T
	name   string
	id     string
	token  string
	c      *client.Client
	pub    *client.Publication
	mu     sync.Mutex
	tracks []*client.RemoteTrack
	events chan protocol.Envelope
}

func joinPeer(t *testing.T, base, sessionID, name, token, participantID string, publish bool) *peer {
	t.Helper()
	p := &peer{t: t, name: name, id: participantID, token: token, events: make(chan protocol.Envelope, 4096)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		URL:          "ws" + strings.TrimPrefix(base, "http") + "/api/v1/sessions/" + sessionID + "/signal",
		Token:        token,
		LoopbackOnly: true,
		Events:       p.events,
		OnTrack: func(rt *client.RemoteTrack) {
			p.mu.Lock()
			p.tracks = append(p.tracks, rt)
			p.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatalf("%s joins: %v", name, err)
	}
	p.c = c
	t.Cleanup(func() { c.Close() })
	if publish {
		p.publish()
	}
	return p
}

// publish sends p's camera and microphone (after admission: the waiting
// room publishes nothing).
func (p *peer) publish() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	if p.pub, err = p.c.Publish(ctx, client.PublishOptions{Audio: true, Video: true, VideoBitrate: 300_000, FPS: 15}); err != nil {
		p.t.Fatalf("%s publishes: %v", p.name, err)
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

// flowing reports whether p receives from's source: the count grows by
// more than a few packets within the deadline.
func (p *peer) flowing(from *peer, source string, within time.Duration) bool {
	start := p.received(from, source)
	return pollUntil(within, func() bool { return p.received(from, source) > start+5 })
}

// stopped reports whether p's count of from's source comes to rest: what
// was in flight when forwarding stopped still arrives, so it waits for the
// count to hold still for one explicit window (a bounded negative check),
// and fails if it keeps growing until the deadline.
func (p *peer) stopped(from *peer, source string) bool {
	const still = 1500 * time.Millisecond
	last, since := p.received(from, source), time.Now()
	return pollUntil(10*time.Second, func() bool {
		if n := p.received(from, source); n > last+1 {
			last, since = n, time.Now()
		}
		return time.Since(since) >= still
	})
}

// pollUntil checks cond every 50 ms until it holds or within has passed.
func pollUntil(within time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
	return true
}

func mustEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !pollUntil(15*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestHearingWithMedia is the whole hearing over REST and real signalling
// clients carrying media, on SQLite and on PostgreSQL.
func TestHearingWithMedia(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			var args []string
			if engine == "postgres" {
				args = append(args, "--database", testenv.PostgresDB(t))
			}
			dir := t.TempDir()
			if engine == "postgres" {
				args = append(args, "--data-dir", dir+"/data")
			}
			clerk := addStaff(t, dir, args, "Clerk Kask", "clerk")
			judge := addStaff(t, dir, args, "Judge Saar", "judge")
			s := startServer(t, dir, nil, append(args, "--nat-ip", "127.0.0.1")...)
			hearingFlow(t, s, clerk.Token, judge)
			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
			if out, errOut, code := chamber(t, dir, append([]string{"journal", "verify"}, args...)...); code != 0 || !strings.HasPrefix(out, "OK") {
				t.Fatalf("journal verify after the hearing: %d %s %s", code, out, errOut)
			}
		})
	}
}

func hearingFlow(t *testing.T, s *server, clerk string, judgeStaff staffMember) {
	var sess struct{ ID, State string }
	call(t, "POST", s.URL+"/api/v1/sessions", clerk, map[string]any{"kind": "hearing", "title": "Tamm v Kask", "case_number": "2-26-77"}, 201, &sess)
	base := s.URL + "/api/v1/sessions/" + sess.ID
	type inv struct {
		ParticipantID string `json:"participant_id"`
		Token         string
	}
	invite := func(name, role string) inv {
		var i inv
		call(t, "POST", base+"/invitations", clerk, map[string]any{"name": name, "role": role}, 201, &i)
		return i
	}
	// The clerk assigns the judge, who enters as themselves: no
	// invitation is ever issued for a judge.
	assign(t, s.URL, sess.ID, clerk, judgeStaff.ID)
	je := enter(t, s.URL, sess.ID, judgeStaff.Token)
	ij := inv{ParticipantID: je.Participant.ID, Token: judgeStaff.Token}
	ip, ic := invite("Mari Tamm", "party"), invite("Counsel Kuusk", "counsel")

	judge := joinPeer(t, s.URL, sess.ID, "judge", je.Ticket, ij.ParticipantID, true)
	call(t, "GET", base, clerk, nil, 200, &sess)
	if sess.State != "open" {
		t.Fatalf("after the judge joined the session is %s", sess.State)
	}
	party := joinPeer(t, s.URL, sess.ID, "party", ip.Token, ip.ParticipantID, false)
	counsel := joinPeer(t, s.URL, sess.ID, "counsel", ic.Token, ic.ParticipantID, false)
	// The waiting room publishes nothing: the offer is refused, not taken
	// in and dropped (tried on a second connection of the party's: a
	// refused offer leaves its PeerConnection waiting for an answer).
	second := joinPeer(t, s.URL, sess.ID, "party's second connection", ip.Token, ip.ParticipantID, false)
	pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
	_, err := second.c.Publish(pctx, client.PublishOptions{Audio: true, Video: true, VideoBitrate: 300_000, FPS: 15})
	pcancel()
	second.c.Close()
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeForbidden {
		t.Fatalf("a waiting party's publish: %v, want a %q error", err, protocol.CodeForbidden)
	}

	// The party waits: neither side sees or hears the other.
	var ps []struct {
		ID        string
		Space     string
		Connected bool
	}
	call(t, "GET", base+"/participants", ij.Token, nil, 200, &ps)
	for _, p := range ps {
		if p.ID == ip.ParticipantID && (p.Space != "waiting" || !p.Connected) {
			t.Fatalf("party before admission: %+v", p)
		}
	}
	if party.flowing(judge, "camera", 2*time.Second) {
		t.Fatal("media crosses the waiting room")
	}

	call(t, "POST", base+"/participants/"+ip.ParticipantID+"/admit", ij.Token, nil, 200, nil)
	call(t, "POST", base+"/participants/"+ic.ParticipantID+"/admit", ij.Token, nil, 200, nil)
	party.publish()
	counsel.publish()
	for _, c := range []struct {
		to, from *peer
		source   string
	}{{party, judge, "camera"}, {party, judge, "microphone"}, {judge, party, "camera"}, {judge, party, "microphone"}, {judge, counsel, "microphone"}} {
		if !c.to.flowing(c.from, c.source, 15*time.Second) {
			t.Fatalf("after admission %s does not receive %s's %s", c.to.name, c.from.name, c.source)
		}
	}

	// Consultation: counsel and party hear each other; the judge hears neither.
	var cons struct{ ID string }
	call(t, "POST", base+"/consultations", ij.Token, map[string]any{"participant_ids": []string{ip.ParticipantID, ic.ParticipantID}}, 201, &cons)
	if !judge.stopped(party, "microphone") || !judge.stopped(counsel, "microphone") {
		t.Fatal("the judge hears the consultation room")
	}
	if !counsel.flowing(party, "microphone", 10*time.Second) {
		t.Fatal("counsel does not hear the party in consultation")
	}
	call(t, "POST", base+"/consultations/"+cons.ID+"/close", ij.Token, nil, 204, nil)
	if !judge.flowing(party, "microphone", 15*time.Second) {
		t.Fatal("after the consultation the judge does not hear the party")
	}

	// Server-enforced mute: the party's audio stops arriving, video does not.
	call(t, "POST", base+"/participants/"+ip.ParticipantID+"/mute", ij.Token, map[string]any{"audio": true}, 200, nil)
	if !judge.stopped(party, "microphone") || !counsel.stopped(party, "microphone") {
		t.Fatal("a muted party's audio still arrives")
	}
	if !judge.flowing(party, "camera", 5*time.Second) {
		t.Fatal("muting audio stopped video")
	}

	// Remove: the connection drops and the token is dead.
	call(t, "POST", base+"/participants/"+ip.ParticipantID+"/remove", ij.Token, nil, 204, nil)
	select {
	case <-party.c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the removed party is still connected")
	}
	call(t, "GET", base, ip.Token, nil, 401, nil)
	// The server journals the removed party's leaving when it sees the
	// connection end, which may be after the client sees it: wait for the
	// entry, so that the close below does not overtake it.
	mustEventually(t, "participant.left in the journal", func() bool {
		var entries []struct{ Action string }
		call(t, "GET", base+"/journal", ij.Token, nil, 200, &entries)
		return slices.ContainsFunc(entries, func(e struct{ Action string }) bool { return e.Action == "participant.left" })
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.Dial(ctx, client.Config{URL: "ws" + strings.TrimPrefix(s.URL, "http") + "/api/v1/sessions/" + sess.ID + "/signal",
		Token: ip.Token, LoopbackOnly: true}); err == nil {
		t.Fatal("a removed party's token joined again")
	}

	// Close: everyone is disconnected; the journal has every step.
	call(t, "POST", base+"/close", ij.Token, nil, 200, nil)
	for _, p := range []*peer{judge, counsel} {
		select {
		case <-p.c.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s is still connected after close", p.name)
		}
	}
	var entries []struct{ Action string }
	call(t, "GET", base+"/journal", ij.Token, nil, 200, &entries)
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{"session.created", "staff.assigned", "invitation.issued", "participant.joined", "session.opened", "participant.admitted",
		"consultation.opened", "consultation.closed", "participant.muted", "participant.removed", "participant.left", "session.closed"} {
		if !slices.Contains(actions, want) {
			t.Errorf("journal lacks %s: %v", want, actions)
		}
	}
}
