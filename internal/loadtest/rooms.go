package loadtest

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// How long a participant may take to join, and the mesh to form.
const (
	joinTimeout = 20 * time.Second
	meshTimeout = 30 * time.Second
	pollEvery   = 10 * time.Millisecond
)

// topLayer is the highest of the three simulcast layers (q, h, f).
const topLayer = 2

// receiverEstimate is the receive bandwidth estimate (REMB) every room
// participant reports with simulcast: a subscriber on a fast link whose
// estimate has ramped up and never fallen. The SFU's allocator then lets
// each video track have the highest layer the receiver's cap allows.
const receiverEstimate = 10_000_000

// gridMaxLayer is the simulcast layer a browser caps every video at in a
// room of p participants: its grid has one tile per participant, its own
// included, and above four tiles each is capped at the middle layer
// (web/static/js/stage.js, applyQuality). nil means no cap.
func gridMaxLayer(p int) *int {
	if p > 4 {
		one := 1
		return &one
	}
	return nil
}

// room is one hearing of the room mode.
type room struct {
	index   int
	session uuid.UUID
	members []*member
}

// member is one participant of a room: it publishes audio and video and
// receives everyone else.
type member struct {
	participant
	role, token string
	cl          atomic.Pointer[client.Client] // c, for callbacks that may run before Dial returns
	joinTime    time.Duration                 // WebSocket open → media of everyone already there
	timed       bool                          // joinTime is meaningful (not the first to join)

	mu     sync.Mutex
	capped map[string]bool // video track IDs whose layer cap was sent
}

// parts returns the room's participants, as snapshot takes them.
func (r *room) parts() []*participant {
	out := make([]*participant, len(r.members))
	for i, m := range r.members {
		out[i] = &m.participant
	}
	return out
}

// live returns the members that joined.
func (r *room) live() []*member {
	var out []*member
	for _, m := range r.members {
		if m.joinErr == nil && m.c != nil {
			out = append(out, m)
		}
	}
	return out
}

// RunRooms runs cfg.Rooms hearings of cfg.Participants participants at
// once. Within a room participants enter one after another, as people
// join a hearing under way: each dials, publishes audio and video, and
// has joined once its publish connection is up and it receives the audio
// and video of everyone already there (its join time). Rooms join in
// parallel, cfg.JoinConcurrency at a time. Once every participant
// receives every other, and after the warm-up, the window measures loss,
// latency, jitter and the server's CPU, per room and in total.
//
// With cfg.Simulcast, participants publish three layers and receive as a
// browser in a grid does: every video capped at gridMaxLayer, and a
// receive estimate (REMB) that lets the allocator give each video the
// highest layer the cap allows.
//
// The summary is complete even when the error is ErrParticipantsFailed.
func RunRooms(ctx context.Context, cfg Config, progress io.Writer) (RoomsSummary, error) {
	cfg.defaults()
	if progress == nil {
		progress = io.Discard
	}
	sum := RoomsSummary{Rooms: cfg.Rooms, Participants: cfg.Participants, Simulcast: cfg.Simulcast, VideoBitrate: cfg.VideoBitrate}
	if cfg.Rooms <= 0 || cfg.Participants < 2 {
		return sum, fmt.Errorf("loadtest: the room mode needs at least one room of two participants, not %d of %d", cfg.Rooms, cfg.Participants)
	}
	if cfg.Simulcast {
		sum.MaxLayer = gridMaxLayer(cfg.Participants)
	}
	_, host, err := signalURL(cfg.URL, uuid.Nil)
	if err != nil {
		return sum, err
	}
	rooms, err := cfg.provisionRooms(ctx)
	if err != nil {
		return sum, err
	}
	fmt.Fprintf(progress, "%d hearings of %d created; joining…\n", cfg.Rooms, cfg.Participants)
	j := joiner{cfg: &cfg, loopback: cfg.loopback(host), maxLayer: sum.MaxLayer}
	j.joinAll(ctx, rooms)
	defer closeRooms(rooms)

	if cfg.Simulcast {
		// The members that joined, fixed now: awaitMesh may yet mark some
		// failed, and steer must not read what it writes.
		var live []*member
		for _, r := range rooms {
			live = append(live, r.live()...)
		}
		sctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			steer(sctx, live, sum.MaxLayer)
		}()
		defer wg.Wait()
		defer stop()
	}

	layer := -1
	if cfg.Simulcast {
		layer = topLayer
		if sum.MaxLayer != nil {
			layer = *sum.MaxLayer
		}
	}
	if err := awaitMesh(ctx, rooms, layer, meshTimeout); err != nil {
		return sum, err
	}
	for _, r := range rooms {
		for i, m := range r.members {
			if m.joinErr != nil {
				sum.ParticipantsFailed++
				cfg.Logger.Warn("participant failed", "room", r.index+1, "i", i, "err", m.joinErr)
			}
		}
	}
	joins := joinTimes(rooms)
	q := client.Quantiles(joins, 0.5, 0.99)
	fmt.Fprintf(progress, "%d/%d participants receiving everyone (join p50 %.0f ms, p99 %.0f ms); warming up %v\n",
		cfg.Rooms*cfg.Participants-sum.ParticipantsFailed, cfg.Rooms*cfg.Participants, ms(q[0]), ms(q[1]), cfg.Warmup)
	if err := sleep(ctx, cfg.Warmup); err != nil {
		return sum, err
	}

	sum.LoadAverageBefore = loadAverage()
	ds, cpu, err := measure(ctx, cfg.Duration, progress, cfg.ServerPID, func() []*state {
		out := make([]*state, len(rooms))
		for i, r := range rooms {
			ps := r.parts()
			out[i] = snapshot(ps, ps)
		}
		return out
	})
	if err != nil {
		return sum, err
	}
	sum.LoadAverageAfter = loadAverage()
	sum.fill(rooms, ds, cpu)
	if sum.ParticipantsFailed > 0 {
		return sum, fmt.Errorf("%w: %d of %d", ErrParticipantsFailed, sum.ParticipantsFailed, cfg.Rooms*cfg.Participants)
	}
	return sum, nil
}

