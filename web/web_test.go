package web_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/web"
)

// mux mounts the pages the way the API router does.
func mux(t *testing.T) *http.ServeMux {
	t.Helper()
	w, err := web.New(web.Config{PublicURL: "https://court.example"})
	if err != nil {
		t.Fatal(err)
	}
	m := http.NewServeMux()
	for _, p := range w.Pages() {
		if p.Summary == "" || p.ContentType == "" || p.Handler == nil {
			t.Fatalf("page %s is not fully described", p.Pattern)
		}
		m.Handle(p.Pattern, p.Handler)
	}
	return m
}

func get(t *testing.T, h http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestPages(t *testing.T) {
	m := mux(t)
	tests := []struct {
		path, ctype, module string
		status              int
	}{
		{"/", "text/html", "/static/js/console.js", 200},
		{"/join/chi_abcdef", "text/html", "/static/js/room-page.js", 200},
		{"/join/", "text/html", "/static/js/room-page.js", 200},
		{"/room/8d3c8c3e-6b2c-4c47-9d0c-3b8f1b2f4a11", "text/html", "/static/js/room-page.js", 200},
		{"/watch/chp_abcdef", "text/html", "/static/js/room-page.js", 200},
		{"/watch/", "text/html", "/static/js/room-page.js", 200},
		{"/verify", "text/html", "/static/js/verify.js", 200},
		{"/playback/0190a7a4-7b7e-7c00-8000-000000000000", "text/html", "/static/js/playback.js", 200},
		{"/static/css/playback.css", "text/css", "", 200},
		{"/static/js/room.js", "text/javascript", "", 200},
		{"/static/vendor/pdfjs/pdf.min.mjs", "text/javascript", "", 200},
		{"/static/css/app.css", "text/css", "", 200},
		{"/favicon.ico", "image/svg+xml", "", 200},
		{"/robots.txt", "text/plain", "", 200},
		{"/static/", "application/json", "", 404},
		{"/static/js/", "application/json", "", 404},
		{"/static/room.html", "application/json", "", 404},
		{"/static/nope.js", "application/json", "", 404},
		{"/static/../web.go", "", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			rec := get(t, m, tc.path)
			if tc.status == 0 {
				if rec.Code == 200 {
					t.Fatalf("%s served a file outside static/", tc.path)
				}
				return
			}
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
				t.Fatalf("Content-Type %q, want %s", ct, tc.ctype)
			}
			if tc.module != "" && !strings.Contains(rec.Body.String(), `src="`+tc.module+`"`) {
				t.Fatalf("page does not load %s", tc.module)
			}
			if tc.status == 200 {
				checkSecurityHeaders(t, rec.Header())
			}
		})
	}
}

func checkSecurityHeaders(t *testing.T, h http.Header) {
	t.Helper()
	want := map[string]string{
		"Referrer-Policy":            "no-referrer",
		"X-Content-Type-Options":     "nosniff",
		"Cross-Origin-Opener-Policy": "same-origin",
		"X-Frame-Options":            "DENY",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	pp := h.Get("Permissions-Policy")
	for _, p := range []string{"camera=(self)", "microphone=(self)", "display-capture=(self)"} {
		if !strings.Contains(pp, p) {
			t.Errorf("Permissions-Policy %q lacks %s", pp, p)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'",
		"media-src 'self' blob: mediastream:", "img-src 'self' data: blob:", "worker-src 'self' blob:", "connect-src 'self' wss://court.example"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "http:", "*"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP %q allows %q", csp, bad)
		}
	}
}

func TestPagesAreNotCached(t *testing.T) {
	m := mux(t)
	for _, p := range []string{"/", "/join/chi_x", "/watch/chp_x", "/verify", "/room/8d3c8c3e-6b2c-4c47-9d0c-3b8f1b2f4a11",
		"/playback/0190a7a4-7b7e-7c00-8000-000000000000"} {
		if cc := get(t, m, p).Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store (join URLs carry tokens)", p, cc)
		}
	}
}

func TestStaticRevalidation(t *testing.T) {
	m := mux(t)
	first := get(t, m, "/static/js/signal.js")
	etag := first.Header().Get("ETag")
	if etag == "" || first.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, first.Header().Get("Cache-Control"))
	}
	if again := get(t, m, "/static/js/signal.js", "If-None-Match", etag); again.Code != http.StatusNotModified || again.Body.Len() != 0 {
		t.Fatalf("revalidation: %d with %d bytes", again.Code, again.Body.Len())
	}
	if other := get(t, m, "/static/js/room.js", "If-None-Match", etag); other.Code != 200 {
		t.Fatalf("another file matched the ETag of signal.js: %d", other.Code)
	}
}

func TestContentSecurityPolicy(t *testing.T) {
	tests := []struct {
		url, want string
		err       bool
	}{
		{"", "connect-src 'self';", false},
		{"http://localhost:8080", "connect-src 'self' ws://localhost:8080 wss://localhost:8080;", false},
		{"https://court.example", "connect-src 'self' wss://court.example;", false},
		{"ftp://x", "", true},
		{"https://", "", true},
		{"https://a.example; script-src *", "", true},
		{"::", "", true},
	}
	for _, tc := range tests {
		csp, err := web.ContentSecurityPolicy(tc.url)
		if tc.err {
			if !errors.Is(err, web.ErrConfig) {
				t.Errorf("%q: error %v, want ErrConfig", tc.url, err)
			}
			if _, err := web.New(web.Config{PublicURL: tc.url}); !errors.Is(err, web.ErrConfig) {
				t.Errorf("New(%q): error %v, want ErrConfig", tc.url, err)
			}
			continue
		}
		if err != nil || !strings.Contains(csp, tc.want) {
			t.Errorf("%q: %q, %v; want it to contain %q", tc.url, csp, err, tc.want)
		}
	}
}

