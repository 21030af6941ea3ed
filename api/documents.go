package api

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/sessions"
)

func (a *API) documentRoutes() {
	tags := []string{"documents"}
	a.route("POST /api/v1/sessions/{id}/documents", Op{Summary: "Upload evidence or an exhibit: a raw body with ?name=, or multipart/form-data with a file part; streamed into the evidence store with its SHA-256",
		Tags: tags, Auth: "bearer", RawBody: []string{"application/pdf", "image/jpeg", "image/png", "video/webm", "video/mp4", "application/ogg", "text/plain", "multipart/form-data"},
		Query: []Param{{Name: "name", Description: "file name (raw body uploads)"}}, Response: UploadResponse{}, Status: 201,
		Errors: []int{400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 507}}, a.auth(a.handleUpload))
	a.route("GET /api/v1/sessions/{id}/documents", Op{Summary: "The session's documents the caller may see", Tags: tags, Auth: "bearer",
		Response: []documents.Document{}, Errors: authErrors}, a.auth(a.handleListDocuments))
	a.route("GET /api/v1/documents/{id}", Op{Summary: "A document's metadata and version history", Tags: tags, Auth: "bearer",
		Response: documents.Document{}, Errors: authErrors}, a.auth(a.handleGetDocument))
	a.route("GET /api/v1/documents/{id}/content", Op{Summary: "A version's bytes (newest by default): byte ranges, ETag = SHA-256", Tags: tags, Auth: "bearer",
		Query:       []Param{{Name: "version", Type: "integer", Description: "version number (default newest)"}, {Name: "inline", Type: "boolean", Description: "display rather than download"}},
		RawResponse: "application/octet-stream", Errors: []int{401, 403, 404, 416, 429}}, a.auth(a.handleDocumentContent))
	a.route("PATCH /api/v1/documents/{id}", Op{Summary: "Label an exhibit (P-1, D-3, …) and set its status (submitted, admitted, rejected)", Tags: tags, Auth: "bearer",
		Request: documents.ExhibitChange{}, Response: documents.Document{}, Errors: bodyErrors}, a.auth(a.handleLabelDocument))
	a.route("POST /api/v1/documents/{id}/signatures", Op{Summary: "Sign the newest version of a PDF (PAdES B-LTA); returns the new version", Tags: tags, Auth: "bearer",
		Request: documents.SignRequest{}, Response: SignResponse{}, Status: 201, Errors: withOutages(bodyErrors)}, a.auth(a.handleSign))
}

// withOutages adds the answers to a database or store outage (503) and a
// full store (507) to a route's documented errors.
func withOutages(errs []int) []int { return slices.Concat(errs, []int{503, 507}) }

// actOpen refuses changes to the documents of a sealed notarial act.
func (a *API) actOpen(ctx context.Context, sess sessions.Session, what string) error {
	if !a.isAct(sess) {
		return nil
	}
	return a.acts.RequireOpen(ctx, sess.ID, what)
}

