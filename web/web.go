// Package web is Chamber's browser client: the staff console, the join
// page and room, the public verification page, and the static files they
// load, all embedded in the binary with go:embed. The pages are plain ES
// modules with no build step; pdf.js is vendored (see vendor.lock).
//
// Package web serves files only. Everything a page does goes through the
// REST API and the signalling WebSocket, which enforce every permission;
// the browser is never trusted.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

//go:embed static
var embedded embed.FS

// Config configures the web client.
type Config struct {
	// PublicURL is the base URL browsers use (--public-url). Its host is
	// added to the Content-Security-Policy's connect-src as ws:// and
	// wss://, for browsers that do not yet treat 'self' as covering
	// WebSockets. Empty means 'self' only.
	PublicURL string
}

// Page is one route the web client serves. The API router mounts every
// page (api.Config.Mount), so pages get its logging and metrics.
type Page struct {
	// Pattern is a net/http.ServeMux pattern, e.g. "GET /join/{token}".
	Pattern string
	// Summary says what the route serves, for the OpenAPI document.
	Summary string
	// ContentType is what the route answers with.
	ContentType string
	Handler     http.Handler
}

// Web serves the browser client.
type Web struct {
	files   map[string]file // static path → its content
	headers http.Header
}

// file is one embedded file, read once by New.
type file struct {
	etag string // quoted, from the SHA-256 of data
	data []byte
}

// The HTML pages Pages serves. New refuses a build that lacks one.
const (
	consolePage = "console.html"
	roomPage    = "room.html"
	verifyPage  = "verify.html"
	// playbackPage plays a session's recordings beside its journal.
	playbackPage = "playback.html"
	// reauthPage is the window a signer confirms a signature in, by
	// signing in at the identity provider again.
	reauthPage = "reauthenticate.html"
)

// ErrConfig reports an unusable Config.
var ErrConfig = errors.New("web: invalid config")

// New reads the embedded files and prepares the security headers. A page
// missing from the embedded files is a build defect, reported here.
func New(cfg Config) (*Web, error) {
	static, err := fs.Sub(embedded, "static")
	if err != nil {
		return nil, fmt.Errorf("web: embedded files: %w", err)
	}
	csp, err := ContentSecurityPolicy(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	w := &Web{files: map[string]file{}, headers: securityHeaders(csp)}
	err = fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		w.files[p] = file{etag: `"` + hex.EncodeToString(sum[:16]) + `"`, data: b}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: embedded files: %w", err)
	}
	vocab, err := vocabModule()
	if err != nil {
		return nil, err
	}
	if _, ok := w.files[vocabPath]; ok {
		return nil, fmt.Errorf("web: embedded files: %s is generated and must not be in static/", vocabPath)
	}
	sum := sha256.Sum256(vocab)
	w.files[vocabPath] = file{etag: `"` + hex.EncodeToString(sum[:16]) + `"`, data: vocab}
	for _, name := range []string{consolePage, roomPage, verifyPage, playbackPage, reauthPage} {
		if _, ok := w.files[name]; !ok {
			return nil, fmt.Errorf("web: embedded files: page %s is missing from this build", name)
		}
	}
	return w, nil
}

// Pages returns every route of the web client.
func (w *Web) Pages() []Page {
	html := "text/html"
	return []Page{
		{Pattern: "GET /{$}", Summary: "Staff console: sign in, sessions, calendar, assignments and invitations, journal and documents", ContentType: html, Handler: w.page(consolePage)},
		{Pattern: "GET /room/{id}", Summary: "A staff member's room, entered from the console as themselves", ContentType: html, Handler: w.page(roomPage)},
		{Pattern: "GET /join/{token}", Summary: "Join page and room for an invitation link", ContentType: html, Handler: w.page(roomPage)},
		// The page moves the token from the address bar into sessionStorage;
		// a reload then lands here.
		{Pattern: "GET /join/{$}", Summary: "Join page after the token left the address bar", ContentType: html, Handler: w.page(roomPage)},
		{Pattern: "GET /watch/{token}", Summary: "Watch a public hearing from its public link", ContentType: html, Handler: w.page(roomPage)},
		{Pattern: "GET /watch/{$}", Summary: "Watch page after the token left the address bar", ContentType: html, Handler: w.page(roomPage)},
		{Pattern: "GET /verify", Summary: "Verify the signatures of a PDF (public)", ContentType: html, Handler: w.page(verifyPage)},
		{Pattern: "GET /reauthenticate", Summary: "The window a staff member confirms a signature in: through the identity provider again, then back to tell the Sign dialog", ContentType: html, Handler: w.page(reauthPage)},
		{Pattern: "GET /playback/{id}", Summary: "A session's recordings played in sync beside its journal (see_recording)", ContentType: html, Handler: w.page(playbackPage)},
		{Pattern: "GET /static/", Summary: "The web client's embedded static files", ContentType: "application/octet-stream", Handler: w.staticHandler()},
		{Pattern: "GET /favicon.ico", Summary: "Site icon", ContentType: "image/svg+xml", Handler: w.file("img/icon.svg")},
		{Pattern: "GET /robots.txt", Summary: "Keeps crawlers away from invitation and public links", ContentType: "text/plain", Handler: w.file("robots.txt")},
	}
}

