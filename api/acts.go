package api

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/bundle"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/recording"
	"github.com/chamber-court/chamber/sessions"
)

// SessionView is a session as GET /api/v1/sessions/{id} shows it: for a
// notarial act, with the act's state and number; with the recording state.
type SessionView struct {
	sessions.Session
	Act       *acts.Act        `json:"act,omitempty"`
	Recording *recording.State `json:"recording,omitempty"`
}

// isAct reports whether a session is a notarial act this API runs: only
// notarisation sessions have one, and only when the act service is set up.
func (a *API) isAct(s sessions.Session) bool {
	return a.acts != nil && s.Kind == access.Notarisation
}

// view adds the act and the recording state to a session.
func (a *API) view(ctx context.Context, s sessions.Session) (SessionView, error) {
	v := SessionView{Session: s}
	if a.isAct(s) {
		act, err := a.acts.Get(ctx, s.ID)
		if err != nil {
			return SessionView{}, err
		}
		v.Act = &act
	}
	if a.recording != nil {
		st := a.recording.State(s.ID)
		v.Recording = &st
	}
	return v, nil
}

func (a *API) actRoutes() {
	tags := []string{"notarial acts"}
	a.route("POST /api/v1/sessions/{id}/identity-checks", Op{Summary: "Open an identity check: the officer's typed or scanned MRZ (ICAO 9303 TD1/TD2/TD3, lines joined by \\n) is parsed and every check digit validated",
		Tags: tags, Auth: "bearer", Request: acts.NewCheck{}, Response: acts.Check{}, Status: 201, Errors: bodyErrors}, a.auth(a.handleStartCheck))
	a.route("GET /api/v1/sessions/{id}/identity-checks", Op{Summary: "The session's identity checks", Tags: tags, Auth: "bearer",
		Response: []acts.Check{}, Errors: authErrors}, a.auth(a.handleListChecks))
	a.route("POST /api/v1/sessions/{id}/identity-checks/{check}/stills", Op{Summary: "Store the principal's face still or the document photo (JPEG or PNG body) as evidence",
		Tags: tags, Auth: "bearer", RawBody: []string{"image/jpeg", "image/png"}, Query: []Param{{Name: "kind", Required: true, Description: "face or document"}},
		Response: acts.Still{}, Status: 201, Errors: []int{401, 403, 404, 409, 413, 415, 422, 429, 503, 507}}, a.auth(a.handleStill))
	a.route("POST /api/v1/sessions/{id}/identity-checks/{check}/outcome", Op{Summary: "The officer's decision: verified, or refused with a reason (embassy officer only)",
		Tags: tags, Auth: "bearer", Request: acts.Outcome{}, Response: acts.Check{}, Errors: bodyErrors}, a.auth(a.handleOutcome))
	a.route("PUT /api/v1/sessions/{id}/act/document", Op{Summary: "Designate the act's document (notary): the PDF every principal and then the notary sign, and the only one signable in the act; fixed once anyone has signed",
		Tags: tags, Auth: "bearer", Request: acts.Designation{}, Response: acts.Act{}, Errors: withOutages(bodyErrors)}, a.auth(a.handleDesignate))
	a.route("POST /api/v1/sessions/{id}/seal", Op{Summary: "Seal the notarised act: it gets the next notarial number (YYYY/NNNNNN) and its register entry",
		Tags: tags, Auth: "bearer", Request: acts.SealRequest{}, Response: SealResponse{}, Errors: withOutages(bodyErrors)}, a.auth(a.handleSeal))
	a.route("POST /api/v1/sessions/{id}/legal-hold", Op{Summary: "Place or lift a legal hold on all of the session's evidence",
		Tags: tags, Auth: "bearer", Request: legalHoldRequest{}, Response: legalHoldResponse{}, Errors: bodyErrors}, a.auth(a.handleLegalHold))
	a.route("GET /api/v1/register", Op{Summary: "The notarial register (notary and admin); ?format=csv exports it",
		Tags: tags, Auth: "bearer", Response: []acts.RegisterEntry{}, Query: []Param{{Name: "from", Description: "recorded at or after (RFC 3339 or date)"},
			{Name: "to", Description: "recorded before"}, {Name: "format", Description: "json (default) or csv"}}, Errors: []int{400, 401, 403, 429}}, a.auth(a.handleRegister))
	a.route("POST /api/v1/register/{entry}/corrections", Op{Summary: "Correct a register entry: a new entry referencing the old, which never changes",
		Tags: tags, Auth: "bearer", Request: acts.Correction{}, Response: acts.RegisterEntry{}, Status: 201, Errors: bodyErrors}, a.auth(a.handleCorrect))
}