func TestAPIHeaders(t *testing.T) {
	h := web.APIHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/content" {
			w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
		}
		w.WriteHeader(200)
	}))
	rec := get(t, h, "/api")
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Referrer-Policy") != "no-referrer" ||
		!strings.Contains(rec.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("headers: %v", rec.Header())
	}
	if csp := get(t, h, "/content").Header().Get("Content-Security-Policy"); csp != "sandbox; default-src 'none'" {
		t.Fatalf("the handler's own policy was overridden: %q", csp)
	}
}

// TestVendoredFiles fails when a vendored file was edited, added or
// removed without web/vendor.sh rewriting vendor.lock.
func TestVendoredFiles(t *testing.T) {
	f, err := os.Open("vendor.lock")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	locked := map[string]string{}
	sc := bufio.NewScanner(f)
	sawPackage := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "package "):
			sawPackage = true
		case strings.HasPrefix(line, "integrity "):
		default:
			sum, name, ok := strings.Cut(line, "  ")
			if !ok || len(sum) != 64 {
				t.Fatalf("vendor.lock: malformed line %q", line)
			}
			locked[name] = sum
		}
	}
	if !sawPackage || len(locked) == 0 {
		t.Fatal("vendor.lock names no package or no files")
	}
	seen := map[string]bool{}
	err = filepath.WalkDir("static/vendor", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := filepath.ToSlash(strings.TrimPrefix(p, "static/"))
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		want, ok := locked[name]
		switch {
		case !ok:
			t.Errorf("%s is vendored but not in vendor.lock", name)
		case want != hex.EncodeToString(sum[:]):
			t.Errorf("%s differs from vendor.lock: edited or stale", name)
		}
		seen[name] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range locked {
		if !seen[name] {
			t.Errorf("%s is in vendor.lock but missing", name)
		}
	}
}

// TestStrings checks that every string key the client code asks for is in
// the English catalog, so no screen shows a raw key.
func TestStrings(t *testing.T) {
	cat, err := os.ReadFile("static/js/strings/en.js")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*'([a-zA-Z0-9_.]+)':`).FindAllSubmatch(cat, -1) {
		keys[string(m[1])] = true
	}
	if len(keys) < 100 {
		t.Fatalf("the catalog has only %d keys", len(keys))
	}
	literal := regexp.MustCompile(`\bt\('([a-zA-Z0-9_.]+)'`)
	prefixed := regexp.MustCompile(`\bt\('([a-zA-Z0-9_]+\.)' \+`)
	quoted := regexp.MustCompile(`'((?:quality)\.[a-z]+)'`)
	var missing []string
	prefixes := map[string]bool{}
	files, _ := filepath.Glob("static/js/*.js")
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range literal.FindAllSubmatch(src, -1) {
			if k := string(m[1]); !strings.HasSuffix(k, ".") && !keys[k] {
				missing = append(missing, filepath.Base(f)+": "+string(m[1]))
			}
		}
		for _, m := range quoted.FindAllSubmatch(src, -1) {
			if !keys[string(m[1])] {
				missing = append(missing, filepath.Base(f)+": "+string(m[1]))
			}
		}
		for _, m := range prefixed.FindAllSubmatch(src, -1) {
			prefixes[string(m[1])] = true
		}
	}
	// Keys built from a prefix and a value the server defines.
	var roles []string
	for _, r := range access.MatrixRoles {
		roles = append(roles, string(r))
	}
	values := map[string][]string{
		"role.":            roles,
		"state.":           {"scheduled", "open", "closed"},
		"kind.":            {"hearing", "notarisation"},
		"actType.":         {"will", "contract", "power_of_attorney", "property_sale", "other"},
		"exhibit.":         {"submitted", "admitted", "rejected"},
		"act.state.":       {"draft", "identity_verified", "signed_by_principals", "notarised", "sealed"},
		"identity.status.": {"pending", "verified", "refused"},
		"identity.still.":  {"face", "document"},
		"verify.status.":   {"valid", "modified", "untrusted", "revoked", "invalid"},
		"mrz.":             {"type", "number", "issuing_state", "surname", "given_names", "nationality", "birth_date", "sex", "expiry_date"},
	}
	for p := range prefixes {
		vs, ok := values[p]
		if !ok {
			missing = append(missing, "no known values for the key prefix "+p)
		}
		for _, v := range vs {
			if !keys[p+v] {
				missing = append(missing, p+v)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("keys missing from strings/en.js:\n%s", strings.Join(missing, "\n"))
	}
}

// TestNoInlineScript keeps the pages within the CSP: no inline script or
// style, no handler attributes, no third-party URL.
func TestNoInlineScript(t *testing.T) {
	pages, _ := filepath.Glob("static/*.html")
	if len(pages) != 5 {
		t.Fatalf("pages: %v", pages)
	}
	bad := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]|<style|\son[a-z]+=|style=|https?://`)
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := bad.Find(b); m != nil {
			t.Errorf("%s: %q breaks the Content-Security-Policy", p, m)
		}
	}
	files, _ := filepath.Glob("static/js/*.js")
	for _, f := range files {
		src, _ := os.ReadFile(f)
		for _, danger := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
			if strings.Contains(string(src), danger) {
				t.Errorf("%s uses %s", f, danger)
			}
		}
	}
}
