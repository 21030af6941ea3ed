package signaling

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// rawConn is a bare WebSocket for sending what a client library would not.
func rawConn(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

func readEnvelope(t *testing.T, ws *websocket.Conn) (protocol.Envelope, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, data, err := ws.Read(ctx)
	if err != nil {
		return protocol.Envelope{}, err
	}
	var env protocol.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatalf("server sent malformed JSON %q", data)
	}
	return env, nil
}

func TestBadTokensAreRefused(t *testing.T) {
	ts := newTestServer(t, nil)
	otherSession := uuid.New()
	tokOther, _ := ts.tokens.issue(otherSession, "elsewhere", "party")
	cases := []struct {
		name  string
		first string
		code  string
	}{
		{"no token", `{"type":"join","data":{"version":1}}`, protocol.CodeUnauthenticated},
		{"wrong token", `{"type":"join","data":{"version":1,"token":"nope"}}`, protocol.CodeUnauthenticated},
		{"token of another session", `{"type":"join","data":{"version":1,"token":"` + tokOther + `"}}`, protocol.CodeUnauthenticated},
		{"wrong version", `{"type":"join","data":{"version":99,"token":"x"}}`, protocol.CodeUnsupportedVersion},
		{"not a join", `{"type":"offer","data":{"pc":"publish","sdp":""}}`, protocol.CodeBadRequest},
		{"malformed", `{"type":`, protocol.CodeBadRequest},
		{"unknown field", `{"type":"join","data":{"version":1,"token":"x","admin":true}}`, protocol.CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := rawConn(t, ts.url(ts.session))
			if err := ws.Write(context.Background(), websocket.MessageText, []byte(tc.first)); err != nil {
				t.Fatal(err)
			}
			env, err := readEnvelope(t, ws)
			if err != nil {
				t.Fatalf("no error message before close: %v", err)
			}
			if env.Type != protocol.TypeError {
				t.Fatalf("got %s, want error", env.Type)
			}
			if e := decode[protocol.Error](t, env); e.Code != tc.code {
				t.Errorf("code %q, want %q (%s)", e.Code, tc.code, e.Message)
			}
			_, err = readEnvelope(t, ws)
			if st := websocket.CloseStatus(err); st != websocket.StatusPolicyViolation {
				t.Errorf("closed with %v (%v), want policy violation", st, err)
			}
		})
	}
	// A token for this session still works afterwards.
	ts.dial(t, "fine", nil)
}

