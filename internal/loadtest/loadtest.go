// Package loadtest is Chamber's media load generator (`chamber loadtest`).
// It has two modes:
//
//   - one room (Run): P publishers send synthetic Opus-like audio (50
//     packets/s) and VP8-like video at a realistic packet rate and size,
//     and S subscribers receive everything;
//   - many rooms (RunRooms): R hearings of P participants each, where
//     everyone publishes audio and video and receives everyone else — the
//     realistic court load.
//
// Every payload carries its send time. Both report join times, packets
// sent and received, loss, forwarding latency and jitter and, when the
// server runs on this machine, the server's CPU time per forwarded packet.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/internal/client"
)

// Config is one load test. Each field is one flag of `chamber loadtest`.
type Config struct {
	// URL is the Chamber server's base URL [--url], e.g. https://court.example
	// (http, https, ws and wss are accepted).
	URL string
	// SessionID is the session (hearing or act) to load [--session].
	SessionID uuid.UUID
	// TokenFile holds participant tokens for that session, one per line
	// [--token-file]. Participant i uses line i (modulo the number of
	// lines). One-room mode only.
	TokenFile string
	// Provisioner invites and admits the participants the test needs (and
	// creates the room mode's hearings) [--staff-token]. Either it or
	// TokenFile is required in the one-room mode; the room mode needs it.
	Provisioner Provisioner
	// Publishers is how many participants publish audio and video [--publishers]; default 1.
	Publishers int
	// Subscribers is how many participants only receive [--subscribers]; default 10.
	Subscribers int
	// Rooms is how many hearings the room mode runs at once [--rooms].
	Rooms int
	// Participants is how many take part in each of the room mode's
	// hearings, each publishing audio and video and receiving all the
	// others [--participants]; default 6.
	Participants int
	// Duration is the measured steady window [--duration]; default 30s.
	Duration time.Duration
	// Warmup precedes the window once every subscriber receives media; default 5s.
	Warmup time.Duration
	// Simulcast publishes three VP8 layers [--simulcast]. In the room mode
	// receivers then cap and choose layers as the browser does (see
	// RunRooms).
	Simulcast bool
	// VideoBitrate of the (top) video layer in bit/s [--video-bitrate 1.5M]
	// (ParseBitrate reads the flag); default 1,500,000.
	VideoBitrate int
	// ServerPID is the server's process ID when it runs on this machine
	// [--server-pid]: its CPU time is then measured from /proc.
	ServerPID int
	// JSON asks for the summary as one JSON object [--json]; Run does not
	// use it, Print does.
	JSON bool
	// LoopbackOnly restricts ICE to loopback; default: when URL's host is a
	// loopback address.
	LoopbackOnly *bool
	// JoinConcurrency bounds concurrent joins (in the room mode: rooms
	// joining at once); default 8.
	JoinConcurrency int
	// Logger; nil discards.
	Logger *slog.Logger
}

// ErrSubscribersFailed is returned (with a full Summary) when a subscriber
// failed to join or never received media: the command exits non-zero.
var ErrSubscribersFailed = errors.New("loadtest: subscribers failed to join")

// ErrParticipantsFailed is the room mode's: a participant failed to join
// or did not receive everyone else's audio and video.
var ErrParticipantsFailed = errors.New("loadtest: participants failed to join or receive")

// ParseBitrate reads "1.5M", "800k", "2000000".
func ParseBitrate(s string) (int, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "m"):
		mult, s = 1e6, strings.TrimSuffix(s, "m")
	case strings.HasSuffix(s, "k"):
		mult, s = 1e3, strings.TrimSuffix(s, "k")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("loadtest: bad bitrate %q", s)
	}
	return int(f * mult), nil
}

// signalURL turns the base URL into the session's signalling endpoint.
func signalURL(base string, session uuid.UUID) (string, string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("loadtest: bad URL %q", base)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", "", fmt.Errorf("loadtest: URL scheme %q", u.Scheme)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/sessions/" + session.String() + "/signal"
	return u.String(), u.Hostname(), nil
}

