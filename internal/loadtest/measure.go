package loadtest

import (
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chamber-court/chamber/internal/client"
)

// flowKey names one flow: what one receiver (by its index among the
// receivers snapshotted) gets of one sender's audio or video.
type flowKey struct {
	receiver int
	sender   string // participant ID
	kind     string // "audio" or "video"
}

// flow is a flow's counters, cumulative since its first packet.
type flow struct {
	received, expected uint64
	jitterSum          time.Duration
	jitterN            uint64
	layers             [3]uint64 // video packets by the publisher's simulcast layer
}

func (f flow) minus(o flow) flow {
	d := flow{received: f.received - o.received, expected: f.expected - o.expected,
		jitterSum: f.jitterSum - o.jitterSum, jitterN: f.jitterN - o.jitterN}
	for i := range d.layers {
		d.layers[i] = f.layers[i] - o.layers[i]
	}
	return d
}

// state is a snapshot of every counter of a group of participants.
type state struct {
	at      time.Time
	sent    map[string]uint64 // by "sender/kind"
	flows   map[flowKey]flow
	latency client.Histogram
}

// snapshot reads the counters of the publishers' publications and of
// everything the receivers receive. A nil entry or one without a client is
// skipped (a participant that never joined).
func snapshot(pubs, recvs []*participant) *state {
	s := &state{at: time.Now(), sent: map[string]uint64{}, flows: map[flowKey]flow{}}
	for _, p := range pubs {
		if p == nil || p.c == nil || p.pub == nil {
			continue
		}
		id := p.c.Joined().Participant.ID
		a, v := p.pub.Sent()
		s.sent[id+"/audio"] += a
		for _, x := range v {
			s.sent[id+"/video"] += x
		}
	}
	for i, p := range recvs {
		if p == nil || p.c == nil {
			continue
		}
		for _, t := range p.c.RemoteTracks() {
			st := t.Stats()
			k := flowKey{receiver: i, sender: t.ParticipantID, kind: t.Kind.String()}
			f := s.flows[k]
			f.received += st.Packets
			f.expected += st.Expected()
			f.jitterSum += st.JitterSum
			f.jitterN += st.JitterSamples
			if t.Kind == webrtc.RTPCodecTypeVideo {
				for l := range f.layers {
					f.layers[l] += st.Layers[l]
				}
			}
			s.flows[k] = f
			s.latency.Merge(&st.Latency)
		}
	}
	return s
}

// delta is what happened between two snapshots.
type delta struct {
	elapsed time.Duration
	sent    map[string]uint64
	flows   map[flowKey]flow
	latency client.Histogram
}

func (s *state) sub(o *state) delta {
	d := delta{elapsed: s.at.Sub(o.at), sent: map[string]uint64{}, flows: map[flowKey]flow{}, latency: s.latency}
	for k, v := range s.sent {
		d.sent[k] = v - o.sent[k]
	}
	for k, f := range s.flows {
		d.flows[k] = f.minus(o.flows[k])
	}
	for i := range d.latency.Buckets {
		d.latency.Buckets[i] -= o.latency.Buckets[i]
	}
	d.latency.Count -= o.latency.Count
	d.latency.Sum -= o.latency.Sum
	return d
}

// merge adds o's counters into d (the rooms' deltas into the total). Keys
// of different rooms never collide: senders are distinct participants.
func (d *delta) merge(o *delta, receiverOffset int) {
	if d.sent == nil {
		d.sent, d.flows = map[string]uint64{}, map[flowKey]flow{}
	}
	d.elapsed = max(d.elapsed, o.elapsed)
	for k, v := range o.sent {
		d.sent[k] += v
	}
	for k, f := range o.flows {
		k.receiver += receiverOffset
		d.flows[k] = f
	}
	d.latency.Merge(&o.latency)
}

