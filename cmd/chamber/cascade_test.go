package main

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/client"
	"github.com/chamber-court/chamber/internal/wait"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// TestCascade is a public gallery spread over two nodes: with
// --gallery-node-threshold 2, the room's home serves two observers and
// redirects the others to the other node, which receives the judge's
// tracks once over its relay — every layer of the judge's simulcast
// camera, each once — and fans them out, each edge observer getting the
// layer its preference and bandwidth allow.
func TestCascade(t *testing.T) {
	tc := newTestClusterOf(t, []string{"a", "b"}, "--gallery-node-threshold", "2")
	a := tc.node("a")
	pg := []string{"--database", tc.dsn}
	clerk := addStaff(t, tc.dirs["a"], pg, "Clerk Kask", "clerk")
	judgeStaff := addStaff(t, tc.dirs["a"], pg, "Judge Saar", "judge")
	var sess struct{ ID string }
	call(t, "POST", a.URL+"/api/v1/sessions", clerk.Token, map[string]any{"kind": "hearing", "title": "Tamm v Kask", "case_number": "2-26-15"}, 201, &sess)
	assign(t, a.URL, sess.ID, clerk.Token, judgeStaff.ID)
	je := enter(t, a.URL, sess.ID, judgeStaff.Token)
	judge := joinWith(t, &member{t: t, name: "judge", id: je.Participant.ID, token: je.Ticket, sessionID: sess.ID,
		urls: tc.urls, publish: true, simulcast: true}, false)
	home, _ := tc.home(sess.ID)
	edge := otherThanOf(tc, home)
	t.Logf("home %s, edge %s", home, edge)

	// Five observers, each joining through the home node; the last follows
	// its redirect as a browser does, on the home node's origin, which
	// passes the connection on to the edge.
	var observers []*member
	for i := range 5 {
		var inv struct {
			ParticipantID string `json:"participant_id"`
			Token         string
		}
		name := "Observer " + string(rune('A'+i))
		call(t, "POST", a.URL+"/api/v1/sessions/"+sess.ID+"/invitations", clerk.Token, map[string]any{"name": name, "role": "observer"}, 201, &inv)
		m := &member{t: t, name: name, id: inv.ParticipantID, token: inv.Token, sessionID: sess.ID, urls: tc.urls,
			first: index(home), stop: make(chan struct{}), done: make(chan struct{}), inMain: make(chan struct{}), sameOrigin: i == 4}
		if !m.connect() {
			t.Fatalf("%s could not join", name)
		}
		// Observers wait to be let in, wherever they are served.
		call(t, "POST", a.URL+"/api/v1/sessions/"+sess.ID+"/participants/"+inv.ParticipantID+"/admit", judgeStaff.Token, nil, 200, nil)
		go m.run()
		t.Cleanup(func() {
			close(m.stop)
			<-m.done
		})
		observers = append(observers, m)
	}
	onEdge := 0
	edgeURL := strings.TrimPrefix(tc.node(edge).URL, "http")
	homeURL := strings.TrimPrefix(tc.node(home).URL, "http")
	for _, o := range observers[:4] {
		o.mu.Lock()
		u := o.c.URL()
		o.mu.Unlock()
		if strings.Contains(u, edgeURL) && strings.Contains(u, "edge=") {
			onEdge++
		}
	}
	if onEdge < 1 {
		t.Fatalf("%d of the first four observers were placed on the edge node, want at least 1 (threshold 2)", onEdge)
	}
	// The fifth joined again on the home node's origin with its ticket: the
	// home passed it on, and the edge serves it.
	browserLike := observers[4]
	browserLike.mu.Lock()
	u := browserLike.c.URL()
	browserLike.mu.Unlock()
	if !strings.Contains(u, homeURL) || !strings.Contains(u, "edge=") {
		t.Fatalf("the browser-like observer joined at %s, want the home node's origin with a placement ticket", u)
	}
	mustEventually(t, "the edge serving every observer placed there", func() bool {
		return metric(t, tc.node(edge), "chamber_edge_observers") == float64(onEdge+1)
	})
	t.Logf("%d of 5 observers redirected to the edge node, one of them through the home's origin", onEdge+1)

	// Nobody outside the cluster opens a relay or picks an edge: the
	// relay endpoint wants a node's signature, the edge a home's ticket.
	for _, u := range []string{
		tc.node(home).URL + "/internal/v1/sessions/" + sess.ID + "/relay",
		tc.node(edge).URL + "/api/v1/sessions/" + sess.ID + "/signal?edge=bm90LWEtdGlja2V0.00",
	} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET %s without a node's signature or ticket: %d, want 401", u, resp.StatusCode)
		}
	}

	// Every observer receives the judge, wherever it is served.
	var paths []flows
	for _, o := range observers {
		paths = append(paths, flows{o, judge, "camera"}, flows{o, judge, "microphone"})
	}
	took := allFlowing(t, paths, 30*time.Second)
	t.Logf("media flowing to all five observers %.1f s after the last join", took.Seconds())

	// The home serves one relay for the room, however many observers the
	// edge has; the edge receives each of the judge's streams once: the
	// microphone and the camera's three layers.
	if n := metric(t, tc.node(home), regexp.QuoteMeta(`chamber_cascade_relays{direction="out"}`)); n != 1 {
		t.Fatalf("home node: %v relay connections, want 1", n)
	}
	if n := metric(t, tc.node(home), regexp.QuoteMeta(`chamber_cascade_tracks{direction="out"}`)); n != 4 {
		t.Fatalf("home node: %v streams sent to edges, want 4 (the microphone, the camera's 3 layers)", n)
	}
	// A layer is received once its first packets have crossed.
	mustEventually(t, "the edge receiving the microphone and the camera's 3 layers", func() bool {
		return metric(t, tc.node(edge), regexp.QuoteMeta(`chamber_cascade_tracks{direction="in"}`)) == 4
	})
	if n := metric(t, tc.node(home), regexp.QuoteMeta(`chamber_cascade_tracks{direction="out"}`)); n != 4 {
		t.Fatalf("home node: %v streams sent to edges, want still 4", n)
	}

	// The edge allocates the layers among its own observers: one asks for
	// the lowest layer and gets it, another keeps the top one.
	lowObs := edgeLayers(t, observers, edgeURL)

	// The relay's reception is in the edge's metrics (every 2 s).
	mustEventually(t, "relay bytes counted at the edge", func() bool {
		return metric(t, tc.node(edge), "chamber_cascade_relay_bytes_total") > 0 &&
			metric(t, tc.node(edge), "chamber_cascade_relay_packets_total") > 0
	})

	// A keyframe request of an edge observer goes up the relay, for the
	// layer it receives (the lowest), and reaches the judge.
	edgeObs := lowObs
	judge.mu.Lock()
	pub := judge.pub
	judge.mu.Unlock()
	edgePLI := metric(t, tc.node(edge), "chamber_pli_total")
	before := pub.LayerKeyframeRequests(0)
	// A PLI every 600 ms: the relay passes at most one per 500 ms per layer.
	reached := wait.WithinEvery(15*time.Second, 600*time.Millisecond, func() bool {
		edgeObs.mu.Lock()
		c, tracks := edgeObs.c, edgeObs.tracks
		edgeObs.mu.Unlock()
		for _, rt := range tracks {
			if rt.Source == "camera" {
				if err := c.SendPLI(rt); err != nil {
					t.Fatal(err)
				}
			}
		}
		return metric(t, tc.node(edge), "chamber_pli_total") > edgePLI && pub.LayerKeyframeRequests(0) > before
	})
	if !reached {
		t.Fatalf("an edge observer's PLI did not reach the publisher's layer 0: edge PLIs %v→%v, publisher's requests for layer 0 %d→%d",
			edgePLI, metric(t, tc.node(edge), "chamber_pli_total"), before, pub.LayerKeyframeRequests(0))
	}

	// Closing the session, through the edge node, ends every observer's
	// connection, at the home and at the edge; the close is the home's, so
	// the journal names whom it disconnected there.
	call(t, "POST", tc.node(edge).URL+"/api/v1/sessions/"+sess.ID+"/close", judgeStaff.Token, nil, 200, nil)
	type journalEntry struct {
		Action  string
		Details struct{ Disconnected []string }
	}
	var entries []journalEntry
	call(t, "GET", a.URL+"/api/v1/sessions/"+sess.ID+"/journal", judgeStaff.Token, nil, 200, &entries)
	i := slices.IndexFunc(entries, func(e journalEntry) bool { return e.Action == "session.closed" })
	if i < 0 || !slices.Contains(entries[i].Details.Disconnected, je.Participant.ID) {
		t.Errorf("journal %+v: want session.closed disconnecting the judge %s", entries, je.Participant.ID)
	}
	for _, o := range observers {
		o.mu.Lock()
		c := o.c
		o.mu.Unlock()
		select {
		case <-c.Done():
		case <-time.After(15 * time.Second):
			t.Fatalf("%s (at %s) still connected after the session closed", o.name, c.URL())
		}
		if got := c.ByeReason(); got != "session_closed" {
			t.Errorf("%s: bye %q, want session_closed", o.name, got)
		}
	}
}

