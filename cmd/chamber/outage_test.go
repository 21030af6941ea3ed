package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/internal/testenv"
)

// logEvents hands the messages of log records to a channel.
type logEvents chan string

func (l logEvents) Enabled(context.Context, slog.Level) bool { return true }
func (l logEvents) Handle(_ context.Context, r slog.Record) error {
	select {
	case l <- r.Message:
	default:
	}
	return nil
}
func (l logEvents) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logEvents) WithGroup(string) slog.Handler      { return l }

// TestDatabaseOutageServed: chamber serve on PostgreSQL, with the database
// cut off: REST answers 503 unavailable (never 401, never 429 afterwards),
// a signalling join is answered "unavailable" and the Go client keeps
// trying with back-off, and once the database is back the same join
// succeeds without the client being told anything else.
func TestDatabaseOutageServed(t *testing.T) {
	u, err := url.Parse(testenv.PostgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	dir := t.TempDir()
	db := []string{"--database", u.String()}
	token := addStaff(t, dir, db, "Clerk Mets", "clerk").Token
	judgeStaff := addStaff(t, dir, db, "Judge Saar", "judge")
	s := startServer(t, dir, nil, "--database", u.String())
	var sess struct{ ID string }
	call(t, "POST", s.URL+"/api/v1/sessions", token, map[string]any{"kind": "hearing", "title": "Tamm v Kask"}, 201, &sess)
	inv := seat(t, s.URL, sess.ID, token, judgeStaff, "Judge Saar")

	proxy.Cut()
	for range 12 {
		call(t, "GET", s.URL+"/api/v1/sessions", token, nil, http.StatusServiceUnavailable, nil)
	}
	logs := make(logEvents, 64)
	joined := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() {
		c, err := client.Dial(ctx, client.Config{
			URL:   "ws" + strings.TrimPrefix(s.URL, "http") + "/api/v1/sessions/" + sess.ID + "/signal",
			Token: inv.Token, LoopbackOnly: true, Logger: slog.New(logs),
		})
		if err == nil {
			c.Close()
		}
		joined <- err
	}()
	for msg := range logs {
		if strings.Contains(msg, "unavailable") {
			break
		}
	}
	select {
	case err := <-joined:
		t.Fatalf("the join ended during the outage: %v", err)
	default:
	}
	proxy.Restore()
	if err := <-joined; err != nil {
		t.Fatalf("the join after the database came back: %v", err)
	}
	call(t, "GET", s.URL+"/api/v1/sessions", token, nil, 200, nil)
}