func (cfg *Config) defaults() {
	if cfg.Publishers <= 0 {
		cfg.Publishers = 1
	}
	if cfg.Subscribers < 0 {
		cfg.Subscribers = 0
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 30 * time.Second
	}
	if cfg.Warmup <= 0 {
		cfg.Warmup = 5 * time.Second
	}
	if cfg.VideoBitrate <= 0 {
		cfg.VideoBitrate = 1_500_000
	}
	if cfg.Participants <= 0 {
		cfg.Participants = 6
	}
	if cfg.JoinConcurrency <= 0 {
		cfg.JoinConcurrency = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
}

// loopback reports whether ICE should stay on loopback: as configured, or
// when the server's host is a loopback address.
func (cfg *Config) loopback(host string) bool {
	if cfg.LoopbackOnly != nil {
		return *cfg.LoopbackOnly
	}
	ip := net.ParseIP(host)
	return (ip != nil && ip.IsLoopback()) || host == "localhost"
}

// subscriberInterceptors makes subscribers behave like browsers towards the
// server: they accept whatever feedback the server offers (NACK, receiver
// reports, TWCC), so a server that offers TWCC pays for it, as it would
// with Chrome.
func subscriberInterceptors(m *webrtc.MediaEngine, r *interceptor.Registry) error {
	return webrtc.RegisterDefaultInterceptors(m, r)
}

type participant struct {
	c       *client.Client
	pub     *client.Publication
	joinErr error
}

// Run performs the load test. progress receives one line per second (nil
// discards). The Summary is complete even when the error is
// ErrSubscribersFailed.
func Run(ctx context.Context, cfg Config, progress io.Writer) (Summary, error) {
	cfg.defaults()
	if progress == nil {
		progress = io.Discard
	}
	sum := Summary{Publishers: cfg.Publishers, Subscribers: cfg.Subscribers, Simulcast: cfg.Simulcast, VideoBitrate: cfg.VideoBitrate}
	wsURL, host, err := signalURL(cfg.URL, cfg.SessionID)
	if err != nil {
		return sum, err
	}
	loopback := cfg.loopback(host)
	toks, err := cfg.tokens(ctx, cfg.Publishers+cfg.Subscribers)
	if err != nil {
		return sum, err
	}
	dial := func(ctx context.Context, tok string, sub bool) (*client.Client, error) {
		cc := client.Config{URL: wsURL, Token: tok, LoopbackOnly: loopback, Logger: cfg.Logger, ReceiveBuffer: 1 << 20}
		if sub {
			cc.Interceptors = subscriberInterceptors
		}
		dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return client.Dial(dctx, cc)
	}

	// Publishers first, so that subscribers' join time includes the
	// negotiation of existing tracks, as in a hearing already under way.
	pubs := make([]*participant, cfg.Publishers)
	for i := range pubs {
		c, err := dial(ctx, toks[i], false)
		if err != nil {
			closeAll(pubs)
			return sum, fmt.Errorf("loadtest: publisher %d: %w", i, err)
		}
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		p, err := c.Publish(pctx, client.PublishOptions{Audio: true, Video: true, Simulcast: cfg.Simulcast, VideoBitrate: cfg.VideoBitrate})
		cancel()
		if err != nil {
			_ = c.Close()
			closeAll(pubs)
			return sum, fmt.Errorf("loadtest: publisher %d: %w", i, err)
		}
		pubs[i] = &participant{c: c, pub: p}
	}
	defer closeAll(pubs)
	fmt.Fprintf(progress, "%d publisher(s) sending; joining %d subscribers…\n", len(pubs), cfg.Subscribers)

	subs := make([]*participant, cfg.Subscribers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.JoinConcurrency)
	for i := range subs {
		subs[i] = &participant{}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dial(ctx, toks[cfg.Publishers+i], true)
			subs[i].c, subs[i].joinErr = c, err
		}(i)
	}
	wg.Wait()
	defer closeAll(subs)

	// Every subscriber must receive media from every publisher.
	want := 2 * cfg.Publishers
	deadline := time.Now().Add(30 * time.Second)
	joined := 0
	for _, s := range subs {
		if s.joinErr == nil {
			joined++
		}
	}
	for {
		ready := 0
		for _, s := range subs {
			if s.joinErr == nil && s.c != nil && receiving(s.c) >= want {
				ready++
			}
		}
		if ready == joined || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var joins []time.Duration
	for i, s := range subs {
		switch {
		case s.joinErr != nil:
			sum.SubscribersFailed++
			cfg.Logger.Warn("subscriber failed to join", "i", i, "err", s.joinErr)
		case receiving(s.c) < want:
			sum.SubscribersFailed++
			cfg.Logger.Warn("subscriber receives no media", "i", i)
		default:
			joins = append(joins, s.c.JoinLatency())
		}
	}
	if q := client.Quantiles(joins, 0.5, 0.99); len(joins) > 0 {
		sum.JoinMsP50, sum.JoinMsP99 = ms(q[0]), ms(q[1])
	}
	fmt.Fprintf(progress, "%d/%d subscribers receiving (join p50 %.0f ms, p99 %.0f ms); warming up %v\n",
		len(subs)-sum.SubscribersFailed, len(subs), sum.JoinMsP50, sum.JoinMsP99, cfg.Warmup)
	if err := sleep(ctx, cfg.Warmup); err != nil {
		return sum, err
	}

	sum.LoadAverageBefore = loadAverage()
	d, cpu, err := measure(ctx, cfg.Duration, progress, cfg.ServerPID, func() []*state { return []*state{snapshot(pubs, subs)} })
	if err != nil {
		return sum, err
	}
	sum.LoadAverageAfter = loadAverage()
	sum.LoadGeneratorCPUPct = cpu.selfPct()
	t := d[0].totals()
	sum.DurationS = cpu.elapsed.Seconds()
	sum.PacketsSent = d[0].sentTotal()
	sum.PacketsReceived = t.received
	sum.LossPct = t.lossPct()
	sum.JitterMs = t.jitterMs()
	sum.ForwardedPerSecond = float64(t.received) / cpu.elapsed.Seconds()
	sum.LatencyMsP50, sum.LatencyMsP99 = ms(d[0].latency.Quantile(0.5)), ms(d[0].latency.Quantile(0.99))
	if cpu.serverValid && t.received > 0 {
		us := cpu.perPacket(t.received)
		s1000 := us / 1000
		sum.ServerCPUMicrosPerPacket, sum.ServerCPUSecondsPer1000 = &us, &s1000
	}
	sum.Tracks = d[0].tracks()
	if sum.SubscribersFailed > 0 {
		return sum, fmt.Errorf("%w: %d of %d", ErrSubscribersFailed, sum.SubscribersFailed, cfg.Subscribers)
	}
	return sum, nil
}

// measure waits out the window, printing one progress line a second, and
// returns what happened in it: one delta per group that snap returns
// (the rooms, or the one room) and the CPU used.
func measure(ctx context.Context, window time.Duration, progress io.Writer, pid int, snap func() []*state) ([]delta, cpuDelta, error) {
	before, cpu0 := snap(), sampleCPU(pid)
	prev, cpuPrev := before, cpu0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(cpu0.at) < window {
		select {
		case <-ctx.Done():
			return nil, cpuDelta{}, ctx.Err()
		case <-tick.C:
		}
		now, cpuNow := snap(), sampleCPU(pid)
		fmt.Fprintln(progress, progressLine(time.Since(cpu0.at), deltas(now, prev), cpuNow.sub(cpuPrev)))
		prev, cpuPrev = now, cpuNow
	}
	after, cpu1 := snap(), sampleCPU(pid)
	return deltas(after, before), cpu1.sub(cpu0), nil
}

func deltas(now, before []*state) []delta {
	out := make([]delta, len(now))
	for i := range now {
		out[i] = now[i].sub(before[i])
	}
	return out
}

// progressLine is one second of the window, all groups together.
func progressLine(at time.Duration, ds []delta, cpu cpuDelta) string {
	var t flow
	for i := range ds {
		f := ds[i].totals()
		t.received += f.received
		t.expected += f.expected
	}
	line := fmt.Sprintf("%5.0fs  recv %7.0f pkt/s  loss %.3f%%", at.Seconds(), float64(t.received)/cpu.elapsed.Seconds(), t.lossPct())
	if cpu.serverValid {
		line += fmt.Sprintf("  server CPU %4.0f%%  %.1f µs/pkt", cpu.serverPct(), cpu.perPacket(t.received))
	}
	return line + fmt.Sprintf("  load generator CPU %4.0f%%", cpu.selfPct())
}

func receiving(c *client.Client) int {
	n := 0
	for _, t := range c.RemoteTracks() {
		if t.Stats().Packets > 0 {
			n++
		}
	}
	return n
}

func closeAll(ps []*participant) {
	var wg sync.WaitGroup
	for _, p := range ps {
		if p == nil || p.c == nil {
			continue
		}
		wg.Add(1)
		go func(p *participant) {
			defer wg.Done()
			_ = p.c.Close()
		}(p)
	}
	wg.Wait()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