func (a *API) actCaller(r *http.Request, sid uuid.UUID, action access.Action) (acts.Caller, sessions.Session, error) {
	c, sess, err := a.caller(r, sid, action)
	if err != nil {
		return acts.Caller{}, sessions.Session{}, err
	}
	if sess.Kind != access.Notarisation {
		return acts.Caller{}, sessions.Session{}, fault.New(fault.Conflict, "only notarial acts have identity checks, seals and a register entry")
	}
	return c, sess, nil
}

func (a *API) handleStartCheck(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	c, _, err := a.actCaller(r, sid, access.IdentityCheck)
	if err != nil {
		return err
	}
	var in acts.NewCheck
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	target, err := a.sessions.Participant(r.Context(), principal(r.Context()), sid, in.ParticipantID)
	if err != nil {
		if errors.Is(err, fault.NotFound) {
			err = fault.Invalidf("participant_id", "no such participant in this session")
		}
		return err
	}
	if target.Role != access.Principal {
		return fault.Invalidf("participant_id", "%s is a %s, not a principal", target.Name, target.Role)
	}
	ch, err := a.acts.StartCheck(r.Context(), c, sid, acts.Principal{ID: target.ID, Name: target.Name}, in)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusCreated, ch)
	return nil
}

func (a *API) handleListChecks(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	// Those who see the act's documents may list identity checks, and
	// see those acts.MaySeeCheck lets them: a principal sees their own.
	c, _, err := a.actCaller(r, sid, access.SeeAllDocs)
	if err != nil {
		return err
	}
	all, err := a.acts.Checks(r.Context(), sid)
	if err != nil {
		return err
	}
	list := []acts.Check{}
	for _, ch := range all {
		if acts.MaySeeCheck(c.Role, c.ParticipantID, ch.ParticipantID) {
			list = append(list, ch)
		}
	}
	WriteJSON(w, http.StatusOK, list)
	return nil
}

func (a *API) handleStill(w http.ResponseWriter, r *http.Request) error {
	sid, cid, err := ids(r, "check")
	if err != nil {
		return err
	}
	c, _, err := a.actCaller(r, sid, access.IdentityCheck)
	if err != nil {
		return err
	}
	// No http.MaxBytesReader here: AddStill reads at most acts.Config.MaxStill
	// and answers ErrTooLarge (413); a second, fixed limit would disagree
	// with a configured one and surface as a 500.
	st, err := a.acts.AddStill(r.Context(), c, sid, cid, r.URL.Query().Get("kind"), r.Body)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusCreated, st)
	return nil
}

func (a *API) handleOutcome(w http.ResponseWriter, r *http.Request) error {
	sid, cid, err := ids(r, "check")
	if err != nil {
		return err
	}
	c, _, err := a.actCaller(r, sid, access.IdentityCheck)
	if err != nil {
		return err
	}
	var in acts.Outcome
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	ch, _, err := a.acts.Decide(r.Context(), c, sid, cid, in)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, ch)
	return nil
}

