package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/wait"
)

// TestCascade is a public gallery spread over two nodes: with
// --gallery-node-threshold 2, the room's home serves two observers and
// redirects the others to the other node, which receives the judge's
// tracks once over its relay and fans them out.
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
	judge := joinMember(t, tc, sess.ID, "judge", je.Participant.ID, je.Ticket, 0)
	home, _ := tc.home(sess.ID)
	edge := otherThanOf(tc, home)
	t.Logf("home %s, edge %s", home, edge)

	// Five observers, each joining through the home node.
	var observers []*member
	for i := range 5 {
		var inv struct {
			ParticipantID string `json:"participant_id"`
			Token         string
		}
		name := "Observer " + string(rune('A'+i))
		call(t, "POST", a.URL+"/api/v1/sessions/"+sess.ID+"/invitations", clerk.Token, map[string]any{"name": name, "role": "observer"}, 201, &inv)
		m := &member{t: t, name: name, id: inv.ParticipantID, token: inv.Token, sessionID: sess.ID, urls: tc.urls,
			first: index(home), stop: make(chan struct{}), done: make(chan struct{}), inMain: make(chan struct{})}
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
	for _, o := range observers {
		o.mu.Lock()
		u := o.c.URL()
		o.mu.Unlock()
		if strings.Contains(u, edgeURL) && strings.Contains(u, "edge=") {
			onEdge++
		}
	}
	if onEdge < 2 {
		t.Fatalf("%d observers were placed on the edge node, want at least 2 (threshold 2 of 5)", onEdge)
	}
	t.Logf("%d of 5 observers redirected to the edge node", onEdge)

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
	// edge has; the edge receives each of the judge's two tracks once.
	if n := metric(t, tc.node(home), regexp.QuoteMeta(`chamber_cascade_relays{direction="out"}`)); n != 1 {
		t.Fatalf("home node: %v relay connections, want 1", n)
	}
	if n := metric(t, tc.node(home), regexp.QuoteMeta(`chamber_cascade_tracks{direction="out"}`)); n != 2 {
		t.Fatalf("home node: %v tracks sent to edges, want 2", n)
	}
	if n := metric(t, tc.node(edge), regexp.QuoteMeta(`chamber_cascade_tracks{direction="in"}`)); n != 2 {
		t.Fatalf("edge node: %v tracks received from the home, want 2", n)
	}

	// The relay's reception is in the edge's metrics (every 2 s).
	mustEventually(t, "relay bytes counted at the edge", func() bool {
		return metric(t, tc.node(edge), "chamber_cascade_relay_bytes_total") > 0 &&
			metric(t, tc.node(edge), "chamber_cascade_relay_packets_total") > 0
	})

	// A keyframe request of an edge observer goes up the relay and reaches
	// the judge.
	var edgeObs *member
	for _, o := range observers {
		o.mu.Lock()
		if strings.Contains(o.c.URL(), "edge=") {
			edgeObs = o
		}
		o.mu.Unlock()
	}
	judge.mu.Lock()
	pub := judge.pub
	judge.mu.Unlock()
	edgePLI := metric(t, tc.node(edge), "chamber_pli_total")
	before := pub.KeyframeRequests()
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
		return metric(t, tc.node(edge), "chamber_pli_total") > edgePLI && pub.KeyframeRequests() > before
	})
	if !reached {
		t.Fatalf("an edge observer's PLI did not reach the publisher: edge PLIs %v→%v, publisher's requests %d→%d",
			edgePLI, metric(t, tc.node(edge), "chamber_pli_total"), before, pub.KeyframeRequests())
	}

	// Closing the session, through the edge node, ends every observer's
	// connection, at the home and at the edge.
	call(t, "POST", tc.node(edge).URL+"/api/v1/sessions/"+sess.ID+"/close", judgeStaff.Token, nil, 200, nil)
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
