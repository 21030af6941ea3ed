package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
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
// participants and prints what it measured: one room of publishers and
// subscribers, or with --rooms many hearings where everyone publishes.
func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cfg        loadtest.Config
		session    string
		bitrate    string
		credential string
		verbose    bool
	)
	c := newCommand("loadtest")
	c.fs.StringVar(&cfg.URL, "url", "http://localhost:8080", "the Chamber server's base URL")
	c.fs.StringVar(&session, "session", "", "the session to load; with --staff-token and no --session, a hearing is created")
	c.fs.StringVar(&cfg.TokenFile, "token-file", "", "participant tokens for the session, one per line")
	c.fs.StringVar(&credential, "staff-token", "", "a clerk's (or admin's) API token with sessions:write (chamber token add): hearings are created, participants invited and admitted")
	c.fs.IntVar(&cfg.Publishers, "publishers", 1, "participants publishing audio and video")
	c.fs.IntVar(&cfg.Subscribers, "subscribers", 10, "participants only receiving")
	c.fs.IntVar(&cfg.Rooms, "rooms", 0, "run this many hearings at once, where every participant publishes and receives all others (needs --staff-token)")
	c.fs.IntVar(&cfg.Participants, "participants", 6, "with --rooms: participants per hearing")
	c.fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "the measured steady window")
	c.fs.DurationVar(&cfg.Warmup, "warmup", 5*time.Second, "time after every participant receives, before measuring")
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
	if verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if credential != "" {
		cfg.Provisioner = newStaffAPI(cfg.URL, credential)
	}
	if cfg.Rooms != 0 {
		return loadtestRooms(ctx, cfg, c, stdout, stderr)
	}
	if cfg.TokenFile == "" && cfg.Provisioner == nil {
		return usagef("chamber loadtest: give --token-file or --staff-token")
	}
	switch {
	case session != "":
		if cfg.SessionID, err = uuid.Parse(session); err != nil {
			return usagef("chamber loadtest: --session %q is not a session id", session)
		}
	case cfg.Provisioner != nil:
		if cfg.SessionID, err = cfg.Provisioner.CreateHearing(ctx, "Load test "+time.Now().UTC().Format(time.RFC3339)); err != nil {
			return fmt.Errorf("creating a session for the load test: %w", err)
		}
		fmt.Fprintf(stderr, "created hearing %s\n", cfg.SessionID)
	default:
		return usagef("chamber loadtest: --token-file needs --session")
	}
	sum, err := loadtest.Run(ctx, cfg, stderr)
	if perr := loadtest.Print(stdout, sum, cfg.JSON); perr != nil && err == nil {
		err = perr
	}
	return loadtestExit(err, stderr)
}

// loadtestRooms is --rooms: the hearings are created, so the one-room
// mode's flags that name a session or its participants do not apply.
func loadtestRooms(ctx context.Context, cfg loadtest.Config, c *command, stdout, stderr io.Writer) error {
	var conflict []string
	c.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "session", "token-file", "publishers", "subscribers":
			conflict = append(conflict, "--"+f.Name)
		}
	})
	switch {
	case len(conflict) > 0:
		return usagef("chamber loadtest: --rooms creates its hearings and participants; %s do not apply", strings.Join(conflict, ", "))
	case cfg.Provisioner == nil:
		return usagef("chamber loadtest: --rooms needs --staff-token (it creates the hearings)")
	case cfg.Rooms < 0 || cfg.Participants < 2:
		return usagef("chamber loadtest: --rooms must be positive and --participants at least 2")
	}
	sum, err := loadtest.RunRooms(ctx, cfg, stderr)
	if perr := loadtest.PrintRooms(stdout, sum, cfg.JSON); perr != nil && err == nil {
		err = perr
	}
	return loadtestExit(err, stderr)
}

// loadtestExit turns participants that failed into exit status 1, after
// the summary is printed.
func loadtestExit(err error, stderr io.Writer) error {
	if errors.Is(err, loadtest.ErrSubscribersFailed) || errors.Is(err, loadtest.ErrParticipantsFailed) {
		fmt.Fprintln(stderr, "chamber loadtest:", err)
		return &exitError{code: 1}
	}
	return err
}

// staffAPI is the load generator's loadtest.Provisioner on a real server:
// the few REST calls that create hearings and admit participants, made
// with the staff credential given on the command line. How that credential
// travels is this type's business alone (authorize): a change in how
// staff authenticate (API tokens and their scopes) changes this type and
// the --staff-token flag, nothing in internal/loadtest.
type staffAPI struct {
	base       string
	credential string
	http       *http.Client
}

// maxAnswer bounds what the load generator reads of one REST answer.
const maxAnswer = 1 << 20

func newStaffAPI(base, credential string) *staffAPI {
	return &staffAPI{base: strings.TrimRight(base, "/"), credential: credential, http: &http.Client{Timeout: 30 * time.Second}}
}

// authorize puts the staff credential on a request.
func (a *staffAPI) authorize(req *http.Request) {
	req.Header.Set("Authorization", "Bearer "+a.credential)
}

func (a *staffAPI) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	a.authorize(req)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// CreateHearing creates a hearing titled title.
func (a *staffAPI) CreateHearing(ctx context.Context, title string) (uuid.UUID, error) {
	var s struct{ ID uuid.UUID }
	if err := a.do(ctx, "POST", "/api/v1/sessions", map[string]any{"kind": "hearing", "title": title}, &s); err != nil {
		return uuid.Nil, err
	}
	return s.ID, nil
}

// AddParticipant invites a participant and admits them from the waiting
// room.
func (a *staffAPI) AddParticipant(ctx context.Context, session uuid.UUID, name, role string) (string, error) {
	base := "/api/v1/sessions/" + session.String()
	var inv struct {
		ParticipantID string `json:"participant_id"`
		Token         string
	}
	if err := a.do(ctx, "POST", base+"/invitations", map[string]any{"name": name, "role": role}, &inv); err != nil {
		return "", err
	}
	if err := a.do(ctx, "POST", base+"/participants/"+inv.ParticipantID+"/admit", nil, nil); err != nil {
		return "", err
	}
	return inv.Token, nil
}
