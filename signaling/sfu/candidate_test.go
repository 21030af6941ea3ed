package sfu

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/signaling/protocol"
)

func TestCandidateFilterRanges(t *testing.T) {
	f := &CandidateFilter{AllowRelay: []netip.Addr{netip.MustParseAddr("10.1.2.3")}}
	cases := []struct {
		addr   string
		ok     bool
		reason string
		typ    string
	}{
		{"203.0.113.7", true, "", ""}, // documentation range, but public unicast as far as routing goes
		{"8.8.8.8", true, "", ""},
		{"2a00:1450:4001::1", true, "", ""},
		{"10.1.2.3", true, "", "relay"},        // allowed explicitly (the TURN relay)
		{"10.1.2.3", false, "private", "host"}, // the relay's host, not its relayed candidates
		{"127.0.0.1", false, "loopback", ""},
		{"127.8.9.10", false, "loopback", ""},
		{"::1", false, "loopback", ""},
		{"::ffff:127.0.0.1", false, "loopback", ""},
		{"10.0.0.1", false, "private", ""},
		{"172.16.5.4", false, "private", ""},
		{"192.168.1.1", false, "private", ""},
		{"fd12:3456::1", false, "private", ""},
		{"fd00:ec2::254", false, "private", ""},
		{"100.64.0.1", false, "reserved", ""},
		{"100.100.100.200", false, "reserved", ""},
		{"169.254.169.254", false, "link_local", ""},
		{"fe80::1", false, "link_local", ""},
		{"0.0.0.0", false, "unspecified", ""},
		{"::", false, "unspecified", ""},
		{"0.1.2.3", false, "reserved", ""},
		{"224.0.0.251", false, "multicast", ""},
		{"ff02::fb", false, "multicast", ""},
		{"255.255.255.255", false, "reserved", ""},
		{"192.0.0.192", false, "reserved", ""},
		{"64:ff9b::a00:1", false, "reserved", ""},
		{"2002:a00:1::1", false, "reserved", ""},
		{"abcd-1234.local", false, "name", ""},
		{"metadata.google.internal", false, "name", ""},
	}
	for _, c := range cases {
		if c.typ == "" {
			c.typ = "host"
		}
		ok, reason := f.allows(c.addr, c.typ)
		if ok != c.ok || reason != c.reason {
			t.Errorf("%s %s: allowed %v (%q), want %v (%q)", c.typ, c.addr, ok, reason, c.ok, c.reason)
		}
	}
	var none *CandidateFilter
	if ok, _ := none.allows("127.0.0.1", "host"); !ok {
		t.Error("no filter refused a candidate")
	}
}

func TestCandidateAddress(t *testing.T) {
	for in, want := range map[string]string{
		"candidate:1 1 udp 2130706431 192.0.2.1 7882 typ host":                      "192.0.2.1",
		"a=candidate:1 1 udp 2130706431 ::1 7882 typ host generation 0":             "::1",
		"1 1 tcp 1 10.0.0.1 9 typ host tcptype active":                              "10.0.0.1",
		"candidate:2 1 udp 1 198.51.100.1 5000 typ srflx raddr 10.0.0.1 rport 5000": "198.51.100.1",
		"candidate:3 1 udp 1 abcd.local 5000 typ host":                              "abcd.local",
		"candidate:1 1 udp": "",
		"candidate:1 1 udp 2130706431 192.0.2.1 7882 notyp host": "",
	} {
		got, _, ok := candidateAddress(in)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v, want %q", in, got, ok, want)
		}
	}
}

// stunSink is a UDP socket standing for whatever a candidate points at; it
// reports whether anything (a STUN check) arrives within a bounded window.
func stunSink(t *testing.T) (*net.UDPConn, func(window time.Duration) bool) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, func(window time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(window))
		_, _, err := c.ReadFrom(make([]byte, 1500))
		return err == nil
	}
}

