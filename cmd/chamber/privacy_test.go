package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/acts/mrz"
	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// listener is a participant whose every message from the server is
// recorded, "joined" first: all that it learns.
type listener struct {
	name, id string
	c        *client.Client
	mu       sync.Mutex
	got      []protocol.Envelope
}

func listen(t *testing.T, base, sessionID, name, token, participantID string) *listener {
	t.Helper()
	l := &listener{name: name, id: participantID}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		URL:   "ws" + strings.TrimPrefix(base, "http") + "/api/v1/sessions/" + sessionID + "/signal",
		Token: token, LoopbackOnly: true,
		Trace: func(env protocol.Envelope) {
			l.mu.Lock()
			l.got = append(l.got, env)
			l.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatalf("%s joins: %v", name, err)
	}
	l.c = c
	t.Cleanup(func() { c.Close() })
	return l
}

// ended waits for the server to end l's connection and returns all that l
// was sent: nothing more can arrive.
func (l *listener) ended(t *testing.T) []protocol.Envelope {
	t.Helper()
	select {
	case <-l.c.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("%s is still connected", l.name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

// someone is a participant as the test knows them.
type someone struct{ name, id string }

// mustNotLearn fails for every message that mentions one of secrets
// (a participant's id or name, a consultation, a chat text, a passport
// number…), naming what it was.
func mustNotLearn(t *testing.T, who string, msgs []protocol.Envelope, secrets map[string]string) {
	t.Helper()
	for _, env := range msgs {
		raw, _ := json.Marshal(env)
		for s, what := range secrets {
			if strings.Contains(string(raw), s) {
				t.Errorf("%s learnt %s from %s: %s", who, what, env.Type, raw)
			}
		}
	}
}

// waitChat waits until p receives a chat message with text.
func waitChat(t *testing.T, p *peer, text string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-p.events:
			var m struct{ Text string }
			if e.Type == "chat" && json.Unmarshal(e.Data, &m) == nil && m.Text == text {
				return
			}
		case <-deadline:
			t.Fatalf("%s never received the chat %q", p.name, text)
		}
	}
}

func types(msgs []protocol.Envelope) []string {
	var out []string
	for _, m := range msgs {
		if !slices.Contains(out, m.Type) {
			out = append(out, m.Type)
		}
	}
	slices.Sort(out)
	return out
}

// TestWhatObserversAndWaitingWitnessesLearn records every message an
// observer and a sequestered witness receive during a whole public hearing
// — admissions, moves, a consultation with its privileged chat, a mute,
// chat in the room, a presented document, a removal, the close — and a
// notarial act with an identity check, and checks that none tells them
// more than they may know:
//   - the witness, waiting throughout, learns of nobody but themselves;
//   - an observer learns who is on stage — id, name and role of those in
//     the main room who publish — and nothing else: not the other
//     observers, not who waits, not consultations or their chat, not
//     anyone's removal, mutes or invitation, no passport data;
//   - a principal learns their own identity check and not another's.
func TestWhatObserversAndWaitingWitnessesLearn(t *testing.T) {
	dir := t.TempDir()
	clerk := addStaff(t, dir, nil, "Clerk Kask", "clerk").Token
	judge := addStaff(t, dir, nil, "Judge Saar", "judge")
	notary := addStaff(t, dir, nil, "Notary Mets", "notary")
	officer := addStaff(t, dir, nil, "Consul Saar", "embassy_officer")
	s := startServer(t, dir, nil, "--nat-ip", "127.0.0.1")
	t.Run("hearing", func(t *testing.T) { publicHearingPrivacy(t, s, clerk, judge) })
	t.Run("act", func(t *testing.T) { actPrivacy(t, s, notary, officer) })
}

type invited struct {
	ParticipantID string `json:"participant_id"`
	Token         string `json:"token"`
	Name          string `json:"name"`
}

func publicHearingPrivacy(t *testing.T, s *server, clerk string, judgeStaff staffMember) {
	var sess struct{ ID string }
	call(t, "POST", s.URL+"/api/v1/sessions", clerk, map[string]any{"kind": "hearing", "title": "Tamm v Kask", "public": true}, 201, &sess)
	base := s.URL + "/api/v1/sessions/" + sess.ID
	invite := func(name, role string) invited {
		var i invited
		call(t, "POST", base+"/invitations", clerk, map[string]any{"name": name, "role": role}, 201, &i)
		return i
	}
	ij, judgeAPI := seat(t, s.URL, sess.ID, clerk, judgeStaff, "Judge Saar"), judgeStaff.Token
	ip, ic, iw := invite("Mari Tamm", "party"), invite("Counsel Kuusk", "counsel"), invite("Witness Oja", "witness")
	var link struct{ Token string }
	call(t, "POST", base+"/public-link", clerk, nil, 201, &link)
	watch := func(name string) invited {
		var i invited
		call(t, "POST", s.URL+"/api/v1/public/"+link.Token+"/join", "", map[string]any{"name": name}, 201, &i)
		return i
	}
	io1, io2 := watch("Viewer Esimene"), watch("Viewer Teine")
	pdf, err := os.ReadFile("../../documents/pades/testdata/libreoffice-will.pdf")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ ID string }
	call(t, "POST", base+"/documents?name=exhibit.pdf", clerk, pdf, 201, &doc)

	judge := joinPeer(t, s.URL, sess.ID, "judge", ij.Token, ij.ParticipantID, true)
	witness := listen(t, s.URL, sess.ID, "witness", iw.Token, iw.ParticipantID)
	party := joinPeer(t, s.URL, sess.ID, "party", ip.Token, ip.ParticipantID, false)
	counsel := joinPeer(t, s.URL, sess.ID, "counsel", ic.Token, ic.ParticipantID, false)
	observer := listen(t, s.URL, sess.ID, "observer", io1.Token, io1.ParticipantID)
	other := listen(t, s.URL, sess.ID, "second observer", io2.Token, io2.ParticipantID)

	// Admissions; the witness stays in the waiting room throughout.
	for _, id := range []string{ip.ParticipantID, ic.ParticipantID, io1.ParticipantID, io2.ParticipantID} {
		call(t, "POST", base+"/participants/"+id+"/admit", judgeAPI, nil, 200, nil)
	}
	party.publish() // once admitted: the waiting room publishes nothing
	counsel.publish()
	// Moves: the party out to the waiting room and back.
	call(t, "POST", base+"/participants/"+ip.ParticipantID+"/move", judgeAPI, map[string]any{"space": "waiting"}, 200, nil)
	call(t, "POST", base+"/participants/"+ip.ParticipantID+"/admit", judgeAPI, nil, 200, nil)

	// Chat in the room.
	if err := judge.c.Send(context.Background(), "chat", map[string]string{"text": "The court is in session."}); err != nil {
		t.Fatal(err)
	}
	waitChat(t, judge, "The court is in session.")

	// A consultation, and its privileged chat.
	var cons struct{ ID string }
	call(t, "POST", base+"/consultations", judgeAPI, map[string]any{"participant_ids": []string{ip.ParticipantID, ic.ParticipantID}}, 201, &cons)
	const privileged = "Between us: do not mention the second contract."
	if err := counsel.c.Send(context.Background(), "chat", map[string]string{"text": privileged}); err != nil {
		t.Fatal(err)
	}
	waitChat(t, party, privileged)
	call(t, "POST", base+"/consultations/"+cons.ID+"/close", judgeAPI, nil, 204, nil)

	// A mute, a presented page.
	call(t, "POST", base+"/participants/"+ip.ParticipantID+"/mute", judgeAPI, map[string]any{"audio": true}, 200, nil)
	if err := judge.c.Send(context.Background(), "present", map[string]any{"document_id": doc.ID, "page": 1}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, judge, "present")

	// A removal, then the close.
	call(t, "POST", base+"/participants/"+ic.ParticipantID+"/remove", judgeAPI, nil, 204, nil)
	call(t, "POST", base+"/close", judgeAPI, nil, 200, nil)

	// The witness learnt of nobody but themselves.
	got := witness.ended(t)
	mustNotLearn(t, "the waiting witness", got, map[string]string{
		ij.ParticipantID: "the judge's id", ij.Name: "the judge's name",
		ip.ParticipantID: "the party's id", ip.Name: "the party's name",
		ic.ParticipantID: "counsel's id", ic.Name: "counsel's name",
		io1.ParticipantID: "an observer's id", io1.Name: "an observer's name",
		io2.ParticipantID: "an observer's id", io2.Name: "an observer's name",
		cons.ID: "the consultation", privileged: "the privileged chat", "The court is in session.": "the room's chat",
		doc.ID: "the presented document",
	})
	for _, typ := range types(got) {
		if !slices.Contains([]string{"joined", "participant_updated", "participants", "session_closed", "bye"}, typ) {
			t.Errorf("the waiting witness was sent a %s", typ)
		}
	}

	// The observer learnt who is on stage, as their tiles show them.
	got = observer.ended(t)
	mustNotLearn(t, "an observer", got, map[string]string{
		iw.ParticipantID: "the waiting witness's id", iw.Name: "the waiting witness's name",
		io2.ParticipantID: "the other observer's id", io2.Name: "the other observer's name",
		cons.ID: "the consultation", privileged: "the privileged chat",
	})
	for _, typ := range types(got) {
		if slices.Contains([]string{"participant_added", "participant_removed", "consultation_opened", "consultation_closed",
			"documents_changed", "identity_check"}, typ) {
			t.Errorf("an observer was sent a %s", typ)
		}
	}
	stage := []string{ij.ParticipantID, ip.ParticipantID, ic.ParticipantID}
	var sawJudge, sawChat, sawPresent bool
	// onStage checks one participant record the observer was sent.
	onStage := func(data json.RawMessage) {
		var p map[string]any
		json.Unmarshal(data, &p)
		if p["id"] == io1.ParticipantID {
			return // the observer's own record
		}
		if id, _ := p["id"].(string); !slices.Contains(stage, id) || p["space"] != "main" || p["connected"] != true {
			t.Errorf("an observer learnt of someone off stage: %s", data)
		}
		for k := range p {
			if !slices.Contains([]string{"id", "name", "role", "space", "connected"}, k) {
				t.Errorf("an observer learnt %s of someone on stage: %s", k, data)
			}
		}
		sawJudge = sawJudge || p["id"] == ij.ParticipantID
	}
	for _, env := range got {
		switch env.Type {
		case "participant_updated":
			onStage(env.Data)
		case "participants":
			var k struct{ Participants []json.RawMessage }
			json.Unmarshal(env.Data, &k)
			for _, p := range k.Participants {
				onStage(p)
			}
		case "joined":
			var j protocol.Joined
			json.Unmarshal(env.Data, &j)
			for _, p := range j.Peers {
				sawJudge = sawJudge || p.Participant.ID == ij.ParticipantID
			}
		case "chat":
			sawChat = true
		case "present":
			sawPresent = true
		}
	}
	if !sawJudge || !sawChat || !sawPresent {
		t.Errorf("an observer did not learn what is on stage: judge %v, chat %v, present %v", sawJudge, sawChat, sawPresent)
	}
	other.ended(t)

	// The privileged chat is not in the record the court reads.
	var entries []struct {
		Action  string
		Details json.RawMessage
	}
	call(t, "GET", base+"/journal", judgeAPI, nil, 200, &entries)
	var consulted bool
	for _, e := range entries {
		if strings.Contains(string(e.Details), privileged) {
			t.Errorf("the journal holds the privileged chat: %s %s", e.Action, e.Details)
		}
		consulted = consulted || e.Action == "chat.consultation"
	}
	if !consulted {
		t.Error("the journal does not record that a consultation message was sent")
	}
}