func (a *API) handleDesignate(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	c, sess, err := a.actCaller(r, sid, access.Seal)
	if err != nil {
		return err
	}
	var in acts.Designation
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if sess.State == sessions.Closed {
		return fault.New(fault.Conflict, "session is closed")
	}
	d, err := a.documents.Get(r.Context(), in.DocumentID)
	if errors.Is(err, fault.NotFound) || (err == nil && d.SessionID != sid) {
		return fault.Invalidf("document_id", "no such document in this session")
	}
	if err != nil {
		return err
	}
	if d.ContentType != documents.TypePDF {
		return fault.Invalidf("document_id", "the act's document must be a PDF")
	}
	last := d.Versions[len(d.Versions)-1]
	act, err := a.acts.Designate(r.Context(), c, sid, acts.FinalDocument{ID: d.ID, Name: d.Name, Version: last.Version, SHA256: last.SHA256})
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, act)
	return nil
}

// SealResponse is a sealed act with its register entry.
type SealResponse struct {
	Act   acts.Act           `json:"act"`
	Entry acts.RegisterEntry `json:"register_entry"`
}

func (a *API) handleSeal(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	c, sess, err := a.actCaller(r, sid, access.Seal)
	if err != nil {
		return err
	}
	var in acts.SealRequest
	if r.ContentLength != 0 {
		if err := DecodeJSON(w, r, &in); err != nil {
			return err
		}
	}
	input := acts.SealInput{ActType: sess.ActType, Title: sess.Title, Notary: c.Name, Fee: in.Fee, Description: in.Description}
	sealed, entry, err := a.acts.Seal(r.Context(), c, sid, input)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, SealResponse{Act: sealed, Entry: entry})
	return nil
}

type legalHoldRequest struct {
	On bool `json:"on"`
}

type legalHoldResponse struct {
	On      bool `json:"on"`
	Objects int  `json:"objects"`
}

func (a *API) handleLegalHold(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	c, _, err := a.caller(r, sid, access.LegalHold)
	if err != nil {
		return err
	}
	var in legalHoldRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	n, err := a.acts.LegalHold(r.Context(), c, sid, in.On)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, legalHoldResponse{On: in.On, Objects: n})
	return nil
}

