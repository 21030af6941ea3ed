package faults

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/testenv"
)

// testPostgresRestart: PostgreSQL is restarted — pg_ctl restart -m fast,
// then -m immediate (a crash, recovered from the WAL) — in the middle of
// a hearing whose judge, party and counsel are connected over signalling
// and exchange media, while REST and signalling writers keep writing
// (uploads, invitations, mutes, chat). The media keeps flowing and nobody
// is disconnected; writes during the outage are answered 503 (or
// "unavailable"), never 500; the server is ready again by itself and the
// writers' acknowledged writes are all in the record, once.
func testPostgresRestart(t *testing.T, cl *cluster) {
	pg := testenv.StartPostgres(t)
	s := newStack(t, stackConfig{pg: pg, minio: cl.minio})
	h := s.newHearing("Tamm v Kask: the database restarts")
	party := s.invite(h.base, "Party Mari Tamm", "party")
	counsel := s.invite(h.base, "Counsel Peeter Kuusk", "counsel")
	judge := s.join(h.base, h.judge, "judge", true)
	// Admitted before they join, so that they publish at once (the
	// waiting room publishes nothing).
	for _, p := range []invitation{party, counsel} {
		s.call("POST", h.base+"/participants/"+p.ParticipantID+"/admit", h.judge.Token, nil, 200, nil)
	}
	pp := s.join(h.base, party, "party", true)
	cp := s.join(h.base, counsel, "counsel", true)
	peers := []*peer{judge, pp, cp}
	mediaFlows(t, peers)

	l := newLedger(t)
	// The mutes go to a participant of their own: a camera muted and
	// unmuted fifty times a second never shows a picture, whatever the
	// database does.
	mutee := s.invite(h.base, "Witness Muted", "witness").ParticipantID
	tr := startTraffic(t, s, h, l, party, mutee, judge, pp)
	for _, mode := range []string{"fast", "immediate"} {
		if !t.Run(mode, func(t *testing.T) {
			tr.waitAcked(t, 10) // the writers are writing
			start := time.Now()
			pg.Restart(mode)
			t.Logf("pg_ctl restart -m %s took %v", mode, time.Since(start).Round(time.Millisecond))
			s.waitReady(time.Minute)
			tr.waitAcked(t, 20) // and write again afterwards
			for _, p := range peers {
				select {
				case <-p.c.Done():
					t.Fatalf("%s was disconnected by the database restart: %v", p.name, p.c.Err())
				default:
				}
			}
			mediaFlows(t, peers)
		}) {
			break
		}
	}
	tr.stop()
	t.Logf("writers during the restarts: %s; slowest answer %v", l.summary(), tr.slowest())
	// Every write is answered, and soon: an outage is 503 at once, not a
	// request left hanging until the client gives up.
	if slow, what := tr.slowestWrite(); slow > 15*time.Second {
		t.Errorf("%s waited %v for its answer", what, slow)
	}
	s.checkRecord(t, h.base, s.clerk.token, l)
	s.wholeAct(t)
}

// mediaFlows checks that every peer receives every other's camera and
// microphone.
func mediaFlows(t *testing.T, peers []*peer) {
	t.Helper()
	for _, to := range peers {
		for _, from := range peers {
			if to == from {
				continue
			}
			for _, src := range []string{"camera", "microphone"} {
				if !to.flowing(from, src, 20*time.Second) {
					t.Fatalf("%s does not receive %s's %s", to.name, from.name, src)
				}
			}
		}
	}
}

// traffic is a hearing's writers, writing until stopped: uploads by the
// party, invitations and mutes by the clerk and the judge, chat by the
// judge and the party. Each write is noted in the ledger.
type traffic struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	acks    atomic.Int64
	changed chan struct{}

	mu       sync.Mutex
	slow     time.Duration // the slowest answer
	slowWhat string        // and what it answered
}

func startTraffic(t *testing.T, s *stack, h *hearing, l *ledger, uploader invitation, mutee string, chatters ...*peer) *traffic {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{cancel: cancel, changed: make(chan struct{}, 1)}
	note := func(what string, o outcome, took time.Duration) {
		tr.mu.Lock()
		if took > tr.slow {
			tr.slow, tr.slowWhat = took, fmt.Sprintf("%s (%v)", what, o)
		}
		tr.mu.Unlock()
		if o == acked {
			tr.acks.Add(1)
			select {
			case tr.changed <- struct{}{}:
			default:
			}
		}
	}
	// Each REST writer writes at most every 20 ms: steady traffic, not a
	// flood that would starve the media on two shared cores. Chat goes at
	// less than two a second, a participant's budget of room messages.
	loop := func(what string, every time.Duration, write func(ctx context.Context, i int) outcome) {
		tr.wg.Go(func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				start := time.Now()
				o := write(wctx, i)
				note(fmt.Sprintf("%s %d", what, i), o, time.Since(start))
				cancel()
			}
		})
	}
	loop("upload", 20*time.Millisecond, func(ctx context.Context, i int) outcome {
		body, sum := text(8<<10 + i)
		return classify(l.upload(ctx, s, h.base, uploader.Token, fmt.Sprintf("traffic-%d.txt", i), body, sum))
	})
	loop("invitation", 20*time.Millisecond, func(ctx context.Context, i int) outcome {
		_, o := l.invite(ctx, s, h.base, fmt.Sprintf("Witness %d", i), "witness")
		return o
	})
	loop("mute", 20*time.Millisecond, func(ctx context.Context, i int) outcome {
		a := s.do(ctx, "POST", h.base+"/participants/"+mutee+"/mute", h.judge.Token, map[string]any{"video": i%2 == 0}, "")
		return l.count("participant.muted", mutee, a)
	})
	for _, p := range chatters {
		loop("chat by "+p.name, 600*time.Millisecond, func(ctx context.Context, i int) outcome {
			return l.chat(ctx, p, fmt.Sprintf("%s says %d", p.name, i))
		})
	}
	return tr
}

// waitAcked waits until the writers have had n more writes acknowledged.
func (tr *traffic) waitAcked(t *testing.T, n int64) {
	t.Helper()
	target := tr.acks.Load() + n
	deadline := time.After(time.Minute)
	for tr.acks.Load() < target {
		select {
		case <-tr.changed:
		case <-deadline:
			t.Fatalf("the writers had %d writes acknowledged in a minute, want %d", n-(target-tr.acks.Load()), n)
		}
	}
}

func (tr *traffic) stop() {
	tr.cancel()
	tr.wg.Wait()
}

// slowest says which write waited longest for its answer, and how long.
func (tr *traffic) slowest() string {
	slow, what := tr.slowestWrite()
	return fmt.Sprintf("%v, %s", slow.Round(time.Millisecond), what)
}

func (tr *traffic) slowestWrite() (time.Duration, string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.slow, tr.slowWhat
}
