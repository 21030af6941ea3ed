package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/recording"
)

// Playback: the routes the playback page (/playback/{session}) reads. The
// list and each recording with its manifest take the bearer token, like
// every API call; the files — media, manifest, composite — are what a
// <video> element fetches, with byte ranges, and a <video> element sends
// no Authorization header. So the page first trades its token for a
// playback grant (POST …/playback): a short-lived cookie, HMAC-signed by
// this process, that names the session and the holder, is HttpOnly,
// SameSite=Strict and sent only to the session's recordings path. Either
// credential is checked for see_recording at issue (the grant) or at every
// request (the token); the grant lasts playbackGrantTTL and the page
// renews it while it is open. Files are served only when the evidence
// catalog names them under the recording's key prefix, with the SHA-256
// the catalog holds (ETag), never a listing of the store.

const (
	playbackCookie   = "chamber_playback"
	playbackGrantTTL = 10 * time.Minute
	// maxPlaybackStreams bounds the file responses in flight; beyond it a
	// request is answered 503 with Retry-After.
	maxPlaybackStreams = 64
	// playbackStall is how long a response may make no progress (a reader
	// that stopped reading) before its connection is cut; the player asks
	// again for what it needs.
	playbackStall = 2 * time.Minute
)

// playback holds the grant key and the bound on file responses.
type playback struct {
	key     []byte
	streams chan struct{}
	now     func() time.Time
}

func newPlayback() *playback {
	key := make([]byte, 32)
	rand.Read(key) // never fails: crypto/rand crashes the program first
	return &playback{key: key, streams: make(chan struct{}, maxPlaybackStreams), now: time.Now}
}

// grant is what a playback cookie says.
type grant struct {
	Session uuid.UUID `json:"s"`
	Actor   string    `json:"a"`
	Expires int64     `json:"e"` // Unix seconds
}

func (p *playback) sign(g grant) string {
	body, _ := json.Marshal(g)
	mac := hmac.New(sha256.New, p.key)
	mac.Write(body)
	return base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// verify returns the grant a cookie value carries if it is this
// process's, unexpired, and for session.
func (p *playback) verify(value string, session uuid.UUID) (grant, bool) {
	b64, sig, ok := strings.Cut(value, ".")
	if !ok || len(value) > 1024 {
		return grant{}, false
	}
	body, err1 := base64.RawURLEncoding.DecodeString(b64)
	got, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil {
		return grant{}, false
	}
	mac := hmac.New(sha256.New, p.key)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return grant{}, false
	}
	var g grant
	if json.Unmarshal(body, &g) != nil || g.Session != session || p.now().Unix() >= g.Expires {
		return grant{}, false
	}
	return g, true
}

// PlaybackGrant is the answer to POST …/playback.
type PlaybackGrant struct {
	ExpiresAt time.Time `json:"expires_at"`
	// RenewAfter is when the page should ask again.
	RenewAfter time.Time `json:"renew_after"`
}

func (a *API) playbackRoutes() {
	tags := []string{"media"}
	a.route("GET /api/v1/sessions/{id}/recordings", Op{Summary: "The session's recordings that are part of the record, with the state of each one's composite (see_recording)",
		Tags: tags, Auth: "bearer", Response: []recording.Recorded{}, Errors: withOutages(authErrors)}, a.auth(a.handleRecordings))
	a.route("GET /api/v1/sessions/{id}/recordings/{rid}", Op{Summary: "One recording with its manifest (files and their offsets, who spoke when), read from the evidence store and checked against the record (see_recording)",
		Tags: tags, Auth: "bearer", Response: recording.Recorded{}, Errors: withOutages(authErrors)}, a.auth(a.handleRecordingManifest))
	a.route("POST /api/v1/sessions/{id}/playback", Op{Summary: "A playback grant: a short-lived HttpOnly cookie that lets the browser's video elements fetch the session's recording files (see_recording); renew it before it expires",
		Tags: tags, Auth: "bearer", Response: PlaybackGrant{}, Errors: authErrors}, a.auth(a.handlePlaybackGrant))
	a.route("GET /api/v1/sessions/{id}/recordings/{rid}/files/{name}", Op{Summary: "A recording's file, manifest or composite, with byte ranges (ETag = SHA-256); only objects the evidence catalog names. Bearer token or playback grant",
		Tags: tags, Auth: "bearer", RawResponse: "video/webm", Errors: withOutages([]int{401, 403, 404, 416, 429})}, a.h(a.handleRecordingFile))
}

