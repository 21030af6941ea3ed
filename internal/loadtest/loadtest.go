// Package loadtest is Chamber's media load generator (`chamber loadtest`):
// P publishers send synthetic Opus-like audio (50 packets/s) and VP8-like
// video at a realistic packet rate and size, each payload carrying its send
// time; S subscribers receive everything. It reports join times, packets
// sent and received, loss, forwarding latency and, when the server runs on
// this machine, the server's CPU time per forwarded packet.
package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
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
	// [--token-file]. Participant i uses line i (modulo the number of lines).
	TokenFile string
	// StaffToken is a clerk's or presiding officer's API token [--staff-token]:
	// the load generator then invites and admits the participants it needs
	// through Provision.
	StaffToken string
	// Provision returns n participant tokens using StaffToken. The command
	// sets it once the Sessions API exists; nil makes StaffToken unusable.
	Provision func(ctx context.Context, cfg Config, n int) ([]string, error)
	// Publishers is how many participants publish audio and video [--publishers]; default 1.
	Publishers int
	// Subscribers is how many participants only receive [--subscribers]; default 10.
	Subscribers int
	// Duration is the measured steady window [--duration]; default 30s.
	Duration time.Duration
	// Warmup precedes the window once every subscriber receives media; default 5s.
	Warmup time.Duration
	// Simulcast publishes three VP8 layers [--simulcast].
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
	// JoinConcurrency bounds concurrent joins; default 8.
	JoinConcurrency int
	// Logger; nil discards.
	Logger *slog.Logger
}

// ErrSubscribersFailed is returned (with a full Summary) when a subscriber
// failed to join or never received media: the command exits non-zero.
var ErrSubscribersFailed = errors.New("loadtest: subscribers failed to join")

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
	if cfg.JoinConcurrency <= 0 {
		cfg.JoinConcurrency = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
}

