package faults

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// testConcurrentWriters: twenty writers at once against one hearing —
// five upload, five invite, five chat over signalling, five moderate
// (mute and unmute, send to the waiting room and back) — every write
// acknowledged is in the record exactly once, with one journal entry, and
// the journal's chain verifies.
func testConcurrentWriters(t *testing.T, cl *cluster) {
	s := newStack(t, stackConfig{pg: cl.pg, minio: cl.minio})
	h := s.newHearing("Twenty writers")
	s.join(h.base, h.judge, "judge", false)
	var uploaders, chatters []invitation
	var targets []string
	for i := range 5 {
		uploaders = append(uploaders, s.invite(h.base, fmt.Sprintf("Party %d", i), "party"))
		chatters = append(chatters, s.invite(h.base, fmt.Sprintf("Witness %d", i), "witness"))
		targets = append(targets, s.invite(h.base, fmt.Sprintf("Counsel %d", i), "counsel").ParticipantID)
	}
	var peers []*peer
	for i, inv := range chatters {
		peers = append(peers, s.join(h.base, inv, fmt.Sprintf("witness %d", i), false))
		s.call("POST", h.base+"/participants/"+inv.ParticipantID+"/admit", h.judge.Token, nil, 200, nil)
	}

	const each = 10
	l := newLedger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range 5 {
		wg.Go(func() { // uploads
			<-start
			for i := range each {
				body, sum := text(32<<10 + i)
				l.upload(ctx, s, h.base, uploaders[w].Token, fmt.Sprintf("exhibit-%d-%d.txt", w, i), body, sum)
			}
		})
		wg.Go(func() { // invitations
			<-start
			for i := range each {
				l.invite(ctx, s, h.base, fmt.Sprintf("Witness %d-%d", w, i), "witness")
			}
		})
		wg.Go(func() { // chat
			<-start
			for i := range each {
				l.chat(ctx, peers[w], fmt.Sprintf("message %d from witness %d", i, w))
			}
		})
		wg.Go(func() { // moderation of a participant of the writer's own
			<-start
			pid := targets[w]
			for i := range each {
				muted := i%2 == 0
				a := s.do(ctx, "POST", h.base+"/participants/"+pid+"/mute", h.judge.Token, map[string]any{"audio": muted}, "")
				l.count("participant.muted", pid, a)
				space := map[bool]string{true: "main", false: "waiting"}[i%2 == 0]
				a = s.do(ctx, "POST", h.base+"/participants/"+pid+"/move", h.judge.Token, map[string]any{"space": space}, "")
				l.count("participant.moved", pid, a)
			}
		})
	}
	close(start)
	wg.Wait()
	t.Logf("twenty writers: %s", l.summary())
	// Nothing failed here: every write must have been acknowledged.
	l.requireAllAcked(t)
	s.checkRecord(t, h.base, s.clerk.token, l)
	s.wholeAct(t)
}