func TestBadMessagesGetErrorsAndHarmNoOne(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MessagesPerSecond = 1000; c.MessageBurst = 1000 })
	pubC, pubID, _ := ts.dial(t, "publisher", nil)
	sub, _, _ := ts.dial(t, "subscriber", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := pubC.Publish(ctx, client.PublishOptions{Audio: true, Video: true, VideoBitrate: 300_000})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Stop()
	waitFor(t, 15*time.Second, "media", func() bool { return len(tracksOf(sub, pubID.ParticipantID)) == 2 })

	bad, _, events := ts.dial(t, "troublemaker", nil)
	// Let the troublemaker's own subscribe negotiation settle first, so
	// that no offer is outstanding while it misbehaves.
	waitFor(t, 15*time.Second, "the troublemaker receiving", func() bool {
		tr := tracksOf(bad, pubID.ParticipantID)
		return len(tr) == 2 && tr[0].Stats().Packets > 0 && tr[1].Stats().Packets > 0
	})
	huge := `{"type":"chat","data":{"text":"` + strings.Repeat("x", protocol.MaxMessageSize) + `"}}`
	// Over the SDP limit, under the message limit once escaped in JSON.
	longSDP := strings.Repeat("a=xxxxxxxxxx\r\n", protocol.MaxSDPSize/14+1)
	// Messages with an envelope carry an id, which the error echoes; the
	// others get an error without one.
	cases := []struct {
		name, id, msg, code string
	}{
		{"malformed JSON", "", `{"type": "offer", `, protocol.CodeBadRequest},
		{"not an object", "", `[1,2,3]`, protocol.CodeBadRequest},
		{"missing type", "c3", `{"id":"c3","data":{}}`, protocol.CodeBadRequest},
		{"unknown type", "c4", `{"id":"c4","type":"launch_missiles","data":{}}`, protocol.CodeUnknownType},
		{"weird type", "c5", `{"id":"c5","type":"../../etc","data":{}}`, protocol.CodeUnknownType},
		{"oversized", "", huge, protocol.CodeTooLarge},
		{"garbage SDP", "c7", `{"id":"c7","type":"offer","data":{"pc":"publish","sdp":"this is not SDP"}}`, protocol.CodeBadSDP},
		{"SDP with no media", "c8", `{"id":"c8","type":"offer","data":{"pc":"publish","sdp":"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"}}`, protocol.CodeBadSDP},
		{"huge SDP", "c9", `{"id":"c9","type":"offer","data":{"pc":"publish","sdp":"` + strings.ReplaceAll(strings.ReplaceAll(longSDP, "\r", `\r`), "\n", `\n`) + `"}}`, protocol.CodeTooLarge},
		{"offer on the wrong pc", "c10", `{"id":"c10","type":"offer","data":{"pc":"subscribe","sdp":"v=0"}}`, protocol.CodeBadRequest},
		{"unknown source", "c11", `{"id":"c11","type":"offer","data":{"pc":"publish","sdp":"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n","tracks":[{"mid":"0","source":"hologram"}]}}`, protocol.CodeBadRequest},
		{"answer nobody asked for", "c12", `{"id":"c12","type":"answer","data":{"pc":"subscribe","sdp":"v=0"}}`, protocol.CodeConflict},
		{"bad candidate", "c13", `{"id":"c13","type":"candidate","data":{"pc":"publish","candidate":"candidate:garbage"}}`, protocol.CodeBadCandidate},
		{"candidate for an unknown pc", "c14", `{"id":"c14","type":"candidate","data":{"pc":"third","candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host"}}`, protocol.CodeBadCandidate},
		{"quality for an unknown track", "c15", `{"id":"c15","type":"quality","data":{"track_id":"nope","paused":true}}`, protocol.CodeNotFound},
		{"bad chat", "c16", `{"id":"c16","type":"chat","data":{"text":""}}`, protocol.CodeInvalid},
		{"second join", "c17", `{"id":"c17","type":"join","data":{"version":1,"token":"x"}}`, protocol.CodeConflict},
		{"binary-looking text", "", "\x00\x01\x02", protocol.CodeBadRequest},
	}
	for _, tc := range cases {
		if err := bad.WriteRaw(context.Background(), []byte(tc.msg)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		deadline := time.After(10 * time.Second)
	wait:
		for {
			select {
			case env := <-events:
				if env.Type != protocol.TypeError || env.ID != tc.id {
					continue
				}
				if e := decode[protocol.Error](t, env); e.Code != tc.code {
					t.Errorf("%s: code %q, want %q (%s)", tc.name, e.Code, tc.code, e.Message)
				}
				break wait
			case <-deadline:
				t.Fatalf("%s: no error", tc.name)
			}
		}
	}
	// The troublemaker is still connected and served …
	env, err := bad.Request(context.Background(), protocol.TypePing, map[string]int{"n": 7})
	if err != nil || env.Type != protocol.TypePong || string(env.Data) != `{"n":7}` {
		t.Fatalf("ping after bad messages: %v %s %s", err, env.Type, env.Data)
	}
	// … and the others never noticed.
	tr := tracksOf(sub, pubID.ParticipantID)
	before := tr[1].Stats().Packets
	waitFor(t, 5*time.Second, "media still flowing", func() bool { return tr[1].Stats().Packets > before+20 })
}

func TestRateLimit(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MessagesPerSecond = 5; c.MessageBurst = 5 })
	c, _, events := ts.dial(t, "chatty", nil)
	for i := 0; i < 30; i++ {
		if err := c.Send(context.Background(), protocol.TypePing, nil); err != nil {
			t.Fatal(err)
		}
	}
	env := waitEvent(t, events, protocol.TypeError, 5*time.Second)
	if e := decode[protocol.Error](t, env); e.Code != protocol.CodeRateLimited {
		t.Fatalf("got %q, want rate_limited", e.Code)
	}
	// The bucket refills: a ping is answered again (polled, with a deadline).
	waitFor(t, 5*time.Second, "a ping answered after the burst", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := c.Request(ctx, protocol.TypePing, nil)
		return err == nil
	})
}
