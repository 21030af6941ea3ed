package bundle

import (
	"archive/zip"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
)

// verifyJournal checks journal.json without holding it: a first pass
// reads the anchors' sequence numbers, a second walks the entries through
// the hash chain and keeps the hashes of just those entries, a third
// checks each anchor against them and its timestamp. Every value (an
// entry, an anchor) is read within maxJournalValue bytes.
func verifyJournal(rep *Report, zf *zip.File, roots *x509.CertPool) {
	want := map[int64]string{} // anchored sequence numbers → their entries' hashes
	err := walkJournal(zf, nil, func(a journal.Anchor) error {
		if len(want) >= maxAnchors {
			return fmt.Errorf("more than %d anchors", maxAnchors)
		}
		want[a.Seq] = ""
		return nil
	})
	if err != nil {
		rep.problem(JournalName, "%v", err)
		return
	}
	chain := journal.Chain{Subset: true}
	err = walkJournal(zf, func(e journal.Entry) error {
		if e.SessionID != rep.SessionID {
			return fmt.Errorf("entry %d belongs to session %s, not %s", e.Seq, e.SessionID, rep.SessionID)
		}
		// The hash covers the details as the journal stored them, in
		// canonical JSON.
		if len(e.Details) > 0 {
			details, err := journal.Canonical(e.Details)
			if err != nil {
				return fmt.Errorf("entry %d: details: %w", e.Seq, err)
			}
			e.Details = details
		}
		if err := chain.Add(e); err != nil {
			return err
		}
		if _, ok := want[e.Seq]; ok {
			want[e.Seq] = e.Hash
		}
		return nil
	}, nil)
	if err != nil {
		rep.problem(JournalName, "%v", err)
		return
	}
	rep.Entries, rep.JournalHead = int(chain.Count()), chain.Head()
	if len(want) == 0 {
		return
	}
	verify := func(token, digest []byte) (time.Time, error) {
		t, _, err := pki.VerifyTimestamp(token, digest, roots)
		return t, err
	}
	err = walkJournal(zf, nil, func(a journal.Anchor) error {
		if want[a.Seq] != a.Hash {
			rep.problem(JournalName, "anchor at entry %d covers a hash that is not that entry's", a.Seq)
			return nil
		}
		if _, err := journal.VerifyAnchor(a, verify); err != nil {
			rep.problem(JournalName, "%v", err)
			return nil
		}
		rep.Anchors++
		return nil
	})
	if err != nil {
		rep.problem(JournalName, "%v", err)
	}
}

// walkJournal streams journal.json ({"entries": [...], "anchors": [...]},
// in either order) and calls entry or anchor, when not nil, for each value;
// the other kind is skipped. A callback's error ends the walk.
func walkJournal(zf *zip.File, entry func(journal.Entry) error, anchor func(journal.Anchor) error) error {
	rc, err := open(zf)
	if err != nil {
		return err
	}
	defer rc.Close()
	return walkJournalFrom(rc, entry, anchor)
}

// walkJournalFrom is walkJournal over any reader of journal.json.
func walkJournalFrom(r io.Reader, entry func(journal.Entry) error, anchor func(journal.Anchor) error) error {
	in := &valueCap{r: r}
	dec := json.NewDecoder(in)
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		in.reset()
		tok, err := dec.Token()
		if err != nil {
			return notJSON(err)
		}
		switch tok {
		case "entries":
			err = eachValue(dec, in, entry)
		case "anchors":
			err = eachValue(dec, in, anchor)
		default:
			err = skipValue(dec, in)
		}
		if err != nil {
			return err
		}
	}
	// A journal cut short is not an empty one.
	in.reset()
	return expectDelim(dec, '}')
}

// eachValue decodes each element of the array at the decoder's position
// and hands it to f; with f nil it skips them.
func eachValue[T any](dec *json.Decoder, in *valueCap, f func(T) error) error {
	in.reset()
	if err := expectDelim(dec, '['); err != nil {
		return err
	}
	for dec.More() {
		in.reset()
		if f == nil {
			if err := skipValue(dec, in); err != nil {
				return err
			}
			continue
		}
		var v T
		if err := dec.Decode(&v); err != nil {
			return notJSON(err)
		}
		if err := f(v); err != nil {
			return err
		}
	}
	in.reset()
	return expectDelim(dec, ']')
}

func skipValue(dec *json.Decoder, in *valueCap) error {
	var raw json.RawMessage
	in.reset()
	if err := dec.Decode(&raw); err != nil {
		return notJSON(err)
	}
	return nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return notJSON(err)
	}
	if tok != d {
		return fmt.Errorf("not a journal: %v where %v was expected", tok, d)
	}
	return nil
}

var errValueTooLarge = fmt.Errorf("a journal value larger than %d bytes", maxJournalValue)

func notJSON(err error) error {
	if errors.Is(err, errValueTooLarge) {
		return err
	}
	return fmt.Errorf("not valid JSON: %w", err)
}

// valueCap lets the decoder read at most maxJournalValue bytes (plus its
// read-ahead) between two resets, so that no single value, however long,
// is buffered whole.
type valueCap struct {
	r    io.Reader
	read int64
}

func (v *valueCap) reset() { v.read = 0 }

func (v *valueCap) Read(p []byte) (int, error) {
	if v.read >= maxJournalValue+64<<10 {
		return 0, errValueTooLarge
	}
	n, err := v.r.Read(p)
	v.read += int64(n)
	return n, err
}
