package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/chamber-court/chamber/journal"
)

// runJournal implements "chamber journal verify": walk the whole chain and
// its timestamp anchors; exit 1 naming the first broken entry, else print
// the count and head hash.
func runJournal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return usagef("chamber journal: want verify")
	}
	var (
		cfg    storageConfig
		asJSON bool
		trust  stringList
	)
	c := newCommand("journal verify")
	cfg.register(c)
	c.fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	c.fs.Var(&trust, "trust", "extra trusted root (PEM) for the timestamp tokens; repeatable")
	if err := c.parse(args[1:], stderr); err != nil {
		return err
	}
	log, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	db, err := cfg.openDatabase(ctx, quiet(log))
	if err != nil {
		return err
	}
	defer db.Close()
	verifier, err := tokenVerifier(cfg.dataDir, trust...)
	if err != nil {
		return err
	}
	rep, err := journal.New(journal.Config{DB: db, Logger: log}).Verify(ctx, verifier)
	var broken *journal.BrokenError
	if errors.As(err, &broken) {
		if asJSON {
			json.NewEncoder(stdout).Encode(map[string]any{"valid": false, "broken_seq": broken.Seq, "reason": broken.Reason})
		} else {
			fmt.Fprintf(stdout, "BROKEN at entry %d: %s\n", broken.Seq, broken.Reason)
		}
		return &exitError{code: 1}
	}
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"valid": true, "entries": rep.Entries, "head": rep.Head, "anchors": rep.Anchors})
	}
	fmt.Fprintf(stdout, "OK: %d entries, head %s, %d timestamp anchors verified\n", rep.Entries, rep.Head, rep.Anchors)
	return nil
}

// quiet keeps migration chatter out of operator commands' output.
func quiet(log *slog.Logger) *slog.Logger {
	return slog.New(leveled{log.Handler(), slog.LevelWarn})
}

type leveled struct {
	slog.Handler
	min slog.Level
}

func (l leveled) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= l.min && l.Handler.Enabled(ctx, level)
}