// totals adds up the flows.
func (d *delta) totals() (t flow) {
	for _, f := range d.flows {
		t.received += f.received
		t.expected += f.expected
		t.jitterSum += f.jitterSum
		t.jitterN += f.jitterN
	}
	return t
}

func (d *delta) sentTotal() uint64 {
	var n uint64
	for _, v := range d.sent {
		n += v
	}
	return n
}

// lossPct is the share of packets the receivers' sequence numbers say
// they should have had and did not (after retransmissions).
func (f flow) lossPct() float64 {
	if f.expected == 0 || f.received >= f.expected {
		return 0
	}
	return 100 * float64(f.expected-f.received) / float64(f.expected)
}

// jitterMs is the mean RFC 3550 transit-time variation over the window.
func (f flow) jitterMs() float64 {
	if f.jitterN == 0 {
		return 0
	}
	return ms(f.jitterSum / time.Duration(f.jitterN))
}

// tracks sums the flows by sender and kind: each published track, with
// what all its receivers together got of it.
func (d *delta) tracks() []TrackSummary {
	recv := map[string]flow{}
	for k, f := range d.flows {
		key := k.sender + "/" + k.kind
		r := recv[key]
		r.received += f.received
		r.expected += f.expected
		recv[key] = r
	}
	keys := map[string]bool{}
	for k := range d.sent {
		keys[k] = true
	}
	for k := range recv {
		keys[k] = true
	}
	var out []TrackSummary
	for k := range keys {
		pub, kind, _ := strings.Cut(k, "/")
		out = append(out, TrackSummary{Publisher: pub, Kind: kind, Sent: d.sent[k], Received: recv[k].received, LossPct: recv[k].lossPct()})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Publisher != out[j].Publisher {
			return out[i].Publisher < out[j].Publisher
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

// cpuSample is the CPU time of the server (when its PID is known) and of
// this process at one moment.
type cpuSample struct {
	at          time.Time
	server      time.Duration
	serverValid bool
	self        time.Duration
}

func sampleCPU(pid int) cpuSample {
	s := cpuSample{at: time.Now()}
	if pid > 0 {
		s.server, s.serverValid = processCPU(pid)
	}
	s.self, _ = processCPU(os.Getpid())
	return s
}

// cpuDelta is the CPU used between two samples.
type cpuDelta struct {
	elapsed     time.Duration
	server      time.Duration
	serverValid bool
	self        time.Duration
}

func (s cpuSample) sub(o cpuSample) cpuDelta {
	return cpuDelta{elapsed: s.at.Sub(o.at), server: s.server - o.server, serverValid: s.serverValid && o.serverValid, self: s.self - o.self}
}

// serverPct is the server's CPU in percent of one core.
func (c cpuDelta) serverPct() float64 { return pct(c.server, c.elapsed) }

// selfPct is the load generator's CPU in percent of one core.
func (c cpuDelta) selfPct() float64 { return pct(c.self, c.elapsed) }

// perPacket is server CPU microseconds per packet received.
func (c cpuDelta) perPacket(received uint64) float64 {
	if received == 0 {
		return 0
	}
	return float64(c.server.Nanoseconds()) / 1e3 / float64(received)
}

func pct(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * cpu.Seconds() / wall.Seconds()
}

// processCPU returns a process's user+system CPU time from /proc/PID/stat.
func processCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return parseStat(string(b))
}

// clockTicks is USER_HZ, 100 on every Linux architecture Chamber runs on.
const clockTicks = 100

func parseStat(s string) (time.Duration, bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	// After the command: state is field 3, utime 14 and stime 15 (1-based).
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * time.Second / clockTicks, true
}

// loadAverage reads the 1-, 5- and 15-minute load averages; zeros when
// /proc/loadavg cannot be read.
func loadAverage() [3]float64 {
	var out [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	return parseLoadAvg(string(b))
}

func parseLoadAvg(s string) [3]float64 {
	var out [3]float64
	f := strings.Fields(s)
	for i := 0; i < 3 && i < len(f); i++ {
		out[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
