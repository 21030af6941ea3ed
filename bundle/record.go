package bundle

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/chamber-court/chamber/journal"
)

// CheckRecord checks a bundle's evidence against the record it carries: a
// manifest of version 2 or later promises that the files under evidence/
// are exactly the objects the session's journal lists as part of its
// record (the "objects" of its entries — an upload, a signed version, a
// still, a recording's files and manifest, an archived journal), each
// with the SHA-256 the journal gives. A file no entry names (a failed
// write), a recorded object the bundle lacks, and a file whose SHA-256
// differs from the record are problems. Earlier manifests made no such
// promise and are not checked. journalJSON is journal.json as the bundle
// holds it, read as a stream (one entry at a time, each within the
// verifier's cap); Verify checks its chain separately.
func CheckRecord(m Manifest, journalJSON io.Reader) []Problem {
	if m.Version < 2 {
		return nil
	}
	named, err := recordedObjects(journalJSON)
	if err != nil {
		return []Problem{{Path: JournalName, Reason: "cannot read the record's objects: " + err.Error()}}
	}
	var problems []Problem
	present := map[string]bool{}
	for _, f := range m.Files {
		if !strings.HasPrefix(f.Path, evidenceDir) {
			continue
		}
		if f.Source == "" {
			problems = append(problems, Problem{Path: f.Path, Reason: "evidence file without the key it was copied from"})
			continue
		}
		present[f.Source] = true
		o, ok := named[f.Source]
		switch {
		case !ok:
			problems = append(problems, Problem{Path: f.Path, Reason: fmt.Sprintf("not part of the record: no journal entry lists %s", f.Source)})
		case o.sha256 != f.SHA256:
			problems = append(problems, Problem{Path: f.Path,
				Reason: fmt.Sprintf("SHA-256 %s differs from the %s the record gives for %s (entry %d)", f.SHA256, o.sha256, f.Source, o.seq)})
		}
	}
	var missing []string
	for key := range named {
		if !present[key] {
			missing = append(missing, key)
		}
	}
	sort.Strings(missing)
	for _, key := range missing {
		problems = append(problems, Problem{Path: evidenceDir + evidencePath(m, key),
			Reason: fmt.Sprintf("part of the record (journal entry %d lists %s) but missing from the bundle", named[key].seq, key)})
	}
	return problems
}

type recordedObject struct {
	sha256 string
	seq    int64
}

// recordedObjects collects key → SHA-256 from the "objects" lists of the
// journal's entries.
func recordedObjects(journalJSON io.Reader) (map[string]recordedObject, error) {
	out := map[string]recordedObject{}
	err := walkJournalFrom(journalJSON, func(e journal.Entry) error {
		var d struct {
			Objects []struct {
				Key    string `json:"key"`
				SHA256 string `json:"sha256"`
			} `json:"objects"`
		}
		if len(e.Details) == 0 || json.Unmarshal(e.Details, &d) != nil {
			return nil
		}
		for _, o := range d.Objects {
			if o.Key != "" {
				out[o.Key] = recordedObject{sha256: o.SHA256, seq: e.Seq}
			}
		}
		return nil
	}, nil)
	return out, err
}

// evidencePath is where Build puts an object of the session's record.
func evidencePath(m Manifest, key string) string {
	return strings.TrimPrefix(key, "sessions/"+m.SessionID.String()+"/")
}
