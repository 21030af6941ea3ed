package webm

import "time"

// Timing: where a track's frames fall on the recording's timeline.
//
// A publisher's sender reports (RTCP SR) pair an RTP timestamp of each of
// its streams with its own wall clock (NTP). All streams of one publisher
// share that clock, so mapping every frame's RTP timestamp through its
// track's latest report puts a person's audio and video on one timeline —
// exactly as they were captured, whatever the network did to either on the
// way. The publisher's clock is then placed on the recording's timeline
// once per participant stream (group): the group's offset is taken from
// the arrival of the first packet timed by a report, and both tracks use
// it. So audio and video of one person are in sync to the precision of
// the publisher's reports, and people to within the network delay of
// their first packets, as before.
//
// Until a track's first report arrives its frames are held (timingHold),
// at most SenderReportWait after its first packet; the group writes
// nothing meanwhile, so that no frame is written at a time a report would
// move. The SFU hands a tap the stream's latest report when it opens, so a
// recording started while people are already talking holds nothing; a
// track published during the recording (a reload, a late joiner) holds
// until the browser's first report (about a second for video, a few for
// audio). A track whose reports do not come in time, or that disagree
// with the group's clock by more than the discontinuity, is anchored at its
// first packet's arrival instead (timingArrival), as before reports were
// used, and the manifest says so.

// timing is how a track's frames are placed in time.
type timing uint8

const (
	timingHold    timing = iota // waiting for the track's first sender report
	timingReports               // RTP timestamps mapped through sender reports
	timingArrival               // RTP timestamps anchored at the first packet's arrival
)

// Names of the timings in the manifest (Track.Timing).
const (
	TimingSenderReports = "sender_reports"
	TimingArrival       = "arrival"
)

func (m timing) String() string {
	if m == timingReports {
		return TimingSenderReports
	}
	return TimingArrival
}

// defaultSenderReportWait covers Chrome's first audio report: its audio
// reports come every 5 s, randomised by ±50 %.
const defaultSenderReportWait = 8 * time.Second

// SenderReport is a publisher's RTCP sender report for a track's stream:
// RTPTime and NTPTime (64-bit NTP format) are the same instant.
type SenderReport struct {
	SSRC    uint32
	NTPTime uint64
	RTPTime uint32
}

// srMapping is a track's latest sender report.
type srMapping struct {
	ok   bool
	ssrc uint32
	ntp  int64 // nanoseconds since the NTP epoch
	rtp  uint32
}

// ntpNanos converts a 64-bit NTP timestamp (seconds since 1900 and a
// binary fraction) to nanoseconds since 1900; era 0 (until 2036) fits an
// int64 with room to spare.
func ntpNanos(ntp uint64) int64 {
	return int64(ntp>>32)*int64(time.Second) + int64(((ntp&0xffffffff)*uint64(time.Second))>>32)
}

// at returns the publisher's wall clock, in nanoseconds since the NTP
// epoch, at RTP timestamp ts of a clock of rate Hz. The difference from
// the report's timestamp is taken modulo 2^32 as a signed number, so a
// wraparound between the two is harmless; it is exact as long as they are
// less than 2^31 ticks apart (6.6 h at 90 kHz), and reports come every
// few seconds.
func (m srMapping) at(ts uint32, rate uint32) int64 {
	d := int64(int32(ts - m.rtp))
	return m.ntp + d*int64(time.Second)/int64(rate)
}

// holding reports whether the track holds its frames for a sender report,
// which holds back the whole group.
func (t *track) holding() bool { return t.mode == timingHold && t.havePackets && !t.closed }

// startTiming chooses the timing of a track that has just been anchored
// at a packet: its sender report if one for this stream came already,
// else hold for one (or, with no wait configured, arrival at once).
func (g *group) startTiming(t *track) {
	t.mode, t.holdSince = timingHold, t.anchorAt
	switch {
	case t.sr.ok && t.sr.ssrc == t.ssrc:
		g.useSenderReports(t)
	case g.r.cfg.SenderReportWait < 0:
		g.fallBack(t, "")
	}
}

// senderReport takes a report for a track: the mapping its frames go
// through from now on, and the end of its hold.
func (g *group) senderReport(t *track, sr SenderReport) {
	if t.closed || t.havePackets && sr.SSRC != t.ssrc {
		return // a report of a stream this track no longer receives
	}
	t.sr = srMapping{ok: true, ssrc: sr.SSRC, ntp: ntpNanos(sr.NTPTime), rtp: sr.RTPTime}
	if t.holding() {
		g.useSenderReports(t)
		g.pump(false)
	}
}

// useSenderReports switches a track to its reports, fixing the group's
// offset between the publisher's clock and the recording's if no track
// has yet. A report that puts the track's latest packet further from its
// arrival than a discontinuity does not fit the publisher's other streams:
// the track is timed by arrival instead.
func (g *group) useSenderReports(t *track) {
	if !g.ntpOK {
		g.ntpOffset, g.ntpOK = t.sr.at(t.lastTS, t.spec.clockRate)-int64(t.lastArrival), true
	} else if d := t.lastArrival - g.reportTime(t, t.lastTS); d > discontinuity || d < -discontinuity {
		g.fallBack(t, "its sender reports disagree with the stream's clock by "+d.String())
		return
	}
	t.mode = timingReports
	g.release(t)
}

// fallBack times a track by its packets' arrival, releasing what it held;
// why, when not empty, is logged.
func (g *group) fallBack(t *track, why string) {
	if why != "" {
		g.log.Info("track timed by packet arrival", "track", t.info.TrackID, "why", why)
	}
	t.mode = timingArrival
	g.release(t)
}

// release queues the frames a track held, now that their time is known.
func (g *group) release(t *track) {
	for _, fr := range t.held {
		fr.at = g.frameTime(t, fr.ts, fr.ext)
		t.queue = append(t.queue, fr)
	}
	clear(t.held)
	t.held = t.held[:0]
}

// checkHolds ends the holds that have waited long enough.
func (g *group) checkHolds(now time.Duration) {
	for _, t := range g.tracks {
		if t.holding() && now-t.holdSince >= g.r.cfg.SenderReportWait {
			g.fallBack(t, "no sender report within "+g.r.cfg.SenderReportWait.String())
		}
	}
}

// frameTime places a frame with RTP timestamp ts (ext unwrapped) on the
// recording's timeline.
func (g *group) frameTime(t *track, ts uint32, ext int64) time.Duration {
	if t.mode == timingReports {
		return g.reportTime(t, ts)
	}
	return t.rtpTime(ext)
}

// reportTime maps an RTP timestamp through the track's sender report and
// the group's clock offset.
func (g *group) reportTime(t *track, ts uint32) time.Duration {
	return time.Duration(t.sr.at(ts, t.spec.clockRate) - g.ntpOffset)
}

// strays reports whether a packet's timestamp is further from its arrival
// than a discontinuity allows: a restarted or replaced stream.
func (g *group) strays(t *track, arrival time.Duration, ts uint32, ext int64) bool {
	expect := t.rtpTime(ext)
	if t.mode == timingReports {
		expect = g.reportTime(t, ts)
	}
	d := arrival - expect
	return d > discontinuity || d < -discontinuity
}
