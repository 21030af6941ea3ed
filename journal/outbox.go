package journal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var metricDeferred = promauto.NewGauge(prometheus.GaugeOpts{
	Name: "chamber_journal_deferred_entries",
	Help: "Journal entries waiting in the outbox for the database to take them.",
})

// The outbox keeps the records that could not be appended when they
// happened — the database was down — and appends them when it can, each
// exactly once and in the order they happened: the entry and its outbox
// ID commit together (table journal_outbox_applied), so a crash between
// the commit and the outbox's cleanup never appends twice. With a
// directory (UseOutbox) the records are files, fsynced before
// AppendEventually returns, and survive a crash; without one they are
// kept in memory while the process runs.
type outbox struct {
	dir string

	mu   sync.Mutex
	mem  []deferred // without a directory
	wake chan struct{}
}

// deferred is a record waiting in the outbox.
type deferred struct {
	ID         string          `json:"id"`
	OccurredAt time.Time       `json:"occurred_at"`
	SessionID  uuid.UUID       `json:"session_id"`
	Actor      string          `json:"actor"`
	Action     string          `json:"action"`
	Details    json.RawMessage `json:"details"`
}

// UseOutbox keeps deferred records as files in dir, so they survive a
// crash; records already there are delivered by the next
// DeliverDeferred.
func (j *Journal) UseOutbox(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("journal: outbox: %w", err)
	}
	j.outbox.mu.Lock()
	defer j.outbox.mu.Unlock()
	j.outbox.dir = dir
	return nil
}

// AppendEventually appends rec now if it can; if the database cannot take
// it, the record goes to the outbox and is appended, with the time it
// happened in its details (occurred_at), as soon as the database is back
// (RunOutbox). It fails only when rec cannot be encoded or the outbox
// itself cannot keep it. Use it for facts that happen whether or not the
// database is there — someone left the room — rather than for changes of
// state, which belong in the transaction that makes them.
func (j *Journal) AppendEventually(ctx context.Context, rec Record) error {
	details, err := Canonical(rec.Details)
	if err != nil {
		return fmt.Errorf("journal: details of %s: %w", rec.Action, err)
	}
	occurred := j.now()
	_, err = j.Append(ctx, rec)
	if err == nil {
		return nil
	}
	d := deferred{ID: uuid.NewString(), OccurredAt: occurred, SessionID: rec.SessionID, Actor: rec.Actor, Action: rec.Action, Details: details}
	if perr := j.outbox.put(d); perr != nil {
		return errors.Join(err, perr)
	}
	metricDeferred.Inc()
	j.log.Warn("journal entry deferred until the database takes it", "action", rec.Action, "session", rec.SessionID, "err", err)
	return nil
}

func (o *outbox) put(d deferred) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	defer o.signal()
	if o.dir == "" {
		o.mem = append(o.mem, d)
		return nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	// Names sort by time, so the outbox is delivered in order.
	name := filepath.Join(o.dir, fmt.Sprintf("%020d-%s.json", d.OccurredAt.UnixNano(), d.ID))
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("journal: outbox: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err == nil {
		err = syncDir(o.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("journal: outbox: %w", err)
	}
	return nil
}

func (o *outbox) signal() {
	if o.wake == nil {
		o.wake = make(chan struct{}, 1)
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// waiting returns the outbox's records, oldest first, with how to remove
// each once delivered.
func (o *outbox) waiting() ([]deferred, []func(), error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dir == "" {
		ds := slices.Clone(o.mem)
		removes := make([]func(), len(ds))
		for i, d := range ds {
			removes[i] = func() { o.removeMem(d.ID) }
		}
		return ds, removes, nil
	}
	names, err := filepath.Glob(filepath.Join(o.dir, "*.json"))
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(names)
	var (
		ds      []deferred
		removes []func()
	)
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, nil, fmt.Errorf("journal: outbox: %w", err)
		}
		var d deferred
		if err := json.Unmarshal(b, &d); err != nil || d.ID == "" {
			return nil, nil, fmt.Errorf("journal: outbox %s: unreadable record: %v", name, err)
		}
		ds = append(ds, d)
		removes = append(removes, func() {
			os.Remove(name)
			syncDir(o.dir)
		})
	}
	return ds, removes, nil
}

func (o *outbox) removeMem(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mem = slices.DeleteFunc(o.mem, func(d deferred) bool { return d.ID == id })
}

// DeliverDeferred appends the outbox's records, oldest first, and returns
// how many it appended. It stops at the first that fails, so the order
// holds; what is left waits for the next call.
func (j *Journal) DeliverDeferred(ctx context.Context) (int, error) {
	ds, removes, err := j.outbox.waiting()
	if err != nil {
		return 0, err
	}
	n := 0
	for i, d := range ds {
		metricDeferred.Set(float64(len(ds) - i))
		appended, err := j.deliver(ctx, d)
		if err != nil {
			return n, err
		}
		removes[i]()
		if appended {
			n++
		}
	}
	metricDeferred.Set(0)
	return n, nil
}

// deliver appends one deferred record unless it was appended before.
func (j *Journal) deliver(ctx context.Context, d deferred) (appended bool, err error) {
	details, err := withOccurredAt(d.Details, d.OccurredAt)
	if err != nil {
		return false, err
	}
	err = j.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO journal_outbox_applied (id, seq) VALUES ($1, 0) ON CONFLICT (id) DO NOTHING`, d.ID)
		if err != nil {
			return fmt.Errorf("journal: outbox: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // appended before a crash took the file's removal
		}
		e, err := j.AppendTx(ctx, tx, Record{SessionID: d.SessionID, Actor: d.Actor, Action: d.Action, Details: details})
		if err != nil {
			return err
		}
		appended = true
		_, err = tx.ExecContext(ctx, `UPDATE journal_outbox_applied SET seq = $1 WHERE id = $2`, e.Seq, d.ID)
		return err
	})
	return appended, err
}

// withOccurredAt adds the time a deferred record happened to its details.
func withOccurredAt(details json.RawMessage, at time.Time) (json.RawMessage, error) {
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(details)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("journal: outbox: details: %w", err)
	}
	m["occurred_at"] = at.UTC().Format(timeLayout)
	return Canonical(m)
}

// RunOutbox delivers deferred records every interval, and as soon as one
// is deferred, until ctx ends.
func (j *Journal) RunOutbox(ctx context.Context, interval time.Duration) {
	j.outbox.mu.Lock()
	j.outbox.signal() // creates the channel; the first pass runs at once
	wake := j.outbox.wake
	j.outbox.mu.Unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		if n, err := j.DeliverDeferred(ctx); err != nil {
			j.log.Warn("deferred journal entries still waiting for the database", "delivered", n, "err", err)
		} else if n > 0 {
			j.log.Info("deferred journal entries appended", "entries", n)
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
