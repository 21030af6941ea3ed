package signaling

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Every answer of the signalling endpoint that is not an upgrade is a JSON
// error like the REST API's, never plain text.
func TestSignalEndpointAnswersJSONErrors(t *testing.T) {
	ts := newTestServer(t, nil)
	stopped := newTestServer(t, nil)
	if err := stopped.Close(); err != nil {
		t.Fatal(err)
	}
	handshake := http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
	}
	with := func(h http.Header, k, v string) http.Header {
		h = h.Clone()
		h.Set(k, v)
		return h
	}
	path := "/api/v1/sessions/" + ts.session.String() + "/signal"
	cases := []struct {
		name   string
		srv    *testServer
		path   string
		header http.Header
		status int
		code   string
	}{
		{"malformed session id", ts, "/api/v1/sessions/not-a-uuid/signal", handshake, http.StatusNotFound, "not_found"},
		{"server stopped", stopped, path, handshake, http.StatusServiceUnavailable, "unavailable"},
		{"plain GET", ts, path, nil, http.StatusBadRequest, "bad_request"},
		{"no Upgrade header", ts, path, with(handshake, "Upgrade", ""), http.StatusBadRequest, "bad_request"},
		{"wrong version", ts, path, with(handshake, "Sec-Websocket-Version", "8"), http.StatusBadRequest, "bad_request"},
		{"bad key", ts, path, with(handshake, "Sec-Websocket-Key", "short"), http.StatusBadRequest, "bad_request"},
		{"foreign origin", ts, path, with(handshake, "Origin", "https://evil.example"), http.StatusForbidden, "forbidden"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", tc.srv.http.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status {
				t.Errorf("status %d, want %d (%s)", res.StatusCode, tc.status, body)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var e struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			dec := json.NewDecoder(strings.NewReader(string(body)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil {
				t.Fatalf("body %q is not a JSON error: %v", body, err)
			}
			if e.Error.Code != tc.code || e.Error.Message == "" {
				t.Errorf("error %+v, want code %q and a message", e.Error, tc.code)
			}
			t.Logf("%d %s", res.StatusCode, strings.TrimSpace(string(body)))
		})
	}
	// The same endpoint still upgrades a real handshake.
	ws := rawConn(t, ts.url(ts.session))
	_ = ws.CloseNow()
}

func TestHandshakeWriterPassesAnUpgradeThrough(t *testing.T) {
	rec := httptest.NewRecorder()
	hw := &handshakeWriter{ResponseWriter: rec}
	hw.WriteHeader(http.StatusSwitchingProtocols)
	hw.WriteHeader(http.StatusInternalServerError) // a later failure cannot change the answer
	hw.fail(io.ErrUnexpectedEOF)
	if rec.Code != http.StatusSwitchingProtocols || rec.Body.Len() != 0 {
		t.Errorf("recorded %d %q after an upgrade", rec.Code, rec.Body.String())
	}
}
