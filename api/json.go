package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/chamber-court/chamber/fault"
)

// ErrorBody is the JSON body of every error response:
// {"error":{"code":"…","message":"…"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong. Fields is set when particular input
// fields were wrong (e.g. an MRZ's check digits).
type ErrorDetail struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// Error writes a JSON error response.
func Error(w http.ResponseWriter, status int, code, message string) {
	WriteJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: message}})
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing more to tell it
}

// maxJSONBody bounds every JSON request body.
const maxJSONBody = 1 << 20

// BadRequest reports a request that cannot be parsed (400), with a code
// more specific than bad_request.
func BadRequest(code, format string, args ...any) *fault.Error {
	return &fault.Error{Kind: fault.BadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

// DecodeJSON reads a JSON request body into v: at most 1 MiB, one value,
// no unknown fields. Errors are *fault.Error with a precise message.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return fault.New(fault.Unsupported, "request body must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return BadRequest("malformed_json", "request body must hold one JSON value")
		}
		var extra json.RawMessage
		if err := dec.Decode(&extra); err != io.EOF {
			return BadRequest("malformed_json", "request body must hold one JSON value")
		}
		return nil
	}
	var (
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		tooLarge  *http.MaxBytesError
		unknownPf = "json: unknown field "
	)
	switch {
	case errors.Is(err, io.EOF):
		return BadRequest("malformed_json", "request body is empty; a JSON object is required")
	case errors.As(err, &syntax):
		return BadRequest("malformed_json", "malformed JSON at byte %d: %v", syntax.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("malformed_json", "malformed JSON: the body ends early")
	case errors.As(err, &typeErr):
		return BadRequest("malformed_json", "field %q must be %s, not %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case errors.As(err, &tooLarge):
		return fault.New(fault.TooLarge, "request body exceeds %d bytes", tooLarge.Limit)
	case strings.HasPrefix(err.Error(), unknownPf):
		return BadRequest("unknown_field", "unknown field %s", strings.TrimPrefix(err.Error(), unknownPf))
	default:
		return BadRequest("malformed_json", "malformed JSON: %v", err)
	}
}

// reply writes v as JSON with status — unless err is set, which the caller's
// handler then reports instead.
func reply(w http.ResponseWriter, status int, v any, err error) error {
	if err != nil {
		return err
	}
	WriteJSON(w, status, v)
	return nil
}