// UploadResponse describes a stored upload. Duplicate is true when the same
// bytes were already in the session; nothing new was stored.
type UploadResponse struct {
	ID          uuid.UUID `json:"id"`
	Name        string    `json:"name"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	ContentType string    `json:"content_type"`
	Version     int       `json:"version"`
	Duplicate   bool      `json:"duplicate"`
	Status      string    `json:"status,omitempty"`
}

// SignResponse is the new version a signature made.
type SignResponse struct {
	Document  documents.Document        `json:"document"`
	Signature documents.SignatureRecord `json:"signature"`
}

// caller resolves the principal's standing in a session for the document
// service, after checking action there.
func (a *API) caller(r *http.Request, sid uuid.UUID, action access.Action) (documents.Caller, sessions.Session, error) {
	sess, c, err := a.sessions.Caller(r.Context(), principal(r.Context()), sid, action)
	return c, sess, err
}

func docSession(s sessions.Session) documents.Session {
	return documents.Session{ID: s.ID, Kind: s.Kind, Title: s.Title}
}

func (a *API) handleUpload(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	c, sess, err := a.caller(r, sid, access.Upload)
	if err != nil {
		return err
	}
	if sess.State == sessions.Closed {
		return fault.New(fault.Conflict, "session is closed")
	}
	if err := a.actOpen(r.Context(), sess, "uploading"); err != nil {
		return err
	}
	limit := a.documents.MaxUpload()
	if r.ContentLength > limit+(1<<20) {
		return fault.New(fault.TooLarge, "the upload is %d bytes; the limit is %d", r.ContentLength, limit)
	}
	// Multipart framing adds a little; the document limit itself is
	// enforced on the file's bytes by the document service.
	r.Body = http.MaxBytesReader(w, r.Body, limit+(1<<20))
	up := documents.Upload{Name: r.URL.Query().Get("name"), ContentType: r.Header.Get("Content-Type"), Size: r.ContentLength, Body: r.Body}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		mr, err := r.MultipartReader()
		if err != nil {
			return BadRequest("bad_multipart", "malformed multipart body: %v", err)
		}
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				return BadRequest("bad_multipart", "the multipart body has no file part")
			}
			if err != nil {
				return BadRequest("bad_multipart", "malformed multipart body: %v", err)
			}
			if part.FileName() == "" {
				part.Close()
				continue
			}
			up = documents.Upload{Name: part.FileName(), ContentType: part.Header.Get("Content-Type"), Size: -1, Body: part}
			break
		}
	}
	d, dup, err := a.documents.Upload(r.Context(), c, docSession(sess), up)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = fault.TooLarge
		}
		return err
	}
	status := http.StatusCreated
	if dup {
		status = http.StatusOK
	}
	WriteJSON(w, status, UploadResponse{ID: d.ID, Name: d.Name, Size: d.Size, SHA256: d.SHA256, ContentType: d.ContentType,
		Version: d.Version, Duplicate: dup, Status: d.Status})
	return nil
}

func (a *API) handleListDocuments(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	c, _, err := a.caller(r, sid, access.SeeDocuments)
	if err != nil {
		return err
	}
	list, err := a.documents.List(r.Context(), c, sid)
	return reply(w, http.StatusOK, list, err)
}

// document loads a document the caller may see for action. A document the
// caller may not see is reported as not found.
func (a *API) document(r *http.Request, action access.Action) (documents.Document, documents.Caller, sessions.Session, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return documents.Document{}, documents.Caller{}, sessions.Session{}, err
	}
	d, err := a.documents.Get(r.Context(), id)
	if err != nil {
		return documents.Document{}, documents.Caller{}, sessions.Session{}, err
	}
	c, sess, err := a.caller(r, d.SessionID, action)
	if err != nil {
		return documents.Document{}, documents.Caller{}, sessions.Session{}, err
	}
	if !documents.Visible(c, d) {
		return documents.Document{}, documents.Caller{}, sessions.Session{}, fault.NotFound
	}
	return d, c, sess, nil
}

// viewable loads a document for reading (its metadata and content): one
// the caller's role shows them, or one presented to the main room while the
// caller is there to see it. Presenting a document is permission for
// everyone in the main room to see it while it is shown — its newest
// version only, and nothing after the presentation ends. This is the one
// place that permission is decided; presented reports that it was.
func (a *API) viewable(r *http.Request) (d documents.Document, presented bool, err error) {
	d, _, _, err = a.document(r, access.SeeDocuments)
	if err == nil {
		return d, false, nil
	}
	if !errors.Is(err, fault.NotFound) && !errors.Is(err, fault.Forbidden) {
		return documents.Document{}, false, err
	}
	p := principal(r.Context()).Participant
	id, idErr := pathID(r, "id")
	if p == nil || idErr != nil {
		return documents.Document{}, false, err
	}
	shown, getErr := a.documents.Get(r.Context(), id)
	if getErr != nil || shown.SessionID != p.SessionID || !a.sessions.PresentedTo(shown.SessionID, p.ID, shown.ID) {
		// Not shown to the caller: the answer their role gets.
		return documents.Document{}, false, err
	}
	return shown, true, nil
}

func (a *API) handleGetDocument(w http.ResponseWriter, r *http.Request) error {
	d, presented, err := a.viewable(r)
	if err != nil {
		return err
	}
	if presented {
		// The presented version only: not the history.
		d.Versions = nil
	}
	WriteJSON(w, http.StatusOK, d)
	return nil
}

func (a *API) handleDocumentContent(w http.ResponseWriter, r *http.Request) error {
	d, presented, err := a.viewable(r)
	if err != nil {
		return err
	}
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		if version, err = strconv.Atoi(v); err != nil || version < 1 {
			return BadRequest("bad_query", "version=%q: want a version number", v)
		}
	}
	if presented && version != 0 && version != d.Version {
		return fault.NotFound
	}
	rd, ver, err := a.documents.Open(r.Context(), d, version)
	if err != nil {
		return err
	}
	defer rd.Close()
	disposition := "attachment"
	if r.URL.Query().Get("inline") == "1" || r.URL.Query().Get("inline") == "true" {
		disposition = "inline"
	}
	h := w.Header()
	h.Set("Content-Type", d.ContentType)
	h.Set("ETag", `"`+ver.SHA256+`"`)
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": d.Name}))
	h.Set("X-Content-Type-Options", "nosniff")
	// Uploaded content is never allowed to run as part of Chamber's origin.
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, no-cache")
	http.ServeContent(w, r, "", ver.CreatedAt, rd)
	return nil
}

func (a *API) handleLabelDocument(w http.ResponseWriter, r *http.Request) error {
	d, c, sess, err := a.document(r, access.LabelExhibit)
	if err != nil {
		return err
	}
	var in documents.ExhibitChange
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if sess.State == sessions.Closed {
		return fault.New(fault.Conflict, "session is closed")
	}
	if err := a.actOpen(r.Context(), sess, "labelling"); err != nil {
		return err
	}
	d, err = a.documents.Label(r.Context(), c, docSession(sess), d.ID, in)
	return reply(w, http.StatusOK, d, err)
}

func (a *API) handleSign(w http.ResponseWriter, r *http.Request) error {
	d, c, sess, err := a.document(r, access.Sign)
	if err != nil {
		return err
	}
	var in documents.SignRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	in.Credential = signingCredential(r)
	if sess.State == sessions.Closed {
		return fault.New(fault.Conflict, "session is closed")
	}
	act := a.isAct(sess)
	var hook documents.SignHook
	if act {
		if err := a.acts.BeforeSign(r.Context(), c, sess.ID, d.ID); err != nil {
			return err
		}
		// A principal's certificate carries the name on their verified
		// identity document.
		if c.Role == access.Principal {
			if name, err := a.acts.VerifiedIdentity(r.Context(), sess.ID, c.ParticipantID); err == nil && name != "" {
				c.Name = name
			}
		}
		// The act's signatories and state are recorded in the signature's
		// own transaction.
		if hook, err = a.acts.SignHook(r.Context(), c, sess.ID); err != nil {
			return err
		}
	}
	doc, rec, err := a.documents.Sign(r.Context(), c, docSession(sess), d.ID, in, hook)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusCreated, SignResponse{Document: doc, Signature: rec})
	return nil
}

// signingCredential is what documents weigh to confirm a signature: a
// console sign-in and when its person last authenticated at the provider,
// or an API token.
func signingCredential(r *http.Request) documents.Credential {
	if b, ok := browserSession(r.Context()); ok {
		return documents.Credential{Console: true, AuthTime: b.AuthTime}
	}
	return documents.Credential{APIToken: principal(r.Context()).Credential.Kind == sessions.ByAPIToken}
}
