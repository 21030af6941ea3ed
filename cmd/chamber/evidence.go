package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/acts"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/recording"
)

// runEvidence implements "chamber evidence reconcile": apply the retention
// the record still owes, then compare every session's objects in the
// evidence store with the record, journalling each orphan once. It prints
// the report (--json for JSON) and exits 1 when the record names an object
// the store does not hold.
func runEvidence(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "reconcile" {
		return usagef("chamber evidence: want reconcile")
	}
	var (
		cfg    storageConfig
		s3     s3Config
		grace  time.Duration
		asJSON bool
	)
	c := newCommand("evidence reconcile")
	cfg.register(c)
	s3.register(c)
	c.fs.DurationVar(&grace, "evidence-orphan-grace", time.Hour, "how old an object no record names must be to count as an orphan")
	c.fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
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
	store, _, err := openEvidence(ctx, cfg.dataDir, s3, quiet(log))
	if err != nil {
		return err
	}
	jnl := journal.New(journal.Config{DB: db, Logger: log})
	// Only their knowledge of pending writes is used: nothing runs.
	rec := recording.New(recording.Config{DB: db, Journal: jnl, Store: store, Logger: log, SpoolDir: filepath.Join(cfg.dataDir, "spool")})
	actSvc := acts.New(acts.Config{DB: db, Journal: jnl, Store: store, Logger: log})
	cat := catalog.New(catalog.Config{DB: db, Store: store, Journal: jnl, Logger: log, Grace: grace,
		Pending: []func(context.Context, uuid.UUID) ([]string, error){rec.PendingWrites, actSvc.PendingWrites}})
	retained, err := cat.ApplyRetention(ctx)
	if err != nil {
		log.Warn("some owed retention could not be applied", "err", err)
	}
	rep, err := cat.Reconcile(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		if err := json.NewEncoder(stdout).Encode(struct {
			catalog.Report
			Retained int `json:"retention_applied"`
		}{rep, retained}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "%d sessions, %d objects: %d recorded, %d pending, %d orphans found now, %d known before, %d adopted, %d missing; retention applied to %d\n",
			rep.Sessions, rep.Objects, rep.Recorded, rep.Pending, len(rep.Orphans), rep.KnownOrphans, len(rep.Adopted), len(rep.Missing), retained)
		for _, o := range rep.Orphans {
			fmt.Fprintf(stdout, "orphan  %s  sha256 %s  %d bytes\n", o.Key, o.SHA256, o.Size)
		}
		for _, k := range rep.Missing {
			fmt.Fprintf(stdout, "MISSING %s\n", k)
		}
	}
	if len(rep.Missing) > 0 {
		return &exitError{code: 1}
	}
	return nil
}
