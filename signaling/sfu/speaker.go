package sfu

import (
	"time"

	"github.com/chamber-court/chamber/signaling/protocol"
)

// Active-speaker detection from the audio-level header extension (RFC 6464).
const (
	speakerTick      = 200 * time.Millisecond
	speakerThreshold = 127 - 55 // louder than -55 dBov counts as speech
	speakerMargin    = 6        // dB a challenger must be louder by …
	speakerHold      = 2        // … for this many ticks in a row
	speakerSmoothing = 0.4      // weight of the newest tick in the moving average
)

// speakerDetector names the loudest speaker of a room, with hysteresis so
// that the active speaker does not flicker between people talking over each
// other or on a cough.
type speakerDetector struct {
	room    *Room
	smooth  map[*UpTrack]float64
	current *UpTrack
	leader  *UpTrack // challenger and how many ticks it has led
	leads   int
	tracks  []*UpTrack
}

func newSpeakerDetector(r *Room) *speakerDetector {
	return &speakerDetector{room: r, smooth: make(map[*UpTrack]float64)}
}

func (d *speakerDetector) run(done <-chan struct{}) {
	t := time.NewTicker(speakerTick)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if ev, ok := d.tick(); ok {
			d.room.broadcast(protocol.TypeActiveSpeaker, ev)
			if sr, ok := d.room.recorder.(SpeakerRecorder); ok {
				sr.ActiveSpeaker(d.current.peer.participant, ev.TrackID)
			}
		}
	}
}

// tick folds in the levels since the last tick and returns an event when
// the active speaker changes.
func (d *speakerDetector) tick() (protocol.ActiveSpeaker, bool) {
	d.tracks = d.room.audioTracks(d.tracks[:0])
	seen := make(map[*UpTrack]bool, len(d.tracks))
	var best *UpTrack
	for _, t := range d.tracks {
		seen[t] = true
		lvl := t.level.take()
		s := d.smooth[t]
		if lvl < 0 {
			lvl = 0 // no packets (muted, DTX): silence
		}
		s = s*(1-speakerSmoothing) + float64(lvl)*speakerSmoothing
		d.smooth[t] = s
		if best == nil || s > d.smooth[best] {
			best = t
		}
	}
	for t := range d.smooth {
		if !seen[t] {
			delete(d.smooth, t)
			if d.current == t {
				d.current = nil
			}
		}
	}
	if best == nil || d.smooth[best] < speakerThreshold || best == d.current {
		d.leader, d.leads = nil, 0
		return protocol.ActiveSpeaker{}, false
	}
	if d.current != nil && d.smooth[best] < d.smooth[d.current]+speakerMargin && d.smooth[d.current] >= speakerThreshold {
		d.leader, d.leads = nil, 0
		return protocol.ActiveSpeaker{}, false
	}
	if d.leader != best {
		d.leader, d.leads = best, 0
	}
	d.leads++
	if d.current != nil && d.leads < speakerHold {
		return protocol.ActiveSpeaker{}, false
	}
	d.current, d.leader, d.leads = best, nil, 0
	return protocol.ActiveSpeaker{
		ParticipantID: best.peer.participant.String(),
		ConnectionID:  best.peer.conn.String(),
		TrackID:       best.id,
		Level:         int(d.smooth[best]),
	}, true
}