// joiner joins the rooms' participants.
type joiner struct {
	cfg      *Config
	loopback bool
	maxLayer *int
}

// joinAll joins every room, cfg.JoinConcurrency rooms at a time.
func (j *joiner) joinAll(ctx context.Context, rooms []*room) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, j.cfg.JoinConcurrency)
	for _, r := range rooms {
		wg.Add(1)
		sem <- struct{}{}
		go func(r *room) {
			defer wg.Done()
			defer func() { <-sem }()
			for i, m := range r.members {
				j.join(ctx, r, m, r.members[:i])
			}
		}(r)
	}
	wg.Wait()
}

// join connects m to r, publishes and waits until m's publish connection
// is up and m receives the audio and video of the earlier members that
// joined. Failures are kept in m.joinErr.
func (j *joiner) join(ctx context.Context, r *room, m *member, earlier []*member) {
	wsURL, _, err := signalURL(j.cfg.URL, r.session)
	if err != nil {
		m.joinErr = err
		return
	}
	cc := client.Config{URL: wsURL, Token: m.token, LoopbackOnly: j.loopback, Logger: j.cfg.Logger,
		ReceiveBuffer: 1 << 20, Interceptors: subscriberInterceptors}
	if j.maxLayer != nil {
		cc.OnTrack = func(t *client.RemoteTrack) { m.capTrack(ctx, t, j.maxLayer) }
	}
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	c, err := client.Dial(dctx, cc)
	if err != nil {
		m.joinErr = fmt.Errorf("join: %w", err)
		return
	}
	m.c = c
	m.cl.Store(c)
	if m.pub, err = c.Publish(dctx, client.PublishOptions{Audio: true, Video: true, Simulcast: j.cfg.Simulcast, VideoBitrate: j.cfg.VideoBitrate}); err != nil {
		m.joinErr = fmt.Errorf("publish: %w", err)
		return
	}
	var want []string
	for _, e := range earlier {
		if e.joinErr == nil && e.c != nil {
			want = append(want, e.c.Joined().Participant.ID)
		}
	}
	for !publishing(c) || len(missing(c, want)) > 0 {
		if err := sleep(dctx, pollEvery); err != nil {
			m.joinErr = fmt.Errorf("joined, but after %v publishing=%v and missing %v: %w", time.Since(start).Round(time.Millisecond), publishing(c), missing(c, want), err)
			return
		}
	}
	if len(want) > 0 {
		m.joinTime, m.timed = lastFirst(c, want).Sub(start), true
	}
}