// mayPlay checks that the bearer's caller may see the session's recordings.
func (a *API) mayPlay(r *http.Request) (uuid.UUID, error) {
	sid, _, err := ids(r, "")
	if err != nil {
		return uuid.Nil, err
	}
	_, _, err = a.sessions.Authorize(r.Context(), principal(r.Context()), sid, access.SeeRecording)
	return sid, err
}

func (a *API) handleRecordings(w http.ResponseWriter, r *http.Request) error {
	sid, err := a.mayPlay(r)
	if err != nil {
		return err
	}
	list, err := a.recording.Recordings(r.Context(), sid)
	return reply(w, http.StatusOK, list, err)
}

func (a *API) handleRecordingManifest(w http.ResponseWriter, r *http.Request) error {
	sid, err := a.mayPlay(r)
	if err != nil {
		return err
	}
	rid, err := pathID(r, "rid")
	if err != nil {
		return err
	}
	rec, err := a.recording.Recording(r.Context(), sid, rid)
	return reply(w, http.StatusOK, rec, err)
}

func (a *API) handlePlaybackGrant(w http.ResponseWriter, r *http.Request) error {
	sid, err := a.mayPlay(r)
	if err != nil {
		return err
	}
	now := a.playback.now()
	exp := now.Add(playbackGrantTTL).Truncate(time.Second)
	http.SetCookie(w, &http.Cookie{
		Name:     playbackCookie,
		Value:    a.playback.sign(grant{Session: sid, Actor: principal(r.Context()).Actor(), Expires: exp.Unix()}),
		Path:     "/api/v1/sessions/" + sid.String() + "/recordings/",
		Expires:  exp,
		HttpOnly: true,
		Secure:   r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
		SameSite: http.SameSiteStrictMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, PlaybackGrant{ExpiresAt: exp.UTC(), RenewAfter: now.Add(playbackGrantTTL * 2 / 5).UTC()})
	return nil
}

// playbackCaller checks the credential of a file request: a bearer token
// whose caller may see the session's recordings, or this session's
// playback grant. A failure counts against the client like any failed
// authentication.
func (a *API) playbackCaller(w http.ResponseWriter, r *http.Request, sid uuid.UUID) (ok bool) {
	if bearer(r) != "" {
		served := false
		a.withAuth(func(w http.ResponseWriter, r *http.Request) {
			if _, _, err := a.sessions.Authorize(r.Context(), principal(r.Context()), sid, access.SeeRecording); err != nil {
				a.fail(w, r, err)
				return
			}
			served = true
		})(w, r)
		return served
	}
	addr := a.clients.Of(r)
	if blocked, wait := a.authFailures.Blocked(addr); blocked {
		a.fail(w, r, tooMany(wait, "failed authentications"))
		return false
	}
	if c, err := r.Cookie(playbackCookie); err == nil {
		if _, ok := a.playback.verify(c.Value, sid); ok {
			return true
		}
	}
	a.authFailures.Failed(addr)
	w.Header().Set("WWW-Authenticate", `Bearer realm="chamber"`)
	Error(w, http.StatusUnauthorized, "unauthenticated", "a bearer token or a playback grant (POST /api/v1/sessions/{id}/playback) is required")
	return false
}

func (a *API) handleRecordingFile(w http.ResponseWriter, r *http.Request) error {
	sid, rid, err := ids(r, "rid")
	if err != nil {
		return err
	}
	if !a.playbackCaller(w, r, sid) {
		return nil
	}
	select {
	case a.playback.streams <- struct{}{}:
		defer func() { <-a.playback.streams }()
	default:
		return &fault.Error{Kind: fault.Unavailable, Message: "too many recordings are being played; retry shortly", RetryAfter: 5 * time.Second}
	}
	rd, obj, err := a.recording.Open(r.Context(), sid, rid, r.PathValue("name"))
	if err != nil {
		return err
	}
	defer rd.Close()
	h := w.Header()
	ct := obj.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("ETag", `"`+obj.SHA256+`"`)
	h.Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": r.PathValue("name")}))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, no-cache")
	http.ServeContent(&stallGuard{ResponseWriter: w, rc: http.NewResponseController(w)}, r, "", obj.Created, rd)
	return nil
}

// stallGuard cuts a response that makes no progress for playbackStall: each
// write pushes the connection's write deadline on.
type stallGuard struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (s *stallGuard) Write(p []byte) (int, error) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(playbackStall))
	return s.ResponseWriter.Write(p)
}

func (s *stallGuard) Unwrap() http.ResponseWriter { return s.ResponseWriter }
