// Package api is Chamber's HTTP floor: the router with its logging and
// metrics, JSON errors, and the REST handlers over sessions, documents,
// signalling and verification.
package api

import (
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	httpRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chamber_http_requests_total",
		Help: "HTTP requests by route pattern and status code.",
	}, []string{"route", "code"})
	httpDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chamber_http_request_duration_seconds",
		Help:    "HTTP request duration by route pattern.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	}, []string{"route"})
)

// unmatchedRoute labels requests that matched no pattern, so raw paths
// never become metric labels.
const unmatchedRoute = "unmatched"

// Route is one registered pattern.
type Route struct {
	Method string // "" for any method
	Path   string // ServeMux path pattern, e.g. /api/v1/sessions/{id}
}

// Router is an http.ServeMux that instruments every route it registers:
// one log line and metrics per request, labelled by the route pattern.
type Router struct {
	mux    *http.ServeMux
	log    *slog.Logger
	routes []Route
}

// NewRouter returns an empty router logging to log.
func NewRouter(log *slog.Logger) *Router {
	return &Router{mux: http.NewServeMux(), log: log}
}

// Handle registers h for a ServeMux pattern such as "GET /healthz".
func (rt *Router) Handle(pattern string, h http.Handler) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	}
	rt.routes = append(rt.routes, Route{Method: method, Path: path})
	rt.mux.Handle(pattern, rt.instrument(pattern, h))
}

// HandleFunc registers a handler function.
func (rt *Router) HandleFunc(pattern string, h http.HandlerFunc) { rt.Handle(pattern, h) }

// Routes returns every registered route, sorted.
func (rt *Router) Routes() []Route {
	out := slices.Clone(rt.routes)
	slices.SortFunc(out, func(a, b Route) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	return out
}

// ServeHTTP dispatches. Requests that match no route get a JSON 404 or 405
// instead of ServeMux's plain-text ones.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := rt.mux.Handler(r)
	if pattern != "" {
		rt.mux.ServeHTTP(w, r)
		return
	}
	rt.instrument(unmatchedRoute, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Let ServeMux decide between 404 and 405 (it knows the Allow
		// header), then replace its plain-text body with ours.
		probe := &statusProbe{header: w.Header()}
		h.ServeHTTP(probe, r)
		w.Header().Del("Content-Type")
		w.Header().Del("X-Content-Type-Options")
		switch probe.status {
		case http.StatusMethodNotAllowed:
			Error(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path)
		case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			w.WriteHeader(probe.status)
		default:
			Error(w, http.StatusNotFound, "not_found", "no such resource: "+r.URL.Path)
		}
	})).ServeHTTP(w, r)
}

// statusProbe records the status a handler chose and discards its body.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}
func (p *statusProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

func (rt *Router) instrument(route string, h http.Handler) http.Handler {
	duration := httpDuration.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				// A handler bug must not take the process down; the
				// request gets a 500 and the stack goes to the log.
				if v == http.ErrAbortHandler {
					panic(v)
				}
				rt.log.Error("handler panic", "route", route, "panic", v)
				if rec.status == 0 {
					Error(rec, http.StatusInternalServerError, "internal", "internal error")
				}
			}
			elapsed := time.Since(start)
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			httpRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
			duration.Observe(elapsed.Seconds())
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			rt.log.LogAttrs(r.Context(), level, "http",
				slog.String("route", route),
				slog.String("method", r.Method),
				slog.Int("status", status),
				slog.Duration("duration", elapsed),
				slog.Int64("bytes", rec.bytes),
			)
		}()
		h.ServeHTTP(rec, r)
	})
}

// statusRecorder remembers the status and size of a response. It passes
// Flush and Hijack through (Unwrap) so streaming and WebSockets work.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap exposes the underlying writer to http.ResponseController.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
