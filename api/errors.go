package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/chamber-court/chamber/fault"
)

// statusOf is the one table from an error's kind to its HTTP status.
var statusOf = map[fault.Kind]int{
	fault.Internal:            http.StatusInternalServerError,
	fault.Invalid:             http.StatusUnprocessableEntity,
	fault.BadRequest:          http.StatusBadRequest,
	fault.NotFound:            http.StatusNotFound,
	fault.Conflict:            http.StatusConflict,
	fault.Forbidden:           http.StatusForbidden,
	fault.Unauthenticated:     http.StatusUnauthorized,
	fault.Expired:             http.StatusUnauthorized,
	fault.Revoked:             http.StatusUnauthorized,
	fault.TooLarge:            http.StatusRequestEntityTooLarge,
	fault.Unsupported:         http.StatusUnsupportedMediaType,
	fault.RateLimited:         http.StatusTooManyRequests,
	fault.Unavailable:         http.StatusServiceUnavailable,
	fault.InsufficientStorage: http.StatusInsufficientStorage,
	fault.Canceled:            499, // nginx's "client closed request": nobody reads it
}

// StatusOf returns the HTTP status for err.
func StatusOf(err error) int { return statusOf[fault.KindOf(err)] }

// defaultRetryAfter is sent with a 503 whose error carries no hint of its
// own, so clients back off instead of hammering a dependency that is down.
const defaultRetryAfter = 2 * time.Second

// fail turns an error from a lower floor into its HTTP response. Internal
// errors are logged and answered with a 500 that reveals nothing. Logs name
// the route pattern, never the raw path, which may carry a link's token.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	kind := fault.KindOf(err)
	if kind == fault.Canceled && r.Context().Err() == nil {
		kind = fault.Internal // canceled by us, not by the client
	}
	switch kind {
	case fault.Internal:
		a.log.Error("request failed", "route", r.Pattern, "err", err)
	case fault.Unavailable, fault.InsufficientStorage:
		a.log.Warn("request failed", "route", r.Pattern, "kind", kind, "err", err)
	}
	retry := fault.RetryAfter(err)
	if retry == 0 && kind == fault.Unavailable {
		retry = defaultRetryAfter
	}
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(time.Second, retry).Seconds())))
	}
	code, message, fields := fault.Describe(err)
	if kind == fault.Internal {
		code, message, fields = fault.Internal.Code(), fault.Internal.Error(), nil
	}
	WriteJSON(w, statusOf[kind], ErrorBody{Error: ErrorDetail{Code: code, Message: message, Fields: fields}})
}
