package signaling

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// chromeOffer is a publish offer of the shape Chrome sends: audio and a
// simulcast VP8 camera.
const chromeOffer = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n" +
	"a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\na=setup:actpass\r\na=mid:0\r\n" +
	"a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=sendonly\r\na=msid:- 1a2b\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=ssrc:1111 cname:x\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n" +
	"a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\na=setup:actpass\r\na=mid:1\r\n" +
	"a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\na=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n" +
	"a=sendonly\r\na=msid:- 3c4d\r\na=rtcp-mux\r\na=rtcp-rsize\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n" +
	"a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;f\r\n"

// FuzzSignalMessages sends arbitrary messages on a joined connection: the
// server must answer (or ignore) each and keep the connection alive.
func FuzzSignalMessages(f *testing.F) {
	seeds := []string{
		`{"type":"ping","id":"1","data":{"x":1}}`,
		`{"type":"offer","id":"2","data":{"pc":"publish","sdp":` + jsonString(chromeOffer) + `,"tracks":[{"mid":"0","source":"microphone"},{"mid":"1","source":"camera"}]}}`,
		`{"type":"answer","data":{"pc":"subscribe","sdp":"v=0\r\n"}}`,
		`{"type":"candidate","data":{"pc":"publish","candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}`,
		`{"type":"quality","data":{"track_id":"x","max_layer":1}}`,
		`{"type":"chat","data":{"text":"objection"}}`,
		`{"type":"present","data":{"exhibit":"P-1"}}`,
		`{"type":"join","data":{"version":1,"token":"t"}}`,
		`{"type":"leave"}`,
		`{}`, `null`, `"x"`, `{"type":1}`, `{"type":"offer","data":{"pc":"publish","sdp":"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	// A fuzzed offer can start a publish connection whose peer never
	// answers ICE checks; the long failure timeout keeps that from closing
	// the connection in the middle of a run.
	ts := newTestServer(f, func(c *Config) {
		c.MessagesPerSecond, c.MessageBurst = 1e6, 1e6
		c.ICEFailedTimeout = time.Hour
	})
	dial := func() *client.Client {
		tok, _ := ts.tokens.issue(ts.session, "fuzzer", "party")
		c, err := client.Dial(context.Background(), client.Config{URL: ts.url(ts.session), Token: tok, LoopbackOnly: true, Events: make(chan protocol.Envelope, 1<<16)})
		if err != nil {
			f.Fatal(err)
		}
		return c
	}
	c := dial()
	f.Cleanup(func() { _ = c.Close() })
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) > protocol.MaxMessageSize {
			return
		}
		if err := c.WriteRaw(context.Background(), msg); err != nil {
			t.Fatalf("write: %v (connection closed: %v, bye %q)", err, c.Err(), c.ByeReason())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.Request(ctx, protocol.TypePing, nil); err != nil {
			if c.ByeReason() == "left" {
				// A "leave" legitimately ends the connection: start a new one.
				_ = c.Close()
				c = dial()
				return
			}
			t.Fatalf("connection did not survive %q: %v (closed: %v)", msg, err, c.Err())
		}
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
