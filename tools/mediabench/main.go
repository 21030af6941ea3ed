// Command mediabench runs the media benchmark of docs/benchmarks.md:
//
//	mediabench serve -mode chamber|bare [-addr 127.0.0.1:8089] [-media-udp 127.0.0.1:7882]
//	mediabench load  -url http://127.0.0.1:8089 -publishers 1 -subscribers 100 -duration 20s -server-pid PID [-json]
//	mediabench load  -url http://127.0.0.1:8089 -rooms 10 -participants 6 -duration 20s -server-pid PID [-json]
//	mediabench report [-loss 0.1] [-p99 50ms] < runs.jsonl
//
// "serve -mode chamber" runs Chamber's signalling server and SFU with a
// token check that admits anyone (a fresh participant per connection);
// "serve -mode bare" speaks the same protocol but forwards with a bare pion
// fan-out: each published track copied to one TrackLocalStaticRTP per
// subscriber, pion's default interceptors, nothing else. "load" runs the
// load generator of package loadtest with the flags of `chamber loadtest`.
// It is a benchmark tool, not part of the product.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/internal/loadtest"
	"github.com/chamber-court/chamber/signaling"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: mediabench serve|load|report [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	case "report":
		err = report(os.Args[2:], os.Stdin, os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mediabench:", err)
		os.Exit(1)
	}
}

// anyone admits every token as a new participant of the session asked for.
type anyone struct{}

func (anyone) Authenticate(_ context.Context, session uuid.UUID, token string) (signaling.Identity, error) {
	if token == "" {
		return signaling.Identity{}, fault.Unauthenticated
	}
	return signaling.Identity{SessionID: session, ParticipantID: uuid.New(), Name: "bench", Role: "party"}, nil
}

// CreateHearing and AddParticipant make anyone the load generator's
// provisioner: a fresh session ID per room, and a token anyone admits.
func (anyone) CreateHearing(context.Context, string) (uuid.UUID, error) { return uuid.New(), nil }

func (anyone) AddParticipant(context.Context, uuid.UUID, string, string) (string, error) {
	return "bench", nil
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	mode := fs.String("mode", "chamber", "chamber or bare")
	addr := fs.String("addr", "127.0.0.1:8089", "HTTP address")
	udp := fs.String("media-udp", "127.0.0.1:7882", "media UDP address")
	interceptors := fs.Bool("interceptors", true, "bare mode: register pion's default interceptors")
	verbose := fs.Bool("v", false, "log at debug level")
	noBatch := fs.Bool("no-batching", false, "chamber mode: one sendto per datagram instead of sendmmsg")
	_ = fs.Parse(args)
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	mux := http.NewServeMux()
	var closer func() error
	switch *mode {
	case "chamber":
		s, err := signaling.New(signaling.Config{Logger: log, Authenticator: anyone{}, MediaUDPAddr: *udp, MediaTCPAddr: "off", NoBatching: *noBatch})
		if err != nil {
			return err
		}
		if err := s.Start(ctx); err != nil {
			return err
		}
		mux.HandleFunc("GET /api/v1/sessions/{id}/signal", s.HandleSignal)
		closer = s.Close
	case "bare":
		b, err := newBare(log, *udp, *interceptors)
		if err != nil {
			return err
		}
		mux.HandleFunc("GET /api/v1/sessions/{id}/signal", b.handle)
		closer = b.close
	default:
		return fmt.Errorf("unknown mode %q", *mode)
	}
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "mediabench: %s mode on http://%s (media %s), pid %d\n", *mode, *addr, *udp, os.Getpid())
	err := srv.ListenAndServe()
	_ = closer()
	if err == http.ErrServerClosed {
		return nil
	}
	return err
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	var cfg loadtest.Config
	var session, bitrate string
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8089", "server base URL")
	fs.StringVar(&session, "session", "", "session ID (default: a random one)")
	fs.StringVar(&cfg.TokenFile, "token-file", "", "participant tokens, one per line (default: any token; not with -rooms)")
	fs.IntVar(&cfg.Publishers, "publishers", 1, "publishers")
	fs.IntVar(&cfg.Subscribers, "subscribers", 10, "subscribers")
	fs.IntVar(&cfg.Rooms, "rooms", 0, "run this many rooms where everyone publishes and receives all others")
	fs.IntVar(&cfg.Participants, "participants", 6, "with -rooms: participants per room")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "measured window")
	fs.DurationVar(&cfg.Warmup, "warmup", 5*time.Second, "warm-up before the window")
	fs.BoolVar(&cfg.Simulcast, "simulcast", false, "publish three layers")
	fs.StringVar(&bitrate, "video-bitrate", "1.5M", "video bitrate")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "server process ID, for its CPU time")
	fs.BoolVar(&cfg.JSON, "json", false, "print the summary as JSON")
	_ = fs.Parse(args)
	br, err := loadtest.ParseBitrate(bitrate)
	if err != nil {
		return err
	}
	cfg.VideoBitrate = br
	cfg.SessionID = uuid.New()
	if session != "" {
		if cfg.SessionID, err = uuid.Parse(session); err != nil {
			return err
		}
	}
	if cfg.TokenFile == "" {
		cfg.Provisioner = anyone{}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := os.Stderr
	if cfg.Rooms > 0 {
		sum, runErr := loadtest.RunRooms(ctx, cfg, progress)
		if err := loadtest.PrintRooms(os.Stdout, sum, cfg.JSON); err != nil {
			return err
		}
		return runErr
	}
	sum, runErr := loadtest.Run(ctx, cfg, progress)
	if err := loadtest.Print(os.Stdout, sum, cfg.JSON); err != nil {
		return err
	}
	return runErr
}
