package api

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/sessions"
)

func (a *API) staffRoutes() {
	tags := []string{"staff"}
	errs := []int{400, 401, 403, 404, 409, 415, 422, 429}
	a.route("GET /api/v1/staff", Op{Summary: "Every staff member, revoked ones included (admin)", Tags: tags, Auth: "bearer",
		Response: []sessions.Staff{}, Errors: []int{401, 403, 429}}, a.admin(a.handleListStaff))
	a.route("POST /api/v1/staff", Op{Summary: "Provision a staff member, optionally linked to a provider account (external_subject = issuer|subject) (admin)", Tags: tags, Auth: "bearer",
		Request: sessions.NewStaff{}, Response: sessions.Staff{}, Status: 201, Errors: errs}, a.admin(a.handleAddStaff))
	a.route("POST /api/v1/staff/{id}/revoke", Op{Summary: "Revoke a staff member: their console sessions, API tokens and live connections end at once; invitations they issued stay valid (admin)", Tags: tags, Auth: "bearer",
		Status: 204, Errors: []int{401, 403, 404, 429}}, a.admin(a.handleRevokeStaff))
	a.route("GET /api/v1/staff/{id}/tokens", Op{Summary: "A staff member's API tokens (admin)", Tags: tags, Auth: "bearer",
		Response: []sessions.APIToken{}, Errors: []int{401, 403, 404, 429}}, a.admin(a.handleListTokens))
	a.route("POST /api/v1/staff/{id}/tokens", Op{Summary: "Issue an API token for automation: scoped, expiring; the token is shown once (admin)", Tags: tags, Auth: "bearer",
		Request: sessions.NewAPIToken{}, Response: sessions.CreatedAPIToken{}, Status: 201, Errors: errs}, a.admin(a.handleAddToken))
	a.route("GET /api/v1/tokens", Op{Summary: "Every API token (admin)", Tags: tags, Auth: "bearer",
		Response: []sessions.APIToken{}, Errors: []int{401, 403, 429}}, a.admin(a.handleListAllTokens))
	a.route("DELETE /api/v1/tokens/{id}", Op{Summary: "Revoke an API token; the connections it opened close (admin)", Tags: tags, Auth: "bearer",
		Status: 204, Errors: []int{401, 403, 404, 429}}, a.admin(a.handleRevokeToken))
}

// admin is auth for the routes only an admin may call.
func (a *API) admin(f handler) http.HandlerFunc {
	return a.auth(func(w http.ResponseWriter, r *http.Request) error {
		if err := requireAdmin(principal(r.Context())); err != nil {
			return err
		}
		return f(w, r)
	})
}

func (a *API) handleListStaff(w http.ResponseWriter, r *http.Request) error {
	list, err := a.sessions.ListStaff(r.Context())
	return reply(w, http.StatusOK, list, err)
}

func (a *API) handleAddStaff(w http.ResponseWriter, r *http.Request) error {
	var in sessions.NewStaff
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	st, err := a.sessions.AddStaff(r.Context(), principal(r.Context()).Actor(), in)
	return reply(w, http.StatusCreated, st, err)
}

func (a *API) handleRevokeStaff(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if err := a.sessions.RevokeStaff(r.Context(), principal(r.Context()).Actor(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) handleListTokens(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if _, err := a.sessions.GetStaff(r.Context(), id); err != nil {
		return err
	}
	list, err := a.sessions.ListAPITokens(r.Context(), id)
	return reply(w, http.StatusOK, list, err)
}

func (a *API) handleAddToken(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var in sessions.NewAPIToken
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	tok, err := a.sessions.AddAPIToken(r.Context(), principal(r.Context()).Actor(), id, in)
	return reply(w, http.StatusCreated, tok, err)
}

func (a *API) handleListAllTokens(w http.ResponseWriter, r *http.Request) error {
	list, err := a.sessions.ListAPITokens(r.Context(), uuid.Nil)
	return reply(w, http.StatusOK, list, err)
}

func (a *API) handleRevokeToken(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if err := a.sessions.RevokeAPIToken(r.Context(), principal(r.Context()).Actor(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
