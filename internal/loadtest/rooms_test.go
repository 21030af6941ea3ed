package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// admitAll is a Provisioner for the in-process server of startServer,
// which admits the token "good" into any session: it makes fresh session
// IDs and remembers what it was asked for.
type admitAll struct {
	mu       sync.Mutex
	hearings []uuid.UUID
	roles    map[uuid.UUID][]string
}

func (a *admitAll) CreateHearing(context.Context, string) (uuid.UUID, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := uuid.New()
	a.hearings = append(a.hearings, id)
	return id, nil
}

func (a *admitAll) AddParticipant(_ context.Context, session uuid.UUID, _, role string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.roles == nil {
		a.roles = map[uuid.UUID][]string{}
	}
	a.roles[session] = append(a.roles[session], role)
	return "good", nil
}

// TestRunRoomsEveryoneReceivesEveryone: two hearings of three, everyone
// publishing; every participant receives the audio and video of exactly
// the others of its own room during the window, and the summary carries
// the figures per room and in total.
func TestRunRoomsEveryoneReceivesEveryone(t *testing.T) {
	url, pid := startSignaling(t)
	prov := &admitAll{}
	cfg := Config{URL: url, Provisioner: prov, Rooms: 2, Participants: 3,
		Duration: 3 * time.Second, Warmup: time.Second, VideoBitrate: 300_000, ServerPID: pid}
	var progress bytes.Buffer
	sum, err := RunRooms(context.Background(), cfg, &progress)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	if sum.ParticipantsFailed != 0 || len(sum.PerRoom) != 2 || len(prov.hearings) != 2 {
		t.Fatalf("failed %d, rooms %d, hearings %d", sum.ParticipantsFailed, len(sum.PerRoom), len(prov.hearings))
	}
	seen := map[string]bool{}
	for i, r := range sum.PerRoom {
		if r.SessionID != prov.hearings[i].String() || len(r.Members) != 3 {
			t.Fatalf("room %d: session %s (want %s), %d members", r.Room, r.SessionID, prov.hearings[i], len(r.Members))
		}
		if got := prov.roles[prov.hearings[i]]; !slices.Equal(got, []string{"party", "counsel", "witness"}) {
			t.Errorf("room %d invited %v", r.Room, got)
		}
		for k, m := range r.Members {
			if m.ParticipantID == "" || seen[m.ParticipantID] {
				t.Fatalf("room %d member %d: participant ID %q (empty or seen before)", r.Room, k, m.ParticipantID)
			}
			seen[m.ParticipantID] = true
			var others []string
			for j, o := range r.Members {
				if j != k {
					others = append(others, o.ParticipantID)
				}
			}
			slices.Sort(others)
			if !slices.Equal(m.AudioFrom, others) || !slices.Equal(m.VideoFrom, others) {
				t.Errorf("room %d member %d received audio from %v and video from %v, want both from %v", r.Room, k, m.AudioFrom, m.VideoFrom, others)
			}
			if (k == 0) != (m.JoinMs == nil) || (m.JoinMs != nil && *m.JoinMs <= 0) {
				t.Errorf("room %d member %d: join time %v (the first to enter has none)", r.Room, k, m.JoinMs)
			}
		}
		if r.PacketsReceived == 0 || r.LossPct > 1 || r.JoinMsP50 <= 0 || r.LatencyMsP99 < r.LatencyMsP50 || r.LatencyMsP50 <= 0 {
			t.Errorf("room %d: %+v", r.Room, r.Stats)
		}
	}
	if sum.PacketsReceived != sum.PerRoom[0].PacketsReceived+sum.PerRoom[1].PacketsReceived || sum.LossPct > 1 || sum.JitterMs <= 0 ||
		sum.VideoLayers[0] == 0 || sum.VideoLayers[1]+sum.VideoLayers[2] != 0 {
		t.Errorf("totals: %+v", sum.Stats)
	}
	if sum.ServerCPUMicrosPerPacket == nil || *sum.ServerCPUMicrosPerPacket <= 0 || sum.ServerCPUPctPerHearing == nil ||
		*sum.ServerCPUPctPerHearing*2 < *sum.ServerCPUPct*0.99 || sum.HearingsPerServerCore == nil || sum.LoadGeneratorCPUPct <= 0 {
		t.Errorf("CPU figures missing or inconsistent: %+v", sum)
	}

	var js bytes.Buffer
	if err := PrintRooms(&js, sum, true); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rooms", "participants", "loss_pct", "latency_ms_p50", "latency_ms_p99", "jitter_ms", "join_ms_p50", "join_ms_p99",
		"server_cpu_us_per_packet", "server_cpu_pct_per_hearing", "hearings_per_server_core", "load_average_before", "per_room"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON summary lacks %q", k)
		}
	}
	var table bytes.Buffer
	if err := PrintRooms(&table, sum, false); err != nil || !strings.Contains(table.String(), "per hearing") || strings.Count(table.String(), "\n") < 15 {
		t.Errorf("table: %v\n%s", err, table.String())
	}
	if !strings.Contains(progress.String(), "load generator CPU") {
		t.Errorf("no progress lines:\n%s", progress.String())
	}
}

