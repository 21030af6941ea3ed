package webm

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/internal/wait"
)

// TestSpeakers: the active speaker's changes are kept in the manifest with
// their time, a speaker the recording does not hear is "nobody recorded",
// a repeat is kept once; a recording completed by Recover after a crash
// keeps the changes spooled before it.
func TestSpeakers(t *testing.T) {
	dir := sampleMedia(t)
	spool := t.TempDir()
	sink := &dirSink{dir: t.TempDir()}
	clock := &testClock{}
	rec, err := Start(context.Background(), Config{Sink: sink, SessionID: uuid.New(), SpoolDir: spool,
		Logger: testenv.Logger(t), Now: clock.Now, SenderReportWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	alice, bob, outsider := uuid.New(), uuid.New(), uuid.New()
	a, _ := rec.Track(TrackInfo{ParticipantID: alice, StreamID: "a", TrackID: "a-mic", Codec: opusCodec})
	b, _ := rec.Track(TrackInfo{ParticipantID: bob, StreamID: "b", TrackID: "b-mic", Codec: opusCodec})
	if _, err := rec.Track(TrackInfo{ParticipantID: bob, StreamID: "b", TrackID: "b-cam", Codec: vp8Codec}); err != nil {
		t.Fatal(err)
	}
	feed(t, clock, 0, merge([][]timedPacket{opusPackets(t, dir, 0, 1), opusPackets(t, dir, 1, 2)}, []time.Duration{0, 0}), []TrackWriter{a, b})
	for _, c := range []struct {
		at          time.Duration
		participant uuid.UUID
		track       string
	}{
		{500 * time.Millisecond, alice, "a-mic"},
		{900 * time.Millisecond, alice, "a-mic"},     // no change: kept once
		{1200 * time.Millisecond, bob, "b-mic"},      //
		{2000 * time.Millisecond, outsider, "c-mic"}, // in a consultation room
		{2100 * time.Millisecond, bob, "b-cam"},      // not an audio track of the recording
		{3000 * time.Millisecond, alice, "a-mic"},
	} {
		clock.Set(c.at)
		rec.ActiveSpeaker(c.participant, c.track)
	}
	want := []SpeakerChange{{500, &alice}, {1200, &bob}, {2000, nil}, {3000, &alice}}
	// The changes reach the spool as they come: a crash now keeps them.
	spooled := filepath.Join(spool, rec.ID().String(), speakersFile)
	var spooledBytes []byte
	if !wait.Within(10*time.Second, func() bool {
		spooledBytes, _ = os.ReadFile(spooled)
		return strings.Count(string(spooledBytes), "\n") == len(want)
	}) {
		t.Fatalf("spooled speaker changes: %q", spooledBytes)
	}
	crashed := t.TempDir()
	copyTree(t, filepath.Join(spool, rec.ID().String()), filepath.Join(crashed, rec.ID().String()))

	m, err := rec.Stop(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 2 || !slices.EqualFunc(m.Speakers, want, sameChange) {
		t.Errorf("manifest v%d speakers %s, want %s", m.Version, changes(m.Speakers), changes(want))
	}
	rec.ActiveSpeaker(alice, "a-mic") // after the stop: ignored, and no panic

	ms, err := Recover(context.Background(), crashed, &dirSink{dir: t.TempDir()}, testenv.Logger(t))
	if err != nil || len(ms) != 1 {
		t.Fatalf("recover: %v, %v", ms, err)
	}
	if !slices.EqualFunc(ms[0].Speakers, want, sameChange) {
		t.Errorf("recovered speakers %s, want %s", changes(ms[0].Speakers), changes(want))
	}
}

func sameChange(a, b SpeakerChange) bool {
	return a.AtMs == b.AtMs && sameSpeaker(a.ParticipantID, b.ParticipantID)
}

func changes(cs []SpeakerChange) string {
	var s []string
	for _, c := range cs {
		who := "nobody"
		if c.ParticipantID != nil {
			who = c.ParticipantID.String()[:8]
		}
		s = append(s, who+"@"+time.Duration(c.AtMs*int64(time.Millisecond)).String())
	}
	return "[" + strings.Join(s, " ") + "]"
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}
