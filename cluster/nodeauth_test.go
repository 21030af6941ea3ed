package cluster

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/fault"
)

func signed(a *nodeAuth, method, path, node string) *http.Request {
	r := httptest.NewRequest(method, path, nil)
	a.sign(r.Header, method, path, node)
	return r
}

func TestNodeAuthRefusesForgeries(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	at := time.Unix(1_800_000_000, 0)
	a := newNodeAuth(secret)
	a.now = func() time.Time { return at }
	other := newNodeAuth(bytes.Repeat([]byte{8}, 32))
	other.now = a.now
	tests := []struct {
		name string
		req  func() *http.Request
		ok   bool
	}{
		{"valid", func() *http.Request { return signed(a, "GET", "/api/v1/sessions/x/signal", "a") }, true},
		{"header alone (the old proxy header)", func() *http.Request {
			r := httptest.NewRequest("GET", "/api/v1/sessions/x/signal", nil)
			r.Header.Set(ProxiedHeader, "a")
			return r
		}, false},
		{"another secret", func() *http.Request { return signed(other, "GET", "/p", "a") }, false},
		{"node renamed", func() *http.Request {
			r := signed(a, "GET", "/p", "a")
			r.Header.Set(ProxiedHeader, "b")
			return r
		}, false},
		{"path changed", func() *http.Request {
			r := signed(a, "GET", "/p", "a")
			r.URL.Path = "/q"
			return r
		}, false},
		{"method changed", func() *http.Request {
			r := signed(a, "GET", "/p", "a")
			r.Method = "POST"
			return r
		}, false},
		{"too old", func() *http.Request {
			a.now = func() time.Time { return at.Add(-MaxNodeClockSkew - time.Second) }
			defer func() { a.now = func() time.Time { return at } }()
			return signed(a, "GET", "/p", "a")
		}, false},
		{"from the future", func() *http.Request {
			a.now = func() time.Time { return at.Add(MaxNodeClockSkew + time.Second) }
			defer func() { a.now = func() time.Time { return at } }()
			return signed(a, "GET", "/p", "a")
		}, false},
		{"within the skew", func() *http.Request {
			a.now = func() time.Time { return at.Add(-MaxNodeClockSkew + time.Second) }
			defer func() { a.now = func() time.Time { return at } }()
			return signed(a, "GET", "/p", "a")
		}, true},
		{"malformed", func() *http.Request {
			r := signed(a, "GET", "/p", "a")
			r.Header.Set(NodeAuthHeader, "t=1,m=zz")
			return r
		}, false},
		{"MAC truncated", func() *http.Request {
			r := signed(a, "GET", "/p", "a")
			v := r.Header.Get(NodeAuthHeader)
			r.Header.Set(NodeAuthHeader, v[:len(v)-2])
			return r
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node, err := a.verify(tt.req())
			if tt.ok && (err != nil || node != "a") {
				t.Fatalf("refused a valid request: %q, %v", node, err)
			}
			if !tt.ok && !errors.Is(err, errNodeAuth) {
				t.Fatalf("accepted a forged request (node %q, err %v)", node, err)
			}
		})
	}
}

func TestNodeAuthRefusesAReplay(t *testing.T) {
	a := newNodeAuth(bytes.Repeat([]byte{7}, 32))
	r := signed(a, "GET", "/p", "a")
	if _, err := a.verify(r); err != nil {
		t.Fatal(err)
	}
	if _, err := a.verify(r); !errors.Is(err, errNodeAuth) {
		t.Fatalf("a replayed request was accepted: %v", err)
	}
}

func FuzzParseNodeAuth(f *testing.F) {
	f.Add("t=1800000000,n=AAAAAAAAAAAAAAAAAAAAAA,m=" + strings.Repeat("ab", 32))
	f.Add("t=,n=,m=")
	f.Add(",,,=")
	f.Fuzz(func(t *testing.T, v string) {
		ts, nonce, sum, ok := parseNodeAuth(v)
		if ok && (ts == "" || len(nonce) < 16 || len(sum) != 32) {
			t.Fatalf("accepted %q", v)
		}
	})
}