// TestRunRoomsSimulcast: in a room of five every video is received at the
// middle layer, as a browser's grid of five tiles caps it, and none at the
// top.
func TestRunRoomsSimulcast(t *testing.T) {
	url, _ := startSignaling(t)
	cfg := Config{URL: url, Provisioner: &admitAll{}, Rooms: 1, Participants: 5, Simulcast: true,
		Duration: 2 * time.Second, Warmup: time.Second, VideoBitrate: 600_000}
	sum, err := RunRooms(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if sum.MaxLayer == nil || *sum.MaxLayer != 1 {
		t.Fatalf("max layer %v, want 1", sum.MaxLayer)
	}
	if sum.VideoLayers[1] == 0 || sum.VideoLayers[2] != 0 {
		t.Errorf("video packets by layer %v: want the middle layer only", sum.VideoLayers)
	}
	for _, m := range sum.PerRoom[0].Members {
		if len(m.AudioFrom) != 4 || len(m.VideoFrom) != 4 {
			t.Errorf("%s received audio from %d and video from %d, want 4", m.ParticipantID, len(m.AudioFrom), len(m.VideoFrom))
		}
	}
}

func TestRunRoomsRefusesWhatItCannotRun(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no provisioner":  {URL: "http://127.0.0.1:1", Rooms: 1, Participants: 2},
		"one participant": {URL: "http://127.0.0.1:1", Rooms: 1, Participants: 1, Provisioner: &admitAll{}},
		"no rooms":        {URL: "http://127.0.0.1:1", Participants: 6, Provisioner: &admitAll{}},
		"bad URL":         {URL: "ftp://x", Rooms: 1, Participants: 2, Provisioner: &admitAll{}},
	} {
		if _, err := RunRooms(context.Background(), cfg, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRoomHelpers(t *testing.T) {
	for p, want := range map[int]int{2: -1, 4: -1, 5: 1, 6: 1, 12: 1} {
		got := -1
		if l := gridMaxLayer(p); l != nil {
			got = *l
		}
		if got != want {
			t.Errorf("gridMaxLayer(%d) = %d, want %d", p, got, want)
		}
	}
	if got := []string{roomRole(0), roomRole(1), roomRole(2), roomRole(3)}; !slices.Equal(got, []string{"party", "counsel", "witness", "party"}) {
		t.Errorf("roles %v", got)
	}
	if got := parseLoadAvg("0.52 1.50 12.34 6/413 10610\n"); got != [3]float64{0.52, 1.5, 12.34} {
		t.Errorf("parseLoadAvg = %v", got)
	}
	if got := parseLoadAvg(""); got != [3]float64{} {
		t.Errorf("parseLoadAvg(\"\") = %v", got)
	}
}
