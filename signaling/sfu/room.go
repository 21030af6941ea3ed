package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/google/uuid"
)

// RoomConfig configures a Room.
type RoomConfig struct {
	ID uuid.UUID
	// Permissions decides who publishes and who receives whom; nil lets everyone
	// publish and receive everyone.
	Permissions Permissions
	// Tapper, when set, attaches taps to the tracks it wants recorded.
	Tapper Tapper
	// NoSpeaker turns the active speaker detector off: an edge node's
	// room relays the home's announcements instead.
	NoSpeaker bool
}

// Room is the media side of one session: the peers connected to it and the
// tracks they publish.
type Room struct {
	sfu      *SFU
	id       uuid.UUID
	log      *slog.Logger
	policy   Permissions
	recorder Tapper

	mu     sync.Mutex
	peers  map[uuid.UUID]*Peer // by connection ID
	tracks map[string]*UpTrack // by track ID
	closed bool

	speaker *speakerDetector
	done    chan struct{}
	wg      sync.WaitGroup
}

// ErrDuplicate is returned when joining twice with the same connection ID.
var ErrDuplicate = errors.New("sfu: duplicate connection")

// NewRoom creates an empty room.
func (s *SFU) NewRoom(cfg RoomConfig) (*Room, error) {
	if cfg.Permissions == nil {
		cfg.Permissions = openPolicy{}
	}
	r := &Room{
		sfu:      s,
		id:       cfg.ID,
		log:      s.log.With("room", cfg.ID),
		policy:   cfg.Permissions,
		recorder: cfg.Tapper,
		peers:    make(map[uuid.UUID]*Peer),
		tracks:   make(map[string]*UpTrack),
		done:     make(chan struct{}),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.rooms[r] = struct{}{}
	s.mu.Unlock()
	metricRooms.Inc()
	r.speaker = newSpeakerDetector(r)
	if cfg.NoSpeaker {
		return r, nil
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.speaker.run(r.done)
	}()
	return r, nil
}

// ID returns the room's ID.
func (r *Room) ID() uuid.UUID { return r.id }

// Close closes every peer of the room and releases the room.
func (r *Room) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	peers := make([]*Peer, 0, len(r.peers))
	for _, p := range r.peers {
		peers = append(peers, p)
	}
	r.mu.Unlock()
	for _, p := range peers {
		p.Close()
	}
	close(r.done)
	r.wg.Wait()
	r.sfu.mu.Lock()
	delete(r.sfu.rooms, r)
	r.sfu.mu.Unlock()
	metricRooms.Dec()
}

// Len returns the number of peers in the room.
func (r *Room) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.peers)
}

// Reconcile re-evaluates the Permissions and the Tapper for every track and
// peer of the room: down-tracks the policy no longer allows are removed,
// newly allowed ones are added, and taps are opened or closed.
func (r *Room) Reconcile() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	for _, t := range r.tracks {
		r.reconcileTrackLocked(t)
	}
}

// reconcileTrackLocked brings one track's subscribers and tap in line with
// the policy. r.mu is held.
func (r *Room) reconcileTrackLocked(t *UpTrack) {
	pub := t.peer.participant
	allowed := r.policy.MayPublish(pub, t.source)
	t.allowed.Store(allowed)
	for _, p := range r.peers {
		if p == t.peer {
			continue
		}
		want := allowed && p.participant != pub && r.policy.MayForward(p.participant, pub, t.source)
		have := p.hasDown(t)
		switch {
		case want && !have:
			p.addDown(t)
		case !want && have:
			p.removeDown(t)
		}
	}
	wantTap := allowed && r.recorder != nil && r.recorder.MayRecord(pub, t.source)
	t.setRecording(wantTap, r.recorder)
}

// reconcilePeerLocked adds to a newly joined peer every track it may receive.
func (r *Room) reconcilePeerLocked(p *Peer) {
	for _, t := range r.tracks {
		if t.peer == p || t.peer.participant == p.participant || !t.allowed.Load() {
			continue
		}
		if r.policy.MayForward(p.participant, t.peer.participant, t.source) && !p.hasDown(t) {
			p.addDown(t)
		}
	}
}

// publish adds a track that has received its first packet.
func (r *Room) publish(t *UpTrack) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if _, ok := r.peers[t.peer.conn]; !ok {
		return ErrClosed
	}
	r.tracks[t.id] = t
	metricTracks.WithLabelValues(t.kind.String(), string(t.source)).Inc()
	r.log.Info("track published", "participant", t.peer.participant, "track", t.id, "source", t.source, "codec", t.codec.MimeType, "layers", t.rids)
	r.reconcileTrackLocked(t)
	return nil
}

// unpublish removes a track and every down-track fed by it.
func (r *Room) unpublish(t *UpTrack) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.tracks[t.id]; !ok {
		return
	}
	delete(r.tracks, t.id)
	metricTracks.WithLabelValues(t.kind.String(), string(t.source)).Dec()
	for _, p := range r.peers {
		if p.hasDown(t) {
			p.removeDown(t)
		}
	}
	t.setRecording(false, nil)
	r.log.Info("track unpublished", "participant", t.peer.participant, "track", t.id)
}

// leave removes a peer and its tracks.
func (r *Room) leave(p *Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peers[p.conn] != p {
		return
	}
	delete(r.peers, p.conn)
	if !p.ghost {
		metricPeers.Dec()
	}
	for id, t := range r.tracks {
		if t.peer != p {
			continue
		}
		delete(r.tracks, id)
		metricTracks.WithLabelValues(t.kind.String(), string(t.source)).Dec()
		for _, q := range r.peers {
			if q.hasDown(t) {
				q.removeDown(t)
			}
		}
		t.setRecording(false, nil)
	}
}

// broadcast sends a message to every peer of the room.
func (r *Room) broadcast(typ string, data any) {
	r.mu.Lock()
	peers := make([]*Peer, 0, len(r.peers))
	for _, p := range r.peers {
		peers = append(peers, p)
	}
	r.mu.Unlock()
	for _, p := range peers {
		p.signal(typ, data)
	}
}

// audioTracks returns the room's allowed audio tracks, for the speaker detector.
func (r *Room) audioTracks(dst []*UpTrack) []*UpTrack {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.tracks {
		if t.ck == codecOpus && t.allowed.Load() {
			dst = append(dst, t)
		}
	}
	return dst
}

func (r *Room) String() string { return fmt.Sprintf("room %s", r.id) }
