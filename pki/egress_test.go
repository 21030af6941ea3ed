package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/google/uuid"

	"github.com/chamber-court/chamber/fault"
)

// countingServer stands in for a host an attacker chose; it counts the
// requests that reach it.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if h != nil {
			h(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestEgressAllowList(t *testing.T) {
	ctx := context.Background()
	attacker, hits := countingServer(t, nil)
	allowed, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("crl")) })
	tests := []struct {
		name   string
		egress Egress
		url    string
		ok     bool
	}{
		{"nothing configured", Egress{}, attacker.URL + "/ca.crl", false},
		{"another host allowed", allowServer(allowed), attacker.URL + "/ca.crl", false},
		{"allowed host", allowServer(allowed), allowed.URL + "/ca.crl", true},
		{"not http", allowServer(allowed), "file:///etc/passwd", false},
		{"ldap", allowServer(allowed), "ldap://" + strings.TrimPrefix(allowed.URL, "http://") + "/cn=ca", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := Fetch(ctx, tt.egress.Client(), tt.url)
			if tt.ok && (err != nil || string(body) != "crl") {
				t.Fatalf("%q %v", body, err)
			}
			if !tt.ok && !errors.Is(err, ErrEgressDenied) {
				t.Fatalf("err %v, want ErrEgressDenied", err)
			}
		})
	}
	if hits.Load() != 0 {
		t.Errorf("the host nobody allowed got %d requests", hits.Load())
	}
}

// A 302 to a cloud-metadata stand-in is never followed, whether the
// client is an egress client or one that would follow it.
func TestEgressNoRedirects(t *testing.T) {
	metadata, hits := countingServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) })
	redirector, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, metadata.URL+"/latest/meta-data/iam/", http.StatusFound)
	})
	e := Egress{AllowHosts: []string{host(redirector), host(metadata)}}
	for name, client := range map[string]*http.Client{"egress": e.Client(), "default": http.DefaultClient} {
		_, err := Fetch(context.Background(), client, redirector.URL+"/ca.crl")
		if !errors.Is(err, ErrEgressDenied) || !strings.Contains(err.Error(), "redirects are not followed") {
			t.Errorf("%s client: err %v", name, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the redirect target got %d requests", hits.Load())
	}
}

// An endless response is cut off at the size cap, and a responder that
// never answers at the timeout.
func TestEgressCutsOversizeAndSlow(t *testing.T) {
	var written atomic.Int64
	huge, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for range 1024 { // 64 MiB unless the client hangs up
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	slow, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	e := Egress{AllowHosts: []string{host(huge), host(slow)}, Timeout: 300 * time.Millisecond, MaxBytes: 1 << 20}

	if _, err := Fetch(context.Background(), e.Client(), huge.URL); err == nil {
		t.Error("an oversize response was accepted")
	}
	huge.CloseClientConnections()
	// The server stops once the client is gone; what it managed to write
	// is the cap plus what the socket buffers held.
	if w := written.Load(); w > 16<<20 {
		t.Errorf("the server wrote %d MiB before the client stopped reading", w>>20)
	}

	start := time.Now()
	_, err := Fetch(context.Background(), e.Client(), slow.URL)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("slow responder: %v after %v", err, time.Since(start))
	}
}

func TestEgressLocalAndSpecialAddresses(t *testing.T) {
	remote, hits := countingServer(t, nil)
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("own crl")) })
	e := Egress{Local: map[string]http.Handler{remote.URL + "/pki/ca.crl": local}}
	body, err := Fetch(context.Background(), e.Client(), remote.URL+"/pki/ca.crl")
	if err != nil || string(body) != "own crl" || hits.Load() != 0 {
		t.Errorf("local answer %q %v, %d requests went out", body, err, hits.Load())
	}
	// Even an allow-listed name is never dialled on a link-local address.
	meta := Egress{AllowHosts: []string{"169.254.169.254"}, Timeout: 2 * time.Second}
	if _, err := Fetch(context.Background(), meta.Client(), "http://169.254.169.254/latest/meta-data/"); !errors.Is(err, ErrEgressDenied) {
		t.Errorf("link-local address: %v", err)
	}
}

