package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/documents/pades"
	"github.com/chamber-court/chamber/sessions"
)

// fail turns an error from a lower floor into its HTTP response. Unknown
// errors are logged and answered with a 500 that reveals nothing. Logs name
// the route pattern, never the raw path, which may carry a link's token.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		problem   *Problem
		forbidden *access.ForbiddenError
		invalid   *sessions.InvalidError
		conflict  *sessions.ConflictError

		unsupported *documents.UnsupportedError
		docInvalid  *documents.InvalidError
		docConflict *documents.ConflictError
		certErr     *documents.CertificateError
		malformed   *pades.MalformedError
		order       *acts.OrderError
		actInvalid  *acts.InvalidError
	)
	switch {
	case errors.As(err, &problem):
		if problem.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(problem.RetryAfter.Seconds())))
		}
		WriteJSON(w, problem.Status, ErrorBody{Error: ErrorDetail{Code: problem.Code, Message: problem.Message, Fields: problem.Fields}})
	case errors.As(err, &forbidden):
		Error(w, http.StatusForbidden, "forbidden", "forbidden: "+string(forbidden.Action)+" is not allowed for role "+string(forbidden.Role))
	case errors.Is(err, sessions.ErrExpired):
		Error(w, http.StatusUnauthorized, "token_expired", "this link or token has expired")
	case errors.Is(err, sessions.ErrRevoked):
		Error(w, http.StatusUnauthorized, "token_revoked", "this link or token has been revoked")
	case errors.Is(err, sessions.ErrUnauthorized):
		Error(w, http.StatusUnauthorized, "unauthenticated", "invalid or missing token")
	case errors.Is(err, sessions.ErrNotFound):
		Error(w, http.StatusNotFound, "not_found", err.Error())
	case errors.As(err, &invalid):
		WriteJSON(w, http.StatusUnprocessableEntity, ErrorBody{Error: ErrorDetail{
			Code: "invalid", Message: invalid.Error(), Fields: map[string]string{invalid.Field: invalid.Message}}})
	case errors.As(err, &conflict):
		Error(w, http.StatusConflict, "conflict", conflict.Reason)
	case errors.Is(err, documents.ErrTooLarge):
		Error(w, http.StatusRequestEntityTooLarge, "too_large", err.Error())
	case errors.As(err, &unsupported):
		Error(w, http.StatusUnsupportedMediaType, "unsupported_media_type", unsupported.Error())
	case errors.Is(err, documents.ErrUnsupported):
		Error(w, http.StatusUnsupportedMediaType, "unsupported_media_type", err.Error())
	case errors.As(err, &docInvalid):
		WriteJSON(w, http.StatusUnprocessableEntity, ErrorBody{Error: ErrorDetail{
			Code: "invalid", Message: docInvalid.Error(), Fields: map[string]string{docInvalid.Field: docInvalid.Message}}})
	case errors.As(err, &docConflict):
		Error(w, http.StatusConflict, "conflict", docConflict.Reason)
	case errors.As(err, &certErr):
		Error(w, http.StatusConflict, "certificate_refused", certErr.Error())
	case errors.Is(err, documents.ErrNotFound):
		Error(w, http.StatusNotFound, "not_found", "no such document")
	case errors.As(err, &malformed):
		a.log.Warn("malformed PDF", "route", r.Pattern, "err", err)
		Error(w, http.StatusUnprocessableEntity, "malformed_pdf", malformed.Error())
	case errors.Is(err, pades.ErrEncrypted):
		Error(w, http.StatusUnprocessableEntity, "encrypted_pdf", err.Error())
	case errors.Is(err, pades.ErrOptions):
		Error(w, http.StatusUnprocessableEntity, "invalid", err.Error())
	case errors.As(err, &order):
		Error(w, http.StatusConflict, "conflict", order.Reason)
	case errors.As(err, &actInvalid):
		WriteJSON(w, http.StatusUnprocessableEntity, ErrorBody{Error: ErrorDetail{Code: actInvalid.Code, Message: actInvalid.Message, Fields: actInvalid.Fields}})
	case errors.Is(err, acts.ErrNotFound):
		Error(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, r.Context().Err()) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		Error(w, 499, "canceled", "request canceled")
	default:
		a.log.Error("request failed", "route", r.Pattern, "err", err)
		Error(w, http.StatusInternalServerError, "internal", "internal error")
	}
}