// otherThanOf is the first node of tc that is not id.
func otherThanOf(tc *testCluster, id string) string {
	for _, n := range tc.ids {
		if n != id {
			return n
		}
	}
	return ""
}

// edgeLayers has one edge observer ask for the judge's lowest camera
// layer and another keep the top one (the default budget fits it), and
// checks what each receives: the publisher's layer (the synthetic
// payload's trailer) and its bitrate. It returns the observer on the
// lowest layer.
func edgeLayers(t *testing.T, observers []*member, edgeURL string) *member {
	t.Helper()
	var onEdge []*member
	for _, o := range observers {
		o.mu.Lock()
		if u := o.c.URL(); strings.Contains(u, edgeURL) && strings.Contains(u, "edge=") {
			onEdge = append(onEdge, o)
		}
		o.mu.Unlock()
	}
	camera := func(o *member) (*client.Client, *client.RemoteTrack) {
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, rt := range o.tracks {
			if rt.Source == "camera" {
				return o.c, rt
			}
		}
		return o.c, nil
	}
	lowC, low := camera(onEdge[0])
	_, top := camera(onEdge[1])
	if low == nil || top == nil {
		t.Fatal("edge observers without the judge's camera")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lowest := 0
	if err := lowC.SetQuality(ctx, protocol.Quality{TrackID: low.ID, MaxLayer: &lowest}); err != nil {
		t.Fatal(err)
	}
	on := func(rt *client.RemoteTrack, layer int) func() bool {
		start := rt.Stats().Layers[layer]
		return func() bool {
			st := rt.Stats()
			return st.Layer == layer && st.Layers[layer] >= start+30
		}
	}
	if !wait.Within(20*time.Second, on(low, 0)) {
		t.Fatalf("%s (max_layer 0) receives layer %d, want 0", onEdge[0].name, low.Stats().Layer)
	}
	if !wait.Within(20*time.Second, on(top, 2)) {
		t.Fatalf("%s receives layer %d, want the top one (2)", onEdge[1].name, top.Stats().Layer)
	}
	// Over the same stretch, the top layer brings several times the bytes
	// of the lowest (600 against 60 kbit/s).
	lowFrom, topFrom := low.Stats(), top.Stats()
	if !wait.Within(20*time.Second, func() bool { return low.Stats().Packets >= lowFrom.Packets+50 }) {
		t.Fatalf("%s: the lowest layer stopped", onEdge[0].name)
	}
	lowTo, topTo := low.Stats(), top.Stats()
	lowBytes, topBytes := lowTo.Bytes-lowFrom.Bytes, topTo.Bytes-topFrom.Bytes
	t.Logf("edge observers over one stretch: layer 0 %d bytes, layer 2 %d bytes", lowBytes, topBytes)
	if topBytes < 3*lowBytes {
		t.Fatalf("top layer %d bytes against the lowest layer's %d over the same stretch: not the layers' bitrates", topBytes, lowBytes)
	}
	if lowTo.Layers[1]+lowTo.Layers[2] > lowFrom.Layers[1]+lowFrom.Layers[2] {
		t.Fatalf("%s (max_layer 0) received higher layers after its switch: %v", onEdge[0].name, lowTo.Layers)
	}
	return onEdge[0]
}
