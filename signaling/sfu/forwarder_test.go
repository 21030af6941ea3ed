package sfu

import (
	"testing"
)

func vp8Meta(seq uint16, ts uint32, key bool, pic uint16) *packetMeta {
	return &packetMeta{seq: seq, ts: ts, frame: frameInfo{keyframe: key, start: key, picOff: 2, picLong: true, picID: pic}}
}

func TestForwarderStartsOnKeyframeAndSwitchesContinuously(t *testing.T) {
	f := forwarder{current: -1, target: 0, clock: 90000, ck: codecVP8}
	// Delta frames before the first keyframe are not forwarded, and say
	// that the down-track waits for a keyframe (so that it asks for one).
	if o, ok := f.accept(0, vp8Meta(100, 1000, false, 10), 0); ok || !o.waitKey {
		t.Fatalf("delta frame before any keyframe: forwarded %v, waitKey %v", ok, o.waitKey)
	}
	o, ok := f.accept(0, vp8Meta(101, 4000, true, 11), 1e6)
	if !ok || !o.switched || o.from != -1 || o.seq != 101 || o.ts != 4000 || o.munge {
		t.Fatalf("first keyframe: %+v %v", o, ok)
	}
	for i := uint16(1); i < 10; i++ {
		o, ok = f.accept(0, vp8Meta(101+i, 4000+uint32(i)*3000, false, 11+i), 1e6+int64(i)*33e6)
		if !ok || o.seq != 101+i {
			t.Fatalf("packet %d: %+v %v", i, o, ok)
		}
	}
	lastSeq, lastTS, lastPic := o.seq, o.ts, o.pic
	// Ask for layer 2: layer 0 goes on until layer 2 has a keyframe.
	f.target = 2
	if o, ok := f.accept(2, vp8Meta(5000, 777, false, 900), 400e6); ok || !o.waitKey {
		t.Fatalf("delta frame of the target layer: forwarded %v, waitKey %v", ok, o.waitKey)
	}
	if o, ok := f.accept(1, vp8Meta(7000, 777, false, 500), 400e6); ok || o.waitKey {
		t.Fatalf("a layer neither current nor target: forwarded %v, waitKey %v", ok, o.waitKey)
	}
	if o, ok := f.accept(0, vp8Meta(111, 34000, false, 21), 400e6); !ok || o.seq != lastSeq+1 || o.waitKey {
		t.Fatalf("old layer stopped before the switch: %+v", o)
	} else {
		lastSeq, lastTS, lastPic = o.seq, o.ts, o.pic
	}
	o, ok = f.accept(2, vp8Meta(5001, 999999, true, 901), 433e6)
	if !ok || !o.switched || o.from != 0 {
		t.Fatalf("switch: %+v %v", o, ok)
	}
	if o.seq != lastSeq+1 {
		t.Errorf("sequence number after switch %d, want %d", o.seq, lastSeq+1)
	}
	if d := o.ts - lastTS; d != 2970 { // 33 ms at 90 kHz
		t.Errorf("timestamp advanced by %d, want 2970", d)
	}
	if o.pic != lastPic+1 || !o.munge {
		t.Errorf("picture ID %d (munge %v), want %d", o.pic, o.munge, lastPic+1)
	}
	// Late packets of the old layer are dropped; the new one continues.
	if _, ok := f.accept(0, vp8Meta(112, 37000, false, 22), 434e6); ok {
		t.Error("forwarded the old layer after the switch")
	}
	if o2, ok := f.accept(2, vp8Meta(5002, 999999, false, 901), 434e6); !ok || o2.seq != o.seq+1 || o2.ts != o.ts {
		t.Errorf("next packet %+v", o2)
	}
	// A packet from before the switch point on the new layer is dropped.
	if _, ok := f.accept(2, vp8Meta(5000, 996999, false, 900), 435e6); ok {
		t.Error("forwarded a new-layer packet from before the switch")
	}
	// Retransmissions map back to the right layer.
	if seg, ok := f.segmentFor(o.seq); !ok || seg.layer != 2 {
		t.Errorf("segment of %d: %+v %v", o.seq, seg, ok)
	}
	if seg, ok := f.segmentFor(lastSeq); !ok || seg.layer != 0 || lastSeq-seg.seqOff != 111 {
		t.Errorf("segment of %d: %+v %v", lastSeq, seg, ok)
	}
	if _, ok := f.segmentFor(o.seq + 5); ok {
		t.Error("a segment for a packet never sent")
	}
}

func TestForwarderSurvivesSequenceWrap(t *testing.T) {
	f := forwarder{current: -1, target: 0, clock: 48000, ck: codecOpus}
	seq := uint16(65000)
	var last uint16
	for i := 0; i < 70000; i++ {
		m := &packetMeta{seq: seq, ts: uint32(i) * 960, frame: frameInfo{keyframe: true, start: true}}
		o, ok := f.accept(0, m, int64(i)*20e6)
		if !ok {
			t.Fatalf("packet %d (seq %d) dropped", i, seq)
		}
		if i > 0 && o.seq != last+1 {
			t.Fatalf("packet %d: seq %d after %d", i, o.seq, last)
		}
		last = o.seq
		seq++
	}
	if seg, ok := f.segmentFor(last - 10); !ok || seg.layer != 0 {
		t.Errorf("retransmission lookup after wrap failed")
	}
}

func TestForwarderPause(t *testing.T) {
	f := forwarder{current: -1, target: 0, clock: 90000, ck: codecVP8}
	f.accept(0, vp8Meta(1, 0, true, 1), 0)
	f.target, f.current = -1, -1
	if _, ok := f.accept(0, vp8Meta(2, 3000, false, 2), 1); ok {
		t.Fatal("forwarded while paused")
	}
	f.target = 0
	if _, ok := f.accept(0, vp8Meta(3, 6000, false, 3), 2); ok {
		t.Fatal("resumed on a delta frame")
	}
	o, ok := f.accept(0, vp8Meta(10, 27000, true, 10), 3)
	if !ok || o.seq != 2 {
		t.Fatalf("resume: %+v %v, want seq 2 (continuous)", o, ok)
	}
}
