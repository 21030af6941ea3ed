package signaling

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/internal/client"
)

// selectedPair returns the candidate pair a client PeerConnection uses.
func selectedPair(t *testing.T, pc *webrtc.PeerConnection) *webrtc.ICECandidatePair {
	t.Helper()
	var pair *webrtc.ICECandidatePair
	waitFor(t, 10*time.Second, "a selected candidate pair", func() bool {
		p, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		pair = p
		return err == nil && p != nil
	})
	return pair
}

// mediaFlows publishes from one client and checks that the other receives.
func mediaFlows(t *testing.T, pubC, sub *client.Client, pubID Identity) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pub, err := pubC.Publish(ctx, client.PublishOptions{Audio: true, Video: true, VideoBitrate: 300_000})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Stop()
	waitFor(t, 20*time.Second, "media at the subscriber", func() bool {
		tr := tracksOf(sub, pubID.ParticipantID)
		if len(tr) != 2 {
			return false
		}
		for _, x := range tr {
			if x.Stats().Packets < 50 {
				return false
			}
		}
		return true
	})
}

func TestICETCPOnly(t *testing.T) {
	ts := newTestServer(t, nil)
	tcpOnly := func(cfg *client.Config) { cfg.NetworkTypes = []webrtc.NetworkType{webrtc.NetworkTypeTCP4} }
	before := counterValue(t, "chamber_ice_connections_total")
	pubC, pubID, _ := ts.dial(t, "publisher", tcpOnly)
	sub, _, _ := ts.dial(t, "subscriber", tcpOnly)
	mediaFlows(t, pubC, sub, pubID)
	for _, pc := range []*webrtc.PeerConnection{pubC.PublishPeerConnection(), sub.SubscribePeerConnection()} {
		pair := selectedPair(t, pc)
		if pair.Local.Protocol != webrtc.ICEProtocolTCP || pair.Remote.Protocol != webrtc.ICEProtocolTCP {
			t.Errorf("selected pair %s is not TCP", pair)
		}
	}
	if got := counterValue(t, "chamber_ice_connections_total") - before; got < 2 {
		t.Errorf("ICE connections counted: %v", got)
	}
}

func TestTURNRelayOnly(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			ts := newTestServer(t, func(c *Config) {
				c.TURNUDPAddr = "127.0.0.1:0"
				c.TURNTCPAddr = "127.0.0.1:0"
				c.PublicHost = "127.0.0.1"
			})
			relayOnly := func(cfg *client.Config) {
				cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
				// No TCP network type: pion would still pair active ICE-TCP
				// host candidates despite the relay policy. The relayed
				// candidate itself is UDP, whatever carries it to the TURN server.
				cfg.NetworkTypes = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
				// Only the TURN URL of the transport under test.
				cfg.ICEURLFilter = func(u string) bool { return strings.HasSuffix(u, "transport="+transport) }
			}
			before := labeledValue(t, "chamber_ice_connections_total", "transport", "relay")
			pubC, pubID, _ := ts.dial(t, "publisher", relayOnly)
			servers := pubC.Joined().ICEServers
			if len(servers) != 1 || len(servers[0].URLs) != 2 || servers[0].Username == "" || servers[0].Credential == "" {
				t.Fatalf("joined carries ICE servers %+v", servers)
			}
			sub, _, _ := ts.dial(t, "subscriber", relayOnly)
			mediaFlows(t, pubC, sub, pubID)
			for _, pc := range []*webrtc.PeerConnection{pubC.PublishPeerConnection(), sub.SubscribePeerConnection()} {
				pair := selectedPair(t, pc)
				if pair.Local.Typ != webrtc.ICECandidateTypeRelay {
					t.Errorf("selected pair %s is not relayed", pair)
				}
			}
			if got := labeledValue(t, "chamber_ice_connections_total", "transport", "relay") - before; got < 2 {
				t.Errorf("relayed ICE connections counted: %v", got)
			}
		})
	}
}

// TestTURNOverTLS allocates a relay through the TLS listener with the
// credentials from "joined", and refuses a wrong password.
func TestTURNOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	ts := newTestServer(t, func(c *Config) {
		c.TURNTLSAddr = "127.0.0.1:0"
		c.TURNTLSCertFile, c.TURNTLSKeyFile = certFile, keyFile
		c.PublicHost = "127.0.0.1"
		c.TURNCredentialTTL = time.Minute
	})
	c, _, _ := ts.dial(t, "participant", nil)
	servers := c.Joined().ICEServers
	if len(servers) != 1 || len(servers[0].URLs) != 1 || !strings.HasPrefix(servers[0].URLs[0], "turns:127.0.0.1:") {
		t.Fatalf("ICE servers %+v", servers)
	}
	_, _, tlsAddr := ts.TURNAddrs()
	allocate := func(user, pass string) error {
		conn, err := tls.Dial("tcp", tlsAddr.String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test certificate
		if err != nil {
			return err
		}
		defer conn.Close()
		tc, err := turn.NewClient(&turn.ClientConfig{
			STUNServerAddr: tlsAddr.String(), TURNServerAddr: tlsAddr.String(),
			Conn: turn.NewSTUNConn(conn), Username: user, Password: pass, Realm: "chamber",
		})
		if err != nil {
			return err
		}
		defer tc.Close()
		if err := tc.Listen(); err != nil {
			return err
		}
		relay, err := tc.Allocate()
		if err != nil {
			return err
		}
		return relay.Close()
	}
	if err := allocate(servers[0].Username, servers[0].Credential); err != nil {
		t.Fatalf("allocation over TLS with the joined credentials: %v", err)
	}
	if err := allocate(servers[0].Username, "wrong"); err == nil {
		t.Fatal("allocation with a wrong password succeeded")
	}
}

