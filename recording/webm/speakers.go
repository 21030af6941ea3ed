package webm

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"

	"github.com/google/uuid"
)

// Who spoke when. The media server's speaker detector names the loudest
// participant of the room, with hysteresis; the recording keeps each
// change in its manifest (Manifest.Speakers), which is evidence with its
// SHA-256 like the files it describes. Not the journal: a lively hearing
// changes speaker every few seconds, and a journal entry (hash-chained,
// timestamped, exported, read by people) per change would bury what the
// journal is for.
//
// Changes are appended, as they come, to speakers.jsonl in the recording's
// spool directory, so a recording completed by Recover after a crash keeps
// them too. They are written by a goroutine of the recording's own: the
// detector that reports them must never wait for a disk.

const (
	speakersFile = "speakers.jsonl"
	// maxSpeakerChanges bounds a recording's list: more than one change a
	// second for a day. Later changes are counted, not kept.
	maxSpeakerChanges = 100_000
	speakerQueue      = 64
)

// SpeakerChange is a change of the active speaker, AtMs after the
// recording's start. ParticipantID is null when the loudest person is not
// in the recording (someone in a consultation room, whose media is never
// recorded): nobody recorded is speaking.
type SpeakerChange struct {
	AtMs          int64      `json:"at_ms"`
	ParticipantID *uuid.UUID `json:"participant_id"`
}

// speakers keeps a recording's speaker changes; its goroutine owns the
// list and the spool file until done is closed.
type speakers struct {
	ch      chan SpeakerChange
	done    chan struct{}
	list    []SpeakerChange
	dropped int
}

func startSpeakers(dir string, log interface{ Warn(string, ...any) }) *speakers {
	s := &speakers{ch: make(chan SpeakerChange, speakerQueue), done: make(chan struct{})}
	go s.run(filepath.Join(dir, speakersFile), log)
	return s
}

func (s *speakers) run(path string, log interface{ Warn(string, ...any) }) {
	defer close(s.done)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		log.Warn("speaker changes will not survive a crash", "err", err)
	}
	var last *uuid.UUID
	first := true
	for c := range s.ch {
		if !first && sameSpeaker(last, c.ParticipantID) {
			continue
		}
		first, last = false, c.ParticipantID
		if len(s.list) >= maxSpeakerChanges {
			s.dropped++
			continue
		}
		s.list = append(s.list, c)
		if f != nil {
			b, _ := json.Marshal(c)
			if _, err := f.Write(append(b, '\n')); err != nil {
				log.Warn("writing a speaker change to the spool", "err", err)
				f.Close()
				f = nil
			}
		}
	}
	if f != nil {
		if err := f.Sync(); err != nil {
			log.Warn("syncing the speaker changes", "err", err)
		}
		f.Close()
	}
}

func sameSpeaker(a, b *uuid.UUID) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// ActiveSpeaker records that the room's active speaker changed to
// participant, speaking on track trackID. A track this recording does not
// record (a consultation room's) records that nobody recorded speaks. It
// never blocks: a burst beyond the queue is dropped and counted.
func (r *Recording) ActiveSpeaker(participant uuid.UUID, trackID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped.Load() {
		return
	}
	c := SpeakerChange{AtMs: r.now().Milliseconds()}
	if r.audio[trackID] == participant && participant != uuid.Nil {
		c.ParticipantID = &participant
	}
	select {
	case r.speakers.ch <- c:
	default:
		r.speakersLost++
	}
}

// stopSpeakers ends the speakers goroutine's input (r.mu held, stopped
// set).
func (r *Recording) stopSpeakers() {
	close(r.speakers.ch)
}

// speakerList waits for the goroutine that stopSpeakers ended and returns
// what it kept.
func (r *Recording) speakerList() []SpeakerChange {
	<-r.speakers.done
	if n := r.speakers.dropped + r.speakersLost; n > 0 {
		r.log.Warn("speaker changes not kept", "count", n)
	}
	if r.speakers.list == nil {
		return []SpeakerChange{}
	}
	return r.speakers.list
}

// readSpeakers reads a spooled recording's speaker changes; a line cut
// short by a crash ends the list.
func readSpeakers(dir string) ([]SpeakerChange, error) {
	f, err := os.Open(filepath.Join(dir, speakersFile))
	if errors.Is(err, os.ErrNotExist) {
		return []SpeakerChange{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := []SpeakerChange{}
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(out) < maxSpeakerChanges {
		var c SpeakerChange
		if json.Unmarshal(sc.Bytes(), &c) != nil {
			break
		}
		out = append(out, c)
	}
	return out, nil
}