// TestRouterRefusesAForgedProxyHeader: a client claiming to be a node
// (the proxy header, with or without a made-up signature) is refused; the
// same request signed by a node of the cluster is served.
func TestRouterRefusesAForgedProxyHeader(t *testing.T) {
	db, dsn := openDB(t)
	a := newNode(t, db, dsn, "node-a", Load{})
	b := newNode(t, db, dsn, "node-b", Load{})
	if !bytes.Equal(a.auth.Load().secret, b.auth.Load().secret) {
		t.Fatal("two nodes of one database do not share the cluster secret")
	}
	served := 0
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ })
	var failed error
	rt := a.Router(local, nil, func(w http.ResponseWriter, r *http.Request, err error) {
		failed = err
		w.WriteHeader(http.StatusUnauthorized)
	})
	path := "/api/v1/sessions/" + uuid.NewString() + "/signal"
	serve := func(r *http.Request) {
		r.SetPathValue("id", strings.Split(path, "/")[4])
		failed = nil
		rt.ServeHTTP(httptest.NewRecorder(), r)
	}

	forged := httptest.NewRequest("GET", path, nil)
	forged.Header.Set(ProxiedHeader, "node-b")
	serve(forged)
	if served != 0 || fault.KindOf(failed) != fault.Unauthenticated {
		t.Fatalf("forged header: served %d, err %v", served, failed)
	}
	madeUp := httptest.NewRequest("GET", path, nil)
	madeUp.Header.Set(ProxiedHeader, "node-b")
	madeUp.Header.Set(NodeAuthHeader, "t=1,n=AAAAAAAAAAAAAAAAAAAAAA,m="+strings.Repeat("00", 32))
	serve(madeUp)
	if served != 0 || fault.KindOf(failed) != fault.Unauthenticated {
		t.Fatalf("made-up signature: served %d, err %v", served, failed)
	}

	real := httptest.NewRequest("GET", path, nil).WithContext(context.Background())
	b.Sign(real)
	serve(real)
	if served != 1 || failed != nil {
		t.Fatalf("signed by node-b: served %d, err %v", served, failed)
	}
	serve(real) // the same request again
	if served != 1 || fault.KindOf(failed) != fault.Unauthenticated {
		t.Fatalf("replayed: served %d, err %v", served, failed)
	}
}

// TestEdgeTicket: a placement is good for its session, participant and
// node only, and not once forged or expired.
func TestEdgeTicket(t *testing.T) {
	db, dsn := openDB(t)
	home := newNode(t, db, dsn, "home", Load{})
	edge := newNode(t, db, dsn, "edge", Load{})
	other := newNode(t, db, dsn, "other", Load{})
	session, participant := uuid.New(), uuid.New()
	ticket, err := home.EdgeTicket(session, participant, "edge")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := edge.CheckEdgeTicket(ticket, session); err != nil || got != participant {
		t.Fatalf("valid ticket: %v, %v", got, err)
	}
	if _, err := other.CheckEdgeTicket(ticket, session); err == nil {
		t.Fatal("a ticket for node edge was accepted by node other")
	}
	// Any node reads where a ticket places its observer (to pass the
	// connection on), and refuses it for another session.
	if got, node, err := other.EdgeTicketFor(ticket, session); err != nil || got != participant || node != "edge" {
		t.Fatalf("EdgeTicketFor at another node: %v %q %v", got, node, err)
	}
	if _, _, err := other.EdgeTicketFor(ticket, uuid.New()); err == nil {
		t.Fatal("EdgeTicketFor accepted a ticket for another session")
	}
	if _, err := edge.CheckEdgeTicket(ticket, uuid.New()); err == nil {
		t.Fatal("a ticket for one session was accepted for another")
	}
	b64, sum, _ := strings.Cut(ticket, ".")
	forged := strings.Replace(b64, b64[:4], "AAAA", 1) + "." + sum
	if _, err := edge.CheckEdgeTicket(forged, session); err == nil {
		t.Fatal("a forged ticket was accepted")
	}
	a := edge.auth.Load()
	a.now = func() time.Time { return time.Now().Add(edgeTicketTTL + time.Second) }
	if _, err := edge.CheckEdgeTicket(ticket, session); err == nil {
		t.Fatal("an expired ticket was accepted")
	}
}
