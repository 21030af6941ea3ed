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

// All is a check that passes when every one of checks does, in order.
func All(checks ...Check) Check {
	return func(ctx context.Context) error {
		for _, c := range checks {
			if err := c(ctx); err != nil {
				return err
			}
		}
		return nil
	}
}

// Probe runs a costly check — a write probe of a store or the database —
// every interval in the background and keeps its last result, so that
// /readyz reports a store that answers but cannot write (a full disk)
// without writing on every request.
type Probe struct {
	check    Check
	interval time.Duration

	mu   sync.Mutex
	err  error
	done bool
}

// probeTimeout bounds one run of a probe.
const probeTimeout = 10 * time.Second

// NewProbe returns a probe of check, run every interval by Run.
func NewProbe(check Check, interval time.Duration) *Probe {
	return &Probe{check: check, interval: interval}
}

// Run probes at once and then every interval until ctx ends.
func (p *Probe) Run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh runs the check now and keeps its result.
func (p *Probe) Refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	err := p.check(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err, p.done = err, true
	return err
}

// Check is the probe's last result, as a Check for /readyz. A failure is
// probed again at once (a failed write costs little), so readiness
// returns as soon as the store or the database can write again; a success
// stands until the next run. Before the first run it runs the check.
func (p *Probe) Check(ctx context.Context) error {
	p.mu.Lock()
	err, done := p.err, p.done
	p.mu.Unlock()
	if !done || err != nil {
		return p.Refresh(ctx)
	}
	return nil
}