func (cfg *Config) tokens(ctx context.Context, n int) ([]string, error) {
	switch {
	case cfg.TokenFile != "":
		f, err := os.Open(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
		defer f.Close()
		var toks []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if t := strings.TrimSpace(sc.Text()); t != "" && !strings.HasPrefix(t, "#") {
				toks = append(toks, t)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("loadtest: reading tokens: %w", err)
		}
		if len(toks) == 0 {
			return nil, fmt.Errorf("loadtest: %s holds no token", cfg.TokenFile)
		}
		out := make([]string, n)
		for i := range out {
			out[i] = toks[i%len(toks)]
		}
		return out, nil
	case cfg.StaffToken != "":
		if cfg.Provision == nil {
			return nil, errors.New("loadtest: --staff-token needs the Sessions API (no provisioner configured); use --token-file")
		}
		toks, err := cfg.Provision(ctx, *cfg, n)
		if err != nil {
			return nil, fmt.Errorf("loadtest: provisioning participants: %w", err)
		}
		if len(toks) < n {
			return nil, fmt.Errorf("loadtest: provisioned %d tokens, need %d", len(toks), n)
		}
		return toks, nil
	}
	return nil, errors.New("loadtest: either a token file or a staff token is required")
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
	loopback := false
	if cfg.LoopbackOnly != nil {
		loopback = *cfg.LoopbackOnly
	} else if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		loopback = true
	}
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

	before := snapshot(pubs, subs, cfg.ServerPID)
	start := time.Now()
	tick := time.NewTicker(time.Second)
	prev := before
	for time.Since(start) < cfg.Duration {
		select {
		case <-ctx.Done():
			tick.Stop()
			return sum, ctx.Err()
		case <-tick.C:
		}
		now := snapshot(pubs, subs, cfg.ServerPID)
		d := now.sub(prev)
		line := fmt.Sprintf("%5.0fs  recv %7.0f pkt/s  loss %.3f%%", time.Since(start).Seconds(), float64(d.received)/d.elapsed.Seconds(), d.lossPct())
		if d.cpuValid {
			line += fmt.Sprintf("  server CPU %4.0f%%  %.1f µs/pkt", 100*d.cpu.Seconds()/d.elapsed.Seconds(), d.cpuPerPacket())
		}
		fmt.Fprintln(progress, line)
		prev = now
	}
	tick.Stop()
	after := snapshot(pubs, subs, cfg.ServerPID)
	d := after.sub(before)
	sum.DurationS = d.elapsed.Seconds()
	sum.PacketsSent = d.sent
	sum.PacketsReceived = d.received
	sum.LossPct = d.lossPct()
	sum.ForwardedPerSecond = float64(d.received) / d.elapsed.Seconds()
	sum.LatencyMsP50, sum.LatencyMsP99 = ms(d.latency.Quantile(0.5)), ms(d.latency.Quantile(0.99))
	if d.cpuValid && d.received > 0 {
		us := d.cpuPerPacket()
		s1000 := d.cpu.Seconds() / float64(d.received) * 1000
		sum.ServerCPUMicrosPerPacket, sum.ServerCPUSecondsPer1000 = &us, &s1000
	}
	sum.Tracks = d.tracks
	if sum.SubscribersFailed > 0 {
		return sum, fmt.Errorf("%w: %d of %d", ErrSubscribersFailed, sum.SubscribersFailed, cfg.Subscribers)
	}
	return sum, nil
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

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// state is a snapshot of every counter.
type state struct {
	at       time.Time
	cpu      time.Duration
	cpuValid bool
	sent     map[string]uint64 // by "publisher/kind"
	recv     map[string]trackCounters
	latency  client.Histogram
}

type trackCounters struct {
	received, expected uint64
}

func snapshot(pubs, subs []*participant, pid int) *state {
	s := &state{at: time.Now(), sent: map[string]uint64{}, recv: map[string]trackCounters{}}
	if pid > 0 {
		s.cpu, s.cpuValid = processCPU(pid)
	}
	for _, p := range pubs {
		id := p.c.Joined().Participant.ID
		a, v := p.pub.Sent()
		s.sent[id+"/audio"] += a
		for _, x := range v {
			s.sent[id+"/video"] += x
		}
	}
	for _, p := range subs {
		if p.joinErr != nil || p.c == nil {
			continue
		}
		for _, t := range p.c.RemoteTracks() {
			st := t.Stats()
			k := t.ParticipantID + "/" + t.Kind.String()
			c := s.recv[k]
			c.received += st.Packets
			c.expected += st.Expected()
			s.recv[k] = c
			s.latency.Merge(&st.Latency)
		}
	}
	return s
}

// delta is what happened between two snapshots.
type delta struct {
	elapsed        time.Duration
	cpu            time.Duration
	cpuValid       bool
	sent, received uint64
	expected       uint64
	latency        client.Histogram
	tracks         []TrackSummary
}

func (d *delta) lossPct() float64 {
	if d.expected == 0 || d.received >= d.expected {
		return 0
	}
	return 100 * float64(d.expected-d.received) / float64(d.expected)
}

func (d *delta) cpuPerPacket() float64 {
	if d.received == 0 {
		return 0
	}
	return float64(d.cpu.Microseconds()) / float64(d.received)
}

func (s *state) sub(o *state) delta {
	d := delta{elapsed: s.at.Sub(o.at), cpu: s.cpu - o.cpu, cpuValid: s.cpuValid && o.cpuValid}
	keys := map[string]bool{}
	for k := range s.sent {
		keys[k] = true
	}
	for k := range s.recv {
		keys[k] = true
	}
	for k := range keys {
		sent := s.sent[k] - o.sent[k]
		rc := s.recv[k].received - o.recv[k].received
		ex := s.recv[k].expected - o.recv[k].expected
		d.sent += sent
		d.received += rc
		d.expected += ex
		pub, kind, _ := strings.Cut(k, "/")
		ts := TrackSummary{Publisher: pub, Kind: kind, Sent: sent, Received: rc}
		if ex > rc {
			ts.LossPct = 100 * float64(ex-rc) / float64(ex)
		}
		d.tracks = append(d.tracks, ts)
	}
	sort.Slice(d.tracks, func(i, j int) bool {
		if d.tracks[i].Publisher != d.tracks[j].Publisher {
			return d.tracks[i].Publisher < d.tracks[j].Publisher
		}
		return d.tracks[i].Kind < d.tracks[j].Kind
	})
	d.latency = s.latency
	for i := range d.latency.Buckets {
		d.latency.Buckets[i] -= o.latency.Buckets[i]
	}
	d.latency.Count -= o.latency.Count
	d.latency.Sum -= o.latency.Sum
	return d
}

// processCPU returns a process's user+system CPU time from /proc/PID/stat.
func processCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return parseStat(string(b))
}

// clockTicks is USER_HZ, 100 on every Linux architecture Chamber runs on.
const clockTicks = 100

func parseStat(s string) (time.Duration, bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	// After the command: state is field 3, utime 14 and stime 15 (1-based).
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * time.Second / clockTicks, true
}
