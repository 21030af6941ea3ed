package api

import (
	"mime"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/recording"
)

// Playback: the routes the playback page (/playback/{session}) reads — the
// list, each recording with its manifest, and the files (media, manifest,
// composite) that its <video> elements fetch with byte ranges. Every one
// takes the caller's credential like any API call: the console's sign-in
// cookie (a <video> element sends it: the page is same-origin and the
// cookie SameSite=Strict, Path=/; the same-origin check of cookie
// requests applies) or an API token's bearer header (automation), and is
// checked for see_recording at every request, so that a revoked staff
// member or a withdrawn assignment stops playback at the next range the
// player asks for. Files are served only when the evidence catalog names
// them under the recording's key prefix, with the SHA-256 the catalog
// holds (ETag), never a listing of the store.

const (
	// maxPlaybackStreams bounds the file responses in flight; beyond it a
	// request is answered 503 with Retry-After.
	maxPlaybackStreams = 64
	// playbackStall is how long a response may make no progress (a reader
	// that stopped reading) before its connection is cut; the player asks
	// again for what it needs.
	playbackStall = 2 * time.Minute
)

// playback bounds the file responses in flight.
type playback struct {
	streams chan struct{}
}

func newPlayback() *playback {
	return &playback{streams: make(chan struct{}, maxPlaybackStreams)}
}

// acquire takes one of the file responses in flight, or says to retry.
func (p *playback) acquire() (release func(), err error) {
	select {
	case p.streams <- struct{}{}:
		return func() { <-p.streams }, nil
	default:
		return nil, &fault.Error{Kind: fault.Unavailable, Message: "too many recordings are being played; retry shortly", RetryAfter: 5 * time.Second}
	}
}

func (a *API) playbackRoutes() {
	tags := []string{"media"}
	a.route("GET /api/v1/sessions/{id}/recordings", Op{Summary: "The session's recordings that are part of the record, with the state of each one's composite (see_recording)",
		Tags: tags, Auth: "bearer", Response: []recording.Recorded{}, Errors: withOutages(authErrors)}, a.auth(a.handleRecordings))
	a.route("GET /api/v1/sessions/{id}/recordings/{rid}", Op{Summary: "One recording with its manifest (files and their offsets, who spoke when), read from the evidence store and checked against the record (see_recording)",
		Tags: tags, Auth: "bearer", Response: recording.Recorded{}, Errors: withOutages(authErrors)}, a.auth(a.handleRecordingManifest))
	a.route("GET /api/v1/sessions/{id}/recordings/{rid}/files/{name}", Op{Summary: "A recording's file, manifest or composite, with byte ranges (ETag = SHA-256); only objects the evidence catalog names (see_recording)",
		Tags: tags, Auth: "bearer", RawResponse: "video/webm", Errors: withOutages([]int{401, 403, 404, 416, 429})}, a.auth(a.handleRecordingFile))
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

func (a *API) handleRecordingFile(w http.ResponseWriter, r *http.Request) error {
	sid, err := a.mayPlay(r)
	if err != nil {
		return err
	}
	rid, err := pathID(r, "rid")
	if err != nil {
		return err
	}
	release, err := a.playback.acquire()
	if err != nil {
		return err
	}
	defer release()
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
