package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency answers.
type Check func(ctx context.Context) error

// readyTimeout bounds each readiness check, so a hung dependency makes
// /readyz answer 503 promptly rather than hang the prober.
const readyTimeout = 3 * time.Second

func handleHealthz(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readiness is /readyz's body: every check's state, and for a 503 the
// standard error naming what is down.
type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
	Error  *ErrorDetail      `json:"error,omitempty"`
}

func handleReadyz(checks map[string]Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var (
			mu   sync.Mutex
			wg   sync.WaitGroup
			body = readiness{Status: "ready", Checks: map[string]string{}}
			down []string
		)
		for name, check := range checks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
				defer cancel()
				err := check(ctx)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					body.Checks[name] = "down: " + err.Error()
					down = append(down, name)
				} else {
					body.Checks[name] = "ok"
				}
			}()
		}
		wg.Wait()
		if len(down) > 0 {
			slices.Sort(down)
			body.Status = "unavailable"
			body.Error = &ErrorDetail{Code: "not_ready", Message: "not ready: " + strings.Join(down, ", ") + " down"}
			WriteJSON(w, http.StatusServiceUnavailable, body)
			return
		}
		WriteJSON(w, http.StatusOK, body)
	}
}

// Metrics serves the Prometheus metrics. It is not a route of the API:
// room and peer counts, request rates and store errors are for the
// operator, so chamber serve serves them on a listener of their own
// (--metrics-listen), never on the public one.
func Metrics() http.Handler { return promhttp.Handler() }
