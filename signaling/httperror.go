package signaling

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// httpError is the body of every error answer that is not a WebSocket
// message, the same shape as the REST API's: {"error":{"code","message"}}.
type httpError struct {
	Error httpErrorDetail `json:"error"`
}

type httpErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeHTTPError(w http.ResponseWriter, status int, code, message string) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(httpError{Error: httpErrorDetail{Code: code, Message: message}})
}

// handshakeWriter sits between websocket.Accept and the real
// ResponseWriter. A successful upgrade passes through (Accept finds the
// Hijacker with Unwrap); an error status is held back, with its plain-text
// body, until fail writes it as JSON.
type handshakeWriter struct {
	http.ResponseWriter
	status int  // error status Accept wanted to send; 0 if none
	wrote  bool // a status went through (the 101 of an upgrade)
}

// Unwrap lets websocket.Accept and http.ResponseController reach the
// connection's Hijacker.
func (hw *handshakeWriter) Unwrap() http.ResponseWriter { return hw.ResponseWriter }

func (hw *handshakeWriter) WriteHeader(status int) {
	if status >= 400 && !hw.wrote {
		hw.status = status
		return
	}
	hw.wrote = true
	hw.ResponseWriter.WriteHeader(status)
}

func (hw *handshakeWriter) Write(p []byte) (int, error) {
	if hw.status != 0 && !hw.wrote {
		return len(p), nil // Accept's plain-text error: replaced by fail
	}
	return hw.ResponseWriter.Write(p)
}

// fail answers a failed handshake: 403 forbidden for an Origin that is not
// allowed, 400 bad_request for anything else that is not a WebSocket
// handshake (a plain GET, a wrong version), with Accept's reason.
func (hw *handshakeWriter) fail(err error) {
	if hw.status == 0 || hw.wrote {
		// Accept failed after the upgrade was answered (hijacking): nothing
		// more can be written.
		return
	}
	msg := err.Error()
	for {
		// Accept's error carries a generic prefix; the cause is what helps.
		u := errors.Unwrap(err)
		if u == nil {
			break
		}
		err = u
		msg = err.Error()
	}
	msg = strings.TrimPrefix(msg, "WebSocket protocol violation: ")
	switch {
	case hw.status == http.StatusForbidden:
		writeHTTPError(hw.ResponseWriter, http.StatusForbidden, "forbidden", "this origin may not open the signalling WebSocket: "+msg)
	case hw.status >= 500:
		writeHTTPError(hw.ResponseWriter, hw.status, "internal", "the WebSocket upgrade failed")
	default:
		writeHTTPError(hw.ResponseWriter, http.StatusBadRequest, "bad_request", "not a WebSocket handshake: "+msg)
	}
}