func actPrivacy(t *testing.T, s *server, notaryMember, officerMember staffMember) {
	notaryStaff := notaryMember.Token
	var sess struct{ ID string }
	call(t, "POST", s.URL+"/api/v1/sessions", notaryStaff, map[string]any{"kind": "notarisation", "title": "Sale of Kask farm", "act_type": "property_sale"}, 201, &sess)
	base := s.URL + "/api/v1/sessions/" + sess.ID
	invite := func(name, role string) invited {
		var i invited
		call(t, "POST", base+"/invitations", notaryStaff, map[string]any{"name": name, "role": role}, 201, &i)
		return i
	}
	in := enter(t, s.URL, sess.ID, notaryStaff)
	notaryAPI := notaryStaff
	io_, officerAPI := seat(t, s.URL, sess.ID, notaryStaff, officerMember, "Consul Saar"), officerMember.Token
	ia, ib := invite("Mari Tamm", "principal"), invite("Jaan Kask", "principal")
	iw, iv := invite("Witness Oja", "witness"), invite("Observer Aas", "observer")

	notary := joinPeer(t, s.URL, sess.ID, "notary", in.Ticket, in.Participant.ID, true)
	officer := joinPeer(t, s.URL, sess.ID, "officer", io_.Token, io_.ParticipantID, false)
	a := listen(t, s.URL, sess.ID, "principal A", ia.Token, ia.ParticipantID)
	b := listen(t, s.URL, sess.ID, "principal B", ib.Token, ib.ParticipantID)
	witness := listen(t, s.URL, sess.ID, "witness", iw.Token, iw.ParticipantID)
	observer := listen(t, s.URL, sess.ID, "observer", iv.Token, iv.ParticipantID)
	for _, id := range []string{io_.ParticipantID, ia.ParticipantID, ib.ParticipantID, iv.ParticipantID} {
		call(t, "POST", base+"/participants/"+id+"/admit", notaryAPI, nil, 200, nil)
	}
	officer.publish() // once admitted

	const number = "KX1234567"
	text, err := mrz.FormatTD3(mrz.Document{Type: "P", IssuingState: "EST", Surname: "TAMM", GivenNames: "MARI", Number: number,
		Nationality: "EST", BirthDate: "1980-02-29", Sex: "F", ExpiryDate: time.Now().AddDate(3, 0, 0).Format(time.DateOnly)})
	if err != nil {
		t.Fatal(err)
	}
	var check struct{ ID string }
	call(t, "POST", base+"/identity-checks", officerAPI, map[string]any{"participant_id": ia.ParticipantID, "mrz": text, "embassy": "Embassy in London"}, 201, &check)
	callRaw(t, "POST", base+"/identity-checks/"+check.ID+"/stills?kind=face", officerAPI, "image/png", stillPNG(t), 201)
	call(t, "POST", base+"/identity-checks/"+check.ID+"/outcome", officerAPI, map[string]any{"verified": false, "reason": "The photo page is damaged."}, 200, nil)
	waitEvent(t, notary, "identity_check")
	waitEvent(t, officer, "identity_check")

	// Through the API too, the other principal does not see it.
	var listed []struct {
		ParticipantID string `json:"participant_id"`
	}
	call(t, "GET", base+"/identity-checks", ib.Token, nil, 200, &listed)
	if len(listed) != 0 {
		t.Errorf("principal B lists another principal's identity check: %+v", listed)
	}
	call(t, "GET", base+"/identity-checks", ia.Token, nil, 200, &listed)
	if len(listed) != 1 || listed[0].ParticipantID != ia.ParticipantID {
		t.Errorf("principal A lists %+v, want their own check", listed)
	}

	call(t, "POST", base+"/close", notaryAPI, nil, 200, nil)
	if !slices.Contains(types(a.ended(t)), "identity_check") {
		t.Error("the principal concerned was not told of their identity check")
	}
	passport := map[string]string{number: "the passport number", "1980-02-29": "the birth date", check.ID: "the identity check"}
	for _, l := range []*listener{b, witness, observer} {
		got := l.ended(t)
		mustNotLearn(t, l.name, got, passport)
		if slices.Contains(types(got), "identity_check") {
			t.Errorf("%s was sent an identity check", l.name)
		}
	}
}