// publishOfferTo makes a publish offer (no candidates of its own) and hands
// it to a new peer of an SFU with the given filter; extra is a candidate
// line put into the offer's SDP.
func publishOfferTo(t *testing.T, filter *CandidateFilter, extra string) *Peer {
	t.Helper()
	s, err := New(Config{UDPAddr: "127.0.0.1:0", TCPAddr: "off", Candidates: filter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	room, err := s.NewRoom(RoomConfig{ID: uuid.New()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := room.Join(PeerConfig{ParticipantID: uuid.New(), ConnectionID: uuid.New()})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	sd := offer.SDP
	if extra != "" {
		sd = strings.TrimRight(sd, "\r\n") + "\r\na=" + extra + "\r\n"
	}
	if _, err := p.HandleOffer(protocol.SessionDescription{PC: protocol.PCPublish, SDP: sd,
		Tracks: []protocol.MediaLine{{Mid: "0", Source: "microphone"}}}); err != nil {
		t.Fatal(err)
	}
	return p
}

func loopbackCandidate(port int, typ string) string {
	extra := ""
	if typ == "relay" {
		extra = " raddr 127.0.0.1 rport 9"
	}
	return fmt.Sprintf("candidate:1 1 udp 2130706431 127.0.0.1 %d typ %s%s", port, typ, extra)
}

// With the filter on, the SFU sends no STUN check to a loopback candidate,
// trickled or in the offer; a relayed candidate on an allowed relay address
// gets checks (so the negative checks can fail), a host candidate there none.
func TestFilteredCandidatesGetNoChecks(t *testing.T) {
	loop := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		name    string
		filter  *CandidateFilter
		inSDP   bool
		typ     string
		checked bool
	}{
		{"trickled, filtered", &CandidateFilter{}, false, "host", false},
		{"in the offer, filtered", &CandidateFilter{}, true, "host", false},
		{"host on the relay address", &CandidateFilter{AllowRelay: []netip.Addr{loop}}, false, "host", false},
		{"trickled relay, allowed", &CandidateFilter{AllowRelay: []netip.Addr{loop}}, false, "relay", true},
		{"relay in the offer, allowed", &CandidateFilter{AllowRelay: []netip.Addr{loop}}, true, "relay", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink, arrived := stunSink(t)
			cand := loopbackCandidate(sink.LocalAddr().(*net.UDPAddr).Port, tc.typ)
			dropped := droppedCandidates(t, "loopback")
			var p *Peer
			if tc.inSDP {
				p = publishOfferTo(t, tc.filter, cand)
			} else {
				p = publishOfferTo(t, tc.filter, "")
				if err := p.HandleCandidate(protocol.Candidate{PC: protocol.PCPublish, Candidate: cand, SDPMid: ptr("0")}); err != nil {
					t.Fatal(err)
				}
			}
			if got := arrived(3 * time.Second); got != tc.checked {
				t.Errorf("STUN check arrived: %v, want %v", got, tc.checked)
			}
			wantDropped := dropped
			if !tc.checked {
				wantDropped++
			}
			if got := droppedCandidates(t, "loopback"); got != wantDropped {
				t.Errorf("dropped candidates counted: %v, want %v", got, wantDropped)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// droppedCandidates reads chamber_ice_candidates_dropped_total for a reason.
func droppedCandidates(t *testing.T, reason string) float64 {
	t.Helper()
	return counterOf(t, "chamber_ice_candidates_dropped_total", "reason", reason)
}

// FuzzCandidateFilter feeds candidate lines from outside to the parser and
// the filter: they must not panic, and a filtered address never comes back
// allowed as another type than relay.
func FuzzCandidateFilter(f *testing.F) {
	f.Add("candidate:1 1 udp 2130706431 127.0.0.1 9 typ host")
	f.Add("a=candidate:2 1 udp 1 10.1.2.3 5000 typ relay raddr 0.0.0.0 rport 0")
	f.Add("candidate:3 1 tcp 1 [::1] 9 typ host tcptype active")
	f.Add("candidate:4 1 udp 1 abcd.local 5000 typ host")
	filter := &CandidateFilter{AllowRelay: []netip.Addr{netip.MustParseAddr("10.1.2.3")}}
	f.Fuzz(func(t *testing.T, c string) {
		addr, typ, ok := candidateAddress(c)
		if !ok {
			return
		}
		allowed, _ := filter.allows(addr, typ)
		if ip, err := netip.ParseAddr(addr); allowed && err == nil && typ != "relay" {
			ip = ip.Unmap()
			if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() {
				t.Errorf("%q allowed", c)
			}
		}
	})
}