// turnTLSChildEnv names the certificate and key files in the child process
// of TestTURNOverTLSMedia.
const turnTLSChildEnv = "CHAMBER_TEST_TURN_TLS"

// TestTURNOverTLSMedia carries audio and video between two clients whose
// only way to the SFU is TURN over TLS (turns:…?transport=tcp), the path
// left on an embassy network that allows nothing but TLS to one port.
//
// Pion's ICE agent checks the TURN server's certificate against the
// system roots, which Go reads once per process (honouring SSL_CERT_FILE),
// so the test runs itself again in a child process that trusts the test
// certificate and nothing else.
func TestTURNOverTLSMedia(t *testing.T) {
	if files := os.Getenv(turnTLSChildEnv); files != "" {
		certFile, keyFile, _ := strings.Cut(files, string(os.PathListSeparator))
		turnTLSMedia(t, certFile, keyFile)
		return
	}
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestTURNOverTLSMedia$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(),
		turnTLSChildEnv+"="+certFile+string(os.PathListSeparator)+keyFile,
		"SSL_CERT_FILE="+certFile, "SSL_CERT_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestTURNOverTLSMedia") {
		t.Fatalf("the child did not run the test:\n%s", out)
	}
}

func turnTLSMedia(t *testing.T, certFile, keyFile string) {
	// The child must really see the test certificate as its only root:
	// otherwise a pass could come from somewhere else.
	pool, err := x509.SystemCertPool()
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Fatalf("the test certificate is not a system root in the child: %v", err)
	}

	ts := newTestServer(t, func(c *Config) {
		c.TURNTLSAddr = "127.0.0.1:0"
		c.TURNTLSCertFile, c.TURNTLSKeyFile = certFile, keyFile
		c.PublicHost = "127.0.0.1"
	})
	tlsOnly := func(cfg *client.Config) {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
		cfg.NetworkTypes = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
		cfg.ICEURLFilter = func(u string) bool { return strings.HasPrefix(u, "turns:") }
	}
	before := labeledValue(t, "chamber_ice_connections_total", "transport", "relay")
	pubC, pubID, _ := ts.dial(t, "publisher", tlsOnly)
	sub, _, _ := ts.dial(t, "subscriber", tlsOnly)
	mediaFlows(t, pubC, sub, pubID)
	for _, pc := range []*webrtc.PeerConnection{pubC.PublishPeerConnection(), sub.SubscribePeerConnection()} {
		pair := selectedPair(t, pc)
		if proto := relayProtocol(pc, pair.Local); pair.Local.Typ != webrtc.ICECandidateTypeRelay || proto != "tls" {
			t.Errorf("selected pair %s is not relayed over TLS (relay protocol %q)", pair, proto)
		}
	}
	if got := labeledValue(t, "chamber_ice_connections_total", "transport", "relay") - before; got < 2 {
		t.Errorf("relayed ICE connections counted: %v", got)
	}
}

// TestStopWithoutConnection stops a publication whose connection never
// came up (its only way is TURN over TLS, and the TURN certificate is not
// trusted here): Stop must return, not wait for SRTP that never starts.
func TestStopWithoutConnection(t *testing.T) {
	certFile, keyFile := writeSelfSigned(t, t.TempDir())
	ts := newTestServer(t, func(c *Config) {
		c.TURNTLSAddr = "127.0.0.1:0"
		c.TURNTLSCertFile, c.TURNTLSKeyFile = certFile, keyFile
		c.PublicHost = "127.0.0.1"
	})
	c, _, _ := ts.dial(t, "stranded", func(cfg *client.Config) {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
		cfg.NetworkTypes = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := c.Publish(ctx, client.PublishOptions{Audio: true, Video: true})
	if err != nil {
		t.Fatal(err)
	}
	// The publication is trying to connect (and never will: the TURN
	// certificate is not trusted) when it is stopped.
	waitFor(t, 5*time.Second, "the publish connection to start checking", func() bool {
		return c.PublishPeerConnection().ICEConnectionState() == webrtc.ICEConnectionStateChecking
	})
	stopped := make(chan struct{})
	go func() { pub.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop of a never-connected publication did not return")
	}
}

// relayProtocol is how a local relayed candidate reaches its TURN server
// (udp, tcp or tls), from the PeerConnection's statistics.
func relayProtocol(pc *webrtc.PeerConnection, local *webrtc.ICECandidate) string {
	for _, st := range pc.GetStats() {
		c, ok := st.(webrtc.ICECandidateStats)
		if ok && c.Type == webrtc.StatsTypeLocalCandidate && c.IP == local.Address && int(c.Port) == int(local.Port) {
			return c.RelayProtocol
		}
	}
	return ""
}

func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "turn.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