// CheckCertificate contacts no revocation source of a chain that does not
// reach a configured root, whatever URLs its certificates name.
func TestCheckCertificateUnanchored(t *testing.T) {
	a, _ := newTestAuthority(t)
	other, otherSrv := newTestAuthority(t)
	var hits atomic.Int64
	otherSrv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	foreign, err := other.IssuePrincipal(context.Background(), "Mallory", uuid.New(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a.SetRevocationChecks(RevocationChecks{Client: allowServer(otherSrv).Client()})
	st, err := a.CheckCertificate(context.Background(), foreign.Certificate, foreign.Chain)
	if err != nil || !strings.HasPrefix(st.Revocation, "unchecked: the chain does not reach a configured trust root") {
		t.Fatalf("status %+v, %v", st, err)
	}
	if hits.Load() != 0 {
		t.Errorf("the unanchored chain's CRL server got %d requests", hits.Load())
	}
}

func TestTSARateLimit(t *testing.T) {
	a, _ := newTestAuthority(t)
	h := a.TSA().Limited(RateLimit{Every: time.Hour, Burst: 3, TotalEvery: time.Hour, TotalBurst: 5})
	digest := sha256.Sum256([]byte("exhibit"))
	query, err := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: digest[:]}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ask := func(client string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/tsa", bytes.NewReader(query))
		req.Header.Set("Content-Type", ContentTypeTimestampQuery)
		req.RemoteAddr = client + ":4321"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	for i := range 3 {
		if w := ask("192.0.2.1"); w.Code != http.StatusOK {
			t.Fatalf("query %d: %d", i+1, w.Code)
		}
	}
	w := ask("192.0.2.1")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("fourth query from one client: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if _, err := timestamp.ParseResponse(w.Body.Bytes()); err == nil {
		t.Error("a refused query was stamped")
	}
	// Other clients have their own allowance, within the total.
	if w := ask("192.0.2.2"); w.Code != http.StatusOK {
		t.Errorf("another client: %d", w.Code)
	}
	if w := ask("192.0.2.3"); w.Code != http.StatusOK {
		t.Errorf("a third client: %d", w.Code)
	}
	if w := ask("192.0.2.4"); w.Code != http.StatusTooManyRequests {
		t.Errorf("beyond the total: %d", w.Code)
	}
}

func host(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }

// TestRemoteOutagesAreUnavailable: a revocation source or a TSA that is
// down, overloaded or frozen is an outage (fault.Unavailable: 503 and a
// retry for whoever was signing), with the service's own Retry-After when
// it gave one; a refusal that retrying cannot change (a 404, the egress
// policy, a caller that gave up) is not.
func TestRemoteOutagesAreUnavailable(t *testing.T) {
	_, tsa := newTestAuthority(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()
	status := func(code int, retry string) *httptest.Server {
		srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
			if retry != "" {
				w.Header().Set("Retry-After", retry)
			}
			w.WriteHeader(code)
		})
		return srv
	}
	down, busy, missing := status(http.StatusServiceUnavailable, "7"), status(http.StatusTooManyRequests, "86400"), status(http.StatusNotFound, "")
	// Frozen: it reads the query and never answers. (Reading it is what
	// lets the server notice the client hang up, and so lets it stop.)
	frozen, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	})
	e := Egress{AllowHosts: []string{host(down), host(busy), host(missing), host(frozen), strings.TrimPrefix(refused, "http://")}, Timeout: 300 * time.Millisecond}
	gone, cancel := context.WithCancel(context.Background())
	cancel()

	digest := sha256.Sum256([]byte("the deed of sale"))
	stamp := func(ctx context.Context, url string) error {
		_, err := (&TSAClient{URL: url, HTTPClient: &http.Client{Timeout: 300 * time.Millisecond}}).Timestamp(ctx, digest[:])
		return err
	}
	fetch := func(ctx context.Context, url string) error {
		_, err := Fetch(ctx, e.Client(), url)
		return err
	}
	ctx := context.Background()
	tests := []struct {
		name  string
		err   error
		want  fault.Kind
		retry time.Duration // 0: the API's default
	}{
		{"TSA refuses connections", stamp(ctx, refused+"/tsa"), fault.Unavailable, 0},
		{"TSA answers 503", stamp(ctx, down.URL), fault.Unavailable, 7 * time.Second},
		{"TSA answers 429 with a day's wait", stamp(ctx, busy.URL), fault.Unavailable, maxRetryAfter},
		{"TSA frozen", stamp(ctx, frozen.URL), fault.Unavailable, 0},
		{"TSA answers 404", stamp(ctx, missing.URL), fault.Internal, 0},
		{"TSA's caller gave up", stamp(gone, tsa.URL+"/tsa"), fault.Canceled, 0},
		{"CRL host refuses connections", fetch(ctx, refused+"/ca.crl"), fault.Unavailable, 0},
		{"CRL host answers 503", fetch(ctx, down.URL), fault.Unavailable, 7 * time.Second},
		{"CRL host frozen", fetch(ctx, frozen.URL), fault.Unavailable, 0},
		{"CRL host answers 404", fetch(ctx, missing.URL), fault.Internal, 0},
		{"CRL host not allowed", fetch(ctx, tsa.URL+"/ca.crl"), fault.Internal, 0},
		{"CRL fetch's caller gave up", fetch(gone, down.URL), fault.Canceled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if k := fault.KindOf(tt.err); k != tt.want {
				t.Fatalf("%v: kind %s, want %s", tt.err, k, tt.want)
			}
			var fe *fault.Error
			if errors.As(tt.err, &fe) && fe.RetryAfter != tt.retry {
				t.Errorf("Retry-After %v, want %v", fe.RetryAfter, tt.retry)
			}
		})
	}
	// And the TSA that answers still stamps through the same client.
	if err := stamp(ctx, tsa.URL+"/tsa"); err != nil {
		t.Errorf("the TSA that is up: %v", err)
	}
}
