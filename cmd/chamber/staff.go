package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/sessions"
)

// runStaff manages staff members. "staff add" prints the new token alone on
// stdout so scripts can capture it; everything else goes to stderr.
func runStaff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("chamber staff: want add, list or revoke")
	}
	sub, rest := args[0], args[1:]
	var (
		cfg  storageConfig
		name string
		role string
		id   string
	)
	c := newCommand("staff " + sub)
	cfg.register(c)
	switch sub {
	case "add":
		c.fs.StringVar(&name, "name", "", "the staff member's name")
		c.fs.StringVar(&role, "role", "", "judge, clerk, notary, embassy_officer or admin")
	case "revoke":
		c.fs.StringVar(&id, "id", "", "the staff member's id (see chamber staff list)")
	case "list":
	default:
		return usagef("chamber staff: unknown subcommand %q (want add, list or revoke)", sub)
	}
	if err := c.parse(rest, stderr); err != nil {
		return err
	}
	if sub == "add" && (name == "" || !access.Role(role).IsStaff()) {
		return usagef("chamber staff add: --name and --role (one of %v) are required", access.StaffRoles)
	}
	var staffID uuid.UUID
	if sub == "revoke" {
		var err error
		if staffID, err = uuid.Parse(id); err != nil {
			return usagef("chamber staff revoke: --id %q is not a staff id", id)
		}
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
	svc := sessions.New(sessions.Config{DB: db, Journal: journal.New(db, nil, log), Log: log})
	switch sub {
	case "add":
		st, token, err := svc.AddStaff(ctx, name, access.Role(role))
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "added %s (%s), id %s; the token below is shown once:\n", st.Name, st.Role, st.ID)
		fmt.Fprintln(stdout, token)
	case "list":
		list, err := svc.ListStaff(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tSTATE")
		for _, st := range list {
			state := "active"
			if st.Revoked {
				state = "revoked"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.ID, st.Name, st.Role, st.CreatedAt.Format("2006-01-02 15:04"), state)
		}
		return tw.Flush()
	case "revoke":
		if err := svc.RevokeStaff(ctx, staffID); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked staff member %s\n", staffID)
	}
	return nil
}