// publishing reports whether c's publish connection is up.
func publishing(c *client.Client) bool {
	return c.PublishPeerConnection().ConnectionState() == webrtc.PeerConnectionStateConnected
}

// missing returns the "sender/kind" of want's audio and video that c has
// not received a packet of yet.
func missing(c *client.Client, want []string) []string {
	got := map[string]bool{}
	for _, t := range c.RemoteTracks() {
		if t.Stats().Packets > 0 {
			got[t.ParticipantID+"/"+t.Kind.String()] = true
		}
	}
	var out []string
	for _, id := range want {
		for _, k := range []string{"audio", "video"} {
			if !got[id+"/"+k] {
				out = append(out, id+"/"+k)
			}
		}
	}
	return out
}

// lastFirst is when the last of want's tracks delivered its first packet.
func lastFirst(c *client.Client, want []string) time.Time {
	ids := map[string]bool{}
	for _, id := range want {
		ids[id] = true
	}
	var last time.Time
	for _, t := range c.RemoteTracks() {
		if st := t.Stats(); ids[t.ParticipantID] && st.FirstAt.After(last) {
			last = st.FirstAt
		}
	}
	return last
}

// capTrack caps a received video at the grid's layer, once.
func (m *member) capTrack(ctx context.Context, t *client.RemoteTrack, maxLayer *int) {
	c := m.cl.Load()
	if c == nil || t.Kind != webrtc.RTPCodecTypeVideo || t.ID == "" {
		return
	}
	m.mu.Lock()
	done := m.capped[t.ID]
	if !done {
		if m.capped == nil {
			m.capped = map[string]bool{}
		}
		m.capped[t.ID] = true
	}
	m.mu.Unlock()
	if done {
		return
	}
	if err := c.SetQuality(ctx, protocol.Quality{TrackID: t.ID, MaxLayer: maxLayer}); err != nil {
		m.mu.Lock()
		delete(m.capped, t.ID) // try again on the next round
		m.mu.Unlock()
	}
}

// steer plays the browser's part in choosing simulcast layers until ctx
// ends: every second each participant caps every video it receives (those
// whose track arrived before its client was known are caught here) and
// reports its receive estimate.
func steer(ctx context.Context, members []*member, maxLayer *int) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for _, m := range members {
			if maxLayer != nil {
				for _, t := range m.c.RemoteTracks() {
					m.capTrack(ctx, t, maxLayer)
				}
			}
			_ = m.c.SendREMB(receiverEstimate) // fails only before the first track
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// awaitMesh waits until every member that joined receives the audio and
// video of every other member of its room that joined, each video at
// layer when layer ≥ 0 (simulcast); those that do not by the deadline are
// marked failed.
func awaitMesh(ctx context.Context, rooms []*room, layer int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		incomplete := 0
		for _, r := range rooms {
			for _, m := range r.live() {
				if meshProblem(r, m, layer) != "" {
					incomplete++
				}
			}
		}
		if incomplete == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, 10*pollEvery); err != nil {
			return err
		}
	}
	for _, r := range rooms {
		for _, m := range r.live() {
			if p := meshProblem(r, m, layer); p != "" {
				m.joinErr = fmt.Errorf("after %v: %s", timeout, p)
			}
		}
	}
	return nil
}

// meshProblem says what m lacks of the others in r, "" when nothing.
func meshProblem(r *room, m *member, layer int) string {
	if miss := missing(m.c, others(r, m)); len(miss) > 0 {
		return fmt.Sprintf("receives nothing of %v", miss)
	}
	if layer < 0 {
		return ""
	}
	for _, t := range m.c.RemoteTracks() {
		if st := t.Stats(); t.Kind == webrtc.RTPCodecTypeVideo && st.Layer != layer {
			return fmt.Sprintf("receives %s's video at layer %d, not %d", t.ParticipantID, st.Layer, layer)
		}
	}
	return ""
}