// TestExpiredInvitationIsDisconnected: a participant connected when their
// invitation expires is disconnected then, with bye token_expired.
func TestExpiredInvitationIsDisconnected(t *testing.T) {
	dir := t.TempDir()
	clerk := addStaff(t, dir, nil, "Clerk Kask", "clerk").Token
	s := startServer(t, dir, nil, "--nat-ip", "127.0.0.1")
	var sess struct{ ID string }
	call(t, "POST", s.URL+"/api/v1/sessions", clerk, map[string]any{"kind": "hearing", "title": "Expiry"}, 201, &sess)
	expires := time.Now().Add(3 * time.Second).UTC().Truncate(time.Millisecond)
	var inv invited
	call(t, "POST", s.URL+"/api/v1/sessions/"+sess.ID+"/invitations", clerk,
		map[string]any{"name": "Witness Saar", "role": "witness", "expires_at": expires}, 201, &inv)
	l := listen(t, s.URL, sess.ID, "witness", inv.Token, inv.ParticipantID)
	l.ended(t)
	if time.Now().Before(expires) {
		t.Fatal("disconnected before the invitation expired")
	}
	if got := l.c.ByeReason(); got != "token_expired" {
		t.Fatalf("bye %q, want token_expired", got)
	}
}

// TestSignalRevealsNoOtherSession: joining another session's signalling
// endpoint with a valid token is refused exactly as joining one that does
// not exist, naming neither.
func TestSignalRevealsNoOtherSession(t *testing.T) {
	dir := t.TempDir()
	clerk := addStaff(t, dir, nil, "Clerk Kask", "clerk").Token
	s := startServer(t, dir, nil)
	var mine, theirs struct{ ID string }
	call(t, "POST", s.URL+"/api/v1/sessions", clerk, map[string]any{"kind": "hearing", "title": "Mine"}, 201, &mine)
	call(t, "POST", s.URL+"/api/v1/sessions", clerk, map[string]any{"kind": "hearing", "title": "Theirs"}, 201, &theirs)
	var inv invited
	call(t, "POST", s.URL+"/api/v1/sessions/"+mine.ID+"/invitations", clerk, map[string]any{"name": "Mari Tamm", "role": "party"}, 201, &inv)
	refusal := func(sessionID string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := client.Dial(ctx, client.Config{URL: "ws" + strings.TrimPrefix(s.URL, "http") + "/api/v1/sessions/" + sessionID + "/signal",
			Token: inv.Token, LoopbackOnly: true})
		if err == nil {
			t.Fatalf("joined session %s with another session's token", sessionID)
		}
		return err.Error()
	}
	foreign, absent := refusal(theirs.ID), refusal(uuid.NewString())
	if foreign != absent {
		t.Errorf("another session refuses with %q, none with %q", foreign, absent)
	}
	if strings.Contains(foreign, theirs.ID) {
		t.Errorf("the refusal names the other session: %s", foreign)
	}
}

// TestStrictTransportSecurity: behind a TLS proxy (an https public URL)
// every response, pages and API alike, carries Strict-Transport-Security;
// so does Chamber serving TLS itself.
func TestStrictTransportSecurity(t *testing.T) {
	s := startServer(t, "", nil, "--public-url", "https://chamber.example.org")
	for _, path := range []string{"/", "/healthz", "/api/v1/sessions", "/no/such/path"} {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("%s: Strict-Transport-Security %q", path, got)
		}
	}
	for _, tc := range []struct {
		cfg  serveConfig
		want bool
	}{
		{serveConfig{publicURL: "http://localhost:8080"}, false},
		{serveConfig{publicURL: "https://chamber.example.org"}, true},
		{serveConfig{publicURL: "HTTPS://chamber.example.org"}, true},
		{serveConfig{publicURL: "http://localhost:8443", tlsCert: "cert.pem", tlsKey: "key.pem"}, true},
	} {
		if got := tc.cfg.https(); got != tc.want {
			t.Errorf("%+v: HSTS %v, want %v", tc.cfg, got, tc.want)
		}
	}
}
