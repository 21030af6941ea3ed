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
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v4"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/signaling/client"
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
// credentials from "joined". (Pion's ICE agent checks TURN certificates
// against the system roots, so the media path through TLS is exercised by
// browsers, not here; the listener, TLS and authentication are.)
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