// others returns the participant IDs of r's other members that joined.
func others(r *room, m *member) []string {
	var out []string
	for _, o := range r.live() {
		if o != m {
			out = append(out, o.c.Joined().Participant.ID)
		}
	}
	return out
}

// joinTimes returns every timed join.
func joinTimes(rooms []*room) []time.Duration {
	var out []time.Duration
	for _, r := range rooms {
		for _, m := range r.members {
			if m.timed && m.joinErr == nil {
				out = append(out, m.joinTime)
			}
		}
	}
	return out
}

func closeRooms(rooms []*room) {
	var wg sync.WaitGroup
	for _, r := range rooms {
		wg.Add(1)
		go func(r *room) {
			defer wg.Done()
			closeAll(r.parts())
		}(r)
	}
	wg.Wait()
}

// fill computes the summary from the window's deltas, one per room.
func (s *RoomsSummary) fill(rooms []*room, ds []delta, cpu cpuDelta) {
	var all delta
	offset := 0
	for i, r := range rooms {
		rs := RoomSummary{Room: r.index + 1, SessionID: r.session.String()}
		rs.Stats = statsOf(&ds[i], cpu.elapsed, joinTimes(rooms[i:i+1]))
		for k, m := range r.members {
			rs.Members = append(rs.Members, memberSummary(m, k, &ds[i]))
			if m.joinErr != nil {
				rs.Failed++
			}
		}
		s.PerRoom = append(s.PerRoom, rs)
		all.merge(&ds[i], offset)
		offset += len(r.members)
	}
	s.DurationS = cpu.elapsed.Seconds()
	s.Stats = statsOf(&all, cpu.elapsed, joinTimes(rooms))
	s.LoadGeneratorCPUPct = cpu.selfPct()
	if cpu.serverValid && s.PacketsReceived > 0 {
		us := cpu.perPacket(s.PacketsReceived)
		s1000 := us / 1000
		total := cpu.serverPct()
		perHearing := total / float64(len(rooms))
		s.ServerCPUMicrosPerPacket, s.ServerCPUSecondsPer1000 = &us, &s1000
		s.ServerCPUPct, s.ServerCPUPctPerHearing = &total, &perHearing
		if perHearing > 0 {
			perCore := 100 / perHearing
			s.HearingsPerServerCore = &perCore
		}
	}
}

// statsOf sums one delta (a room, or all of them).
func statsOf(d *delta, elapsed time.Duration, joins []time.Duration) Stats {
	t := d.totals()
	st := Stats{
		PacketsSent: d.sentTotal(), PacketsReceived: t.received, LossPct: t.lossPct(), JitterMs: t.jitterMs(),
		LatencyMsP50: ms(d.latency.Quantile(0.5)), LatencyMsP99: ms(d.latency.Quantile(0.99)),
	}
	if elapsed > 0 {
		st.ForwardedPerSecond = float64(t.received) / elapsed.Seconds()
	}
	for _, f := range d.flows {
		for l := range st.VideoLayers {
			st.VideoLayers[l] += f.layers[l]
		}
	}
	if len(joins) > 0 {
		q := client.Quantiles(joins, 0.5, 0.99)
		st.JoinMsP50, st.JoinMsP99 = ms(q[0]), ms(q[1])
	}
	return st
}

// memberSummary says what member k of a room received in the window.
func memberSummary(m *member, k int, d *delta) MemberSummary {
	ms := MemberSummary{Role: m.role}
	if m.c != nil {
		ms.ParticipantID = m.c.Joined().Participant.ID
	}
	if m.joinErr != nil {
		ms.Error = m.joinErr.Error()
	}
	if m.timed && m.joinErr == nil {
		j := float64(m.joinTime) / float64(time.Millisecond)
		ms.JoinMs = &j
	}
	var t flow
	for key, f := range d.flows {
		if key.receiver != k || f.received == 0 {
			continue
		}
		t.received += f.received
		t.expected += f.expected
		switch key.kind {
		case "audio":
			ms.AudioFrom = append(ms.AudioFrom, key.sender)
		case "video":
			ms.VideoFrom = append(ms.VideoFrom, key.sender)
		}
	}
	sort.Strings(ms.AudioFrom)
	sort.Strings(ms.VideoFrom)
	ms.LossPct = t.lossPct()
	return ms
}
