package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/recording"
	"github.com/chamber-court/chamber/sessions"
	"github.com/chamber-court/chamber/signaling/sfu"
)

// recordSomething records a second of a participant's audio in a session
// through the REST API and the recorder's tap, and returns the recording.
func (h *harness) recordSomething(t *testing.T, token string, sid uuid.UUID) recording.Recorded {
	t.Helper()
	path := "/api/v1/sessions/" + sid.String() + "/recording"
	h.must(h.do("POST", path, token, map[string]any{"action": "start"}), 200)
	tap, err := h.recording.OpenTap(sid, sfu.TrackInfo{TrackID: "mic", ParticipantID: uuid.New(), ParticipantName: "Mari", StreamID: "s",
		Source: sfu.SourceMicrophone, Kind: webrtc.RTPCodecTypeAudio, Codec: webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	tap.(sfu.TapSenderReporter).SenderReport(sfu.SenderReport{SSRC: 7, NTPTime: 3_973_000_000 << 32})
	for i := range 50 {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 7, SequenceNumber: uint16(i), Timestamp: uint32(i * 960)},
			Payload: []byte{0xfc, 0xff, 0xfe}}
		if err := tap.WriteRTP(&p); err != nil {
			t.Fatal(err)
		}
	}
	tap.Close()
	h.must(h.do("POST", path, token, map[string]any{"action": "stop"}), 200)
	var list []recording.Recorded
	h.must(h.do("GET", "/api/v1/sessions/"+sid.String()+"/recordings", token, nil), 200).decode(t, &list)
	if len(list) == 0 {
		t.Fatal("no recording listed")
	}
	var rec recording.Recorded
	h.must(h.do("GET", "/api/v1/sessions/"+sid.String()+"/recordings/"+list[len(list)-1].ID.String(), token, nil), 200).decode(t, &rec)
	return rec
}

// get sends a GET with optional headers (a cookie, a range) and no token
// unless given.
func (h *harness) get(path, token string, headers map[string]string) response {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Body: b, Header: resp.Header}
}

// TestPlayback: the recordings of the record are listed with their
// manifests; their files are served with byte ranges and their SHA-256 as
// ETag, to a caller with see_recording — by API token or by the console's
// sign-in cookie — and to nobody else; an object the catalog does not name — a
// stray write under the recording's prefix, another session's recording,
// a crafted name — is not found.
func TestPlayback(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		h := newHarness(t, db)
		clerk := h.staffToken(access.Clerk)
		sess := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Playback"})
		other := h.createSession(clerk, map[string]any{"kind": "hearing", "title": "Another"})
		sid := sess.ID.String()
		party := h.invite(clerk, sess.ID, "Party", access.Party)
		judge := h.official(clerk, sess.ID, "Judge", access.Judge)
		rec := h.recordSomething(t, clerk, sess.ID)
		otherRec := h.recordSomething(t, clerk, other.ID)
		if rec.Manifest == nil || len(rec.Manifest.Files) != 1 || len(rec.Manifest.Names) != 1 || rec.Manifest.Version != 2 {
			t.Fatalf("recording %+v", rec)
		}
		switch rec.Composite.State {
		case recording.CompositePending, recording.CompositeUnavailable: // the job does not run here
		default:
			t.Errorf("composite %+v", rec.Composite)
		}
		file := rec.Manifest.Files[0]
		base := "/api/v1/sessions/" + sid + "/recordings/" + rec.ID.String() + "/files/"
		url := base + rec.Manifest.Names[0]

		// The whole file, then a range, then a revalidation.
		r := h.must(h.get(url, clerk, nil), 200)
		sum := sha256.Sum256(r.Body)
		if hex.EncodeToString(sum[:]) != file.SHA256 || r.Header.Get("ETag") != `"`+file.SHA256+`"` || r.Header.Get("Content-Type") != "video/webm" ||
			r.Header.Get("Accept-Ranges") != "bytes" || !strings.Contains(r.Header.Get("Content-Security-Policy"), "sandbox") {
			t.Errorf("file: %d bytes, headers %v", len(r.Body), r.Header)
		}
		r = h.must(h.get(url, judge.Token, map[string]string{"Range": "bytes=4-103"}), 206)
		if len(r.Body) != 100 || r.Header.Get("Content-Range") != "bytes 4-103/"+strconv.FormatInt(file.Size, 10) {
			t.Errorf("range: %d bytes, %s", len(r.Body), r.Header.Get("Content-Range"))
		}
		h.must(h.get(url, clerk, map[string]string{"Range": "bytes=99999999-"}), 416)
		h.must(h.get(url, clerk, map[string]string{"If-None-Match": `"` + file.SHA256 + `"`}), 304)
		// The manifest is served as it is stored.
		h.must(h.get(base+"manifest.json", clerk, nil), 200)

		// Who may not.
		h.must(h.do("GET", "/api/v1/sessions/"+sid+"/recordings", party.Token, nil), 403)
		h.must(h.do("GET", "/api/v1/sessions/"+sid+"/recordings/"+rec.ID.String(), party.Token, nil), 403)
		h.must(h.get(url, party.Token, nil), 403)
		h.must(h.get(url, "", nil), 401)

		// What is not part of the record.
		stray := strings.TrimSuffix(file.Key, ".webm") + "-stray.webm"
		if _, err := h.store.Put(context.Background(), stray, strings.NewReader("not evidence"), evidence.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{stray[strings.LastIndex(stray, "/")+1:], "..%2F..%2F" + rec.ID.String() + "%2Fmanifest.json", "%2e%2e", "nothing.webm"} {
			h.must(h.get(base+name, clerk, nil), 404)
		}
		h.must(h.get("/api/v1/sessions/"+sid+"/recordings/"+otherRec.ID.String()+"/files/"+otherRec.Manifest.Names[0], clerk, nil), 404)
		h.must(h.do("GET", "/api/v1/sessions/"+sid+"/recordings/"+otherRec.ID.String(), clerk, nil), 404)

		// In the console: a judge signed in with the cookie, as a <video>
		// element asks — while assigned, not before (the session is not
		// theirs: not found, like any other), not after signing out.
		b := newBrowser(t, h)
		var st sessions.Staff
		h.must(b.do("POST", "/api/v1/auth/development", `{"name":"Judge Tamm","role":"judge"}`, nil), 200).decode(t, &st)
		video := http.Header{"Range": {"bytes=0-9"}, "Origin": nil}
		h.must(b.do("GET", url, "", video), 404)
		h.must(h.do("POST", "/api/v1/sessions/"+sid+"/assignments", clerk, map[string]any{"staff_id": st.ID}), 201)
		if r := h.must(b.do("GET", url, "", video), 206); len(r.Body) != 10 {
			t.Errorf("range over the cookie: %d bytes", len(r.Body))
		}
		if r := b.do("GET", url, "", http.Header{"Range": {"bytes=0-9"}, "Sec-Fetch-Site": {"cross-site"}}); r.Status != 403 || r.errorCode() != "csrf" {
			t.Errorf("a cross-site page's video: %d %s", r.Status, r.Body)
		}
		h.must(b.do("POST", "/api/v1/auth/logout", "", nil), 200)
		h.must(b.do("GET", url, "", video), 401)
	})
}
