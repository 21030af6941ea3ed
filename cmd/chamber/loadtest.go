package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/internal/loadtest"
)

// runLoadtest drives a running server's media path with synthetic
// publishers and subscribers and prints what it measured.
func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cfg     loadtest.Config
		session string
		bitrate string
		verbose bool
	)
	c := newCommand("loadtest")
	c.fs.StringVar(&cfg.URL, "url", "http://localhost:8080", "the Chamber server's base URL")
	c.fs.StringVar(&session, "session", "", "the session to load; with --staff-token and no --session, a hearing is created")
	c.fs.StringVar(&cfg.TokenFile, "token-file", "", "participant tokens for the session, one per line")
	c.fs.StringVar(&cfg.StaffToken, "staff-token", "", "a clerk's (or judge's, or admin's) API token with sessions:write: participants are invited and admitted")
	c.fs.IntVar(&cfg.Publishers, "publishers", 1, "participants publishing audio and video")
	c.fs.IntVar(&cfg.Subscribers, "subscribers", 10, "participants only receiving")
	c.fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "the measured steady window")
	c.fs.DurationVar(&cfg.Warmup, "warmup", 5*time.Second, "time after every subscriber receives, before measuring")
	c.fs.BoolVar(&cfg.Simulcast, "simulcast", false, "publish three VP8 simulcast layers")
	c.fs.StringVar(&bitrate, "video-bitrate", "1.5M", "video bitrate of the (top) layer")
	c.fs.IntVar(&cfg.ServerPID, "server-pid", 0, "the server's process id, to measure its CPU per forwarded packet")
	c.fs.BoolVar(&cfg.JSON, "json", false, "print the summary as one JSON object")
	c.fs.BoolVar(&verbose, "v", false, "log the clients' details to stderr")
	if err := c.parse(args, stderr); err != nil {
		return err
	}
	var err error
	if cfg.VideoBitrate, err = loadtest.ParseBitrate(bitrate); err != nil {
		return usagef("chamber loadtest: --video-bitrate: %v", err)
	}
	if cfg.TokenFile == "" && cfg.StaffToken == "" {
		return usagef("chamber loadtest: give --token-file or --staff-token")
	}
	if verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	api := &restClient{base: strings.TrimRight(cfg.URL, "/"), token: cfg.StaffToken}
	switch {
	case session != "":
		if cfg.SessionID, err = uuid.Parse(session); err != nil {
			return usagef("chamber loadtest: --session %q is not a session id", session)
		}
	case cfg.StaffToken != "":
		var s struct{ ID uuid.UUID }
		if err := api.do(ctx, "POST", "/api/v1/sessions", map[string]any{"kind": "hearing", "title": "Load test " + time.Now().UTC().Format(time.RFC3339)}, &s); err != nil {
			return fmt.Errorf("creating a session for the load test: %w", err)
		}
		cfg.SessionID = s.ID
		fmt.Fprintf(stderr, "created hearing %s\n", s.ID)
	default:
		return usagef("chamber loadtest: --token-file needs --session")
	}
	cfg.Provision = api.provision
	progress := stderr
	sum, err := loadtest.Run(ctx, cfg, progress)
	if perr := loadtest.Print(stdout, sum, cfg.JSON); perr != nil && err == nil {
		err = perr
	}
	if errors.Is(err, loadtest.ErrSubscribersFailed) {
		fmt.Fprintln(stderr, "chamber loadtest:", err)
		return &exitError{code: 1}
	}
	return err
}

// restClient is the few REST calls the load generator makes.
type restClient struct {
	base, token string
}

func (c *restClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// provision invites the participants a load test needs — publishers as
// witnesses (a role of both kinds of session that publishes), subscribers as
// observers — and admits them from the waiting room.
func (c *restClient) provision(ctx context.Context, cfg loadtest.Config, n int) ([]string, error) {
	base := "/api/v1/sessions/" + cfg.SessionID.String()
	toks := make([]string, n)
	for i := range n {
		role, name := "observer", fmt.Sprintf("Load subscriber %d", i-cfg.Publishers+1)
		if i < cfg.Publishers {
			role, name = "witness", fmt.Sprintf("Load publisher %d", i+1)
		}
		var inv struct {
			ParticipantID string `json:"participant_id"`
			Token         string
		}
		if err := c.do(ctx, "POST", base+"/invitations", map[string]any{"name": name, "role": role}, &inv); err != nil {
			return nil, err
		}
		if err := c.do(ctx, "POST", base+"/participants/"+inv.ParticipantID+"/admit", nil, nil); err != nil {
			return nil, err
		}
		toks[i] = inv.Token
	}
	return toks, nil
}