func (a *API) handleRegister(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	role := roleOfPrincipal(p)
	if !access.Allowed(role, access.SeeRegister) {
		return &access.ForbiddenError{Role: role, Action: access.SeeRegister}
	}
	q := r.URL.Query()
	var f acts.RegisterFilter
	var err error
	if f.From, err = parseDay("from", q.Get("from")); err != nil {
		return err
	}
	if f.To, err = parseDay("to", q.Get("to")); err != nil {
		return err
	}
	// A notary's register is their own acts; an admin's is everyone's.
	// The filter is in SQL, so no number of acts truncates the register.
	switch {
	case p.Participant != nil:
		f.Sessions = []uuid.UUID{p.Participant.SessionID}
	case p.Staff.Role != access.Admin:
		f.CreatedBy = p.Staff.ID
	}
	entries, err := a.acts.Register(r.Context(), f)
	if err != nil {
		return err
	}
	switch q.Get("format") {
	case "", "json":
		WriteJSON(w, http.StatusOK, entries)
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="notarial-register.csv"`)
		if err := acts.WriteCSV(w, entries); err != nil {
			a.log.Error("register csv", "err", err)
		}
	default:
		return BadRequest("bad_query", "format=%q: want json or csv", q.Get("format"))
	}
	return nil
}

func (a *API) handleCorrect(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	role := roleOfPrincipal(p)
	if role != access.Notary {
		return &access.ForbiddenError{Role: role, Action: access.SeeRegister}
	}
	id, err := pathID(r, "entry")
	if err != nil {
		return err
	}
	var in acts.Correction
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	// An unknown entry and another notary's answer the same "not found".
	e, err := a.acts.Entry(r.Context(), id)
	if err != nil {
		return err
	}
	// Only the notary of that act corrects its entry.
	if _, _, err := a.sessions.Authorize(r.Context(), p, e.SessionID, access.Seal); err != nil {
		return err
	}
	corrected, err := a.acts.Correct(r.Context(), acts.Caller{Actor: p.Actor(), Name: p.Name(), Role: role}, id, in)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusCreated, corrected)
	return nil
}

func (a *API) recordingRoutes() {
	a.route("POST /api/v1/sessions/{id}/recording", Op{Summary: "Start or stop recording the main room (presiding role and clerk); everyone is told at once. A stop answers 202 with storage_pending: true when the recording must wait for the evidence store or the database; the server stores it when they are back",
		Tags: []string{"media"}, Auth: "bearer", Request: recordingRequest{}, Response: recording.Stopped{}, Errors: withOutages(bodyErrors)}, a.auth(a.handleRecording))
}

type recordingRequest struct {
	Action string `json:"action"` // start or stop
}

func (a *API) handleRecording(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	c, sess, err := a.caller(r, sid, access.Record)
	if err != nil {
		return err
	}
	var in recordingRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	switch in.Action {
	case "start":
		if sess.State == sessions.Closed {
			return fault.New(fault.Conflict, "session is closed")
		}
		if err := a.actOpen(r.Context(), sess, "recording"); err != nil {
			return err
		}
		st, err := a.recording.Start(r.Context(), sid, c.Actor)
		if errors.Is(err, recording.ErrRecording) {
			return fault.New(fault.Conflict, "recording is already running")
		}
		if err != nil {
			return err
		}
		WriteJSON(w, http.StatusOK, recording.Stopped{State: st})
	case "stop":
		out, err := a.recording.Stop(r.Context(), sid, c.Actor)
		if errors.Is(err, recording.ErrNotRecording) {
			return fault.New(fault.Conflict, "no recording is running")
		}
		if err != nil {
			return err
		}
		// Stopped either way; 202 says it is not stored yet (the store or
		// the database is down) and will be, by the server, unasked.
		status := http.StatusOK
		if out.StoragePending {
			status = http.StatusAccepted
		}
		WriteJSON(w, status, out)
	default:
		return fault.Invalidf("action", `must be "start" or "stop"`)
	}
	return nil
}

func (a *API) bundleRoutes() {
	a.route("GET /api/v1/sessions/{id}/bundle", Op{Summary: "The session's evidence bundle: every artefact, the journal with its timestamps, and a signed, timestamped manifest (verify offline with chamber bundle verify)",
		Tags: []string{"evidence"}, Auth: "bearer", RawResponse: "application/zip", Errors: withOutages(authErrors)}, a.auth(a.handleBundle))
}

func (a *API) handleBundle(w http.ResponseWriter, r *http.Request) error {
	sid, _, err := ids(r, "")
	if err != nil {
		return err
	}
	c, sess, err := a.caller(r, sid, access.Bundle)
	if err != nil {
		return err
	}
	desc, err := a.describe(r.Context(), sess)
	if err != nil {
		return err
	}
	// Built into a temporary file first, so a failure half-way is an error
	// response rather than a truncated zip that looks like a download.
	f, err := os.CreateTemp(a.tempDir, "chamber-bundle-*.zip")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := bundle.Build(r.Context(), f, a.bundle, sid, desc, c.Actor); err != nil {
		return err
	}
	size, _ := f.Seek(0, 1)
	f.Seek(0, 0)
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="chamber-`+sid.String()+`.zip"`)
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

// describe is session.json of a bundle.
func (a *API) describe(ctx context.Context, s sessions.Session) (any, error) {
	v, err := a.view(ctx, s)
	if err != nil {
		return nil, err
	}
	ps, err := a.sessions.ParticipantsOf(ctx, s.ID)
	if err != nil {
		return nil, err
	}
	docs, err := a.documents.List(ctx, documents.Caller{Role: access.Admin}, s.ID)
	if err != nil {
		return nil, err
	}
	for i := range docs {
		full, err := a.documents.Get(ctx, docs[i].ID)
		if err != nil {
			return nil, err
		}
		docs[i] = full
	}
	out := map[string]any{"session": v, "participants": ps, "documents": docs}
	if a.isAct(s) {
		checks, err := a.acts.Checks(ctx, s.ID)
		if err != nil {
			return nil, err
		}
		out["identity_checks"] = checks
	}
	return out, nil
}