// Headers wraps h so that every response carries the web client's security
// headers (Content-Security-Policy, Referrer-Policy, …). Headers h sets
// itself win.
func (w *Web) Headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		setHeaders(rw.Header(), w.headers)
		h.ServeHTTP(rw, r)
	})
}

// apiHeaders are the security headers that make sense on JSON and other
// non-page responses: nothing in them may be framed, sniffed or leak a
// token in a Referer.
var apiHeaders = http.Header{
	"X-Content-Type-Options":       {"nosniff"},
	"Referrer-Policy":              {"no-referrer"},
	"Content-Security-Policy":      {"default-src 'none'; frame-ancestors 'none'"},
	"Cross-Origin-Resource-Policy": {"same-origin"},
}

// APIHeaders wraps an API handler with the security headers that suit
// non-page responses (nosniff, no-referrer, a CSP that forbids
// everything and framing). Headers the handler sets itself win, so a
// handler's own policy (e.g. the sandbox on document content) stays.
func APIHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		setHeaders(rw.Header(), apiHeaders)
		h.ServeHTTP(rw, r)
	})
}

func setHeaders(dst, src http.Header) {
	for k, v := range src {
		dst[k] = v
	}
}

// ContentSecurityPolicy returns the policy every page is served with: no
// inline script, nothing from another origin, WebSockets and media only
// from Chamber itself, and no framing. publicURL (may be empty) adds its
// ws:// and wss:// origins to connect-src.
func ContentSecurityPolicy(publicURL string) (string, error) {
	connect := "'self'"
	if publicURL != "" {
		u, err := url.Parse(publicURL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") ||
			strings.ContainsAny(u.Host, " ;,'\"\r\n") {
			return "", fmt.Errorf("%w: public URL %q must be http(s)://host[:port]", ErrConfig, publicURL)
		}
		if u.Scheme == "https" {
			connect += " wss://" + u.Host
		} else {
			connect += " ws://" + u.Host + " wss://" + u.Host
		}
	}
	return strings.Join([]string{
		"default-src 'self'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self' data: blob:",
		"font-src 'self' data:",
		"connect-src " + connect,
		"media-src 'self' blob: mediastream:",
		"worker-src 'self' blob:",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; "), nil
}

func securityHeaders(csp string) http.Header {
	return http.Header{
		"Content-Security-Policy":      {csp},
		"Referrer-Policy":              {"no-referrer"},
		"X-Content-Type-Options":       {"nosniff"},
		"X-Frame-Options":              {"DENY"},
		"Permissions-Policy":           {"camera=(self), microphone=(self), display-capture=(self), geolocation=(), payment=(), usb=()"},
		"Cross-Origin-Opener-Policy":   {"same-origin"},
		"Cross-Origin-Resource-Policy": {"same-origin"},
	}
}

// page serves one HTML page, which New made sure is embedded. Pages are
// never cached: a join page's URL holds a token, and a stale page could
// load stale modules.
func (w *Web) page(name string) http.Handler {
	b := w.files[name].data
	return w.Headers(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		h := rw.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		http.ServeContent(rw, r, "", time.Time{}, bytes.NewReader(b))
	}))
}

// file serves one static file at a fixed route.
func (w *Web) file(name string) http.Handler {
	return w.Headers(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.serveStatic(rw, r, name)
	}))
}

// staticHandler serves /static/…: the embedded files, revalidated by
// their SHA-256 ETag, never a directory listing.
func (w *Web) staticHandler() http.Handler {
	return w.Headers(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/static/")
		if !ok || name == "" || strings.HasSuffix(name, "/") || !fs.ValidPath(name) {
			notFound(rw)
			return
		}
		w.serveStatic(rw, r, name)
	}))
}

func (w *Web) serveStatic(rw http.ResponseWriter, r *http.Request, name string) {
	f, ok := w.files[name]
	if !ok || strings.HasSuffix(name, ".html") {
		notFound(rw)
		return
	}
	h := rw.Header()
	h.Set("Content-Type", contentType(name))
	h.Set("ETag", f.etag)
	// Revalidate every time: a new binary must never run with old modules,
	// and the ETag makes revalidation a 304.
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(rw, r, "", time.Time{}, bytes.NewReader(f.data))
}

func notFound(rw http.ResponseWriter) {
	rw.Header().Set("Content-Type", "application/json; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(http.StatusNotFound)
	_, _ = rw.Write([]byte(`{"error":{"code":"not_found","message":"no such file"}}` + "\n"))
}

// contentTypes fixes the types whose answer must not depend on the
// host's MIME tables: module scripts are refused unless served as
// JavaScript.
var contentTypes = map[string]string{
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".json": "application/json",
	".txt":  "text/plain; charset=utf-8",
	".pfb":  "application/octet-stream",
	".ttf":  "font/ttf",
}

func contentType(name string) string {
	ext := path.Ext(name)
	if ct, ok := contentTypes[ext]; ok {
		return ct
	}
	if ct := mime.TypeByExtension(ext); ct != "" {
		return ct
	}
	return "application/octet-stream"
}
