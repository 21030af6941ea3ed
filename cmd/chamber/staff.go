package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/sessions"
)

// openSessions opens the database for an operator command.
func openSessions(ctx context.Context, cfg storageConfig, stderr io.Writer) (*sessions.Service, func(), error) {
	log, err := cfg.logger(stderr)
	if err != nil {
		return nil, nil, err
	}
	db, err := cfg.openDatabase(ctx, quiet(log))
	if err != nil {
		return nil, nil, err
	}
	return sessions.New(sessions.Config{DB: db, Journal: journal.New(journal.Config{DB: db, Logger: log}), Logger: log}), func() { db.Close() }, nil
}

// runStaff manages staff members. "staff add" prints the new staff
// member's id alone on stdout so scripts can capture it; everything else
// goes to stderr. Staff sign in to the console with the OpenID provider;
// "chamber token add" gives them an API token for automation.
func runStaff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("chamber staff: want add, list or revoke")
	}
	sub, rest := args[0], args[1:]
	var (
		cfg                     storageConfig
		name, role, id, subject string
	)
	c := newCommand("staff " + sub)
	cfg.register(c)
	switch sub {
	case "add":
		c.fs.StringVar(&name, "name", "", "the staff member's name")
		c.fs.StringVar(&role, "role", "", "judge, clerk, notary, embassy_officer or admin")
		c.fs.StringVar(&subject, "subject", "", "their account at the OpenID provider, issuer|subject (links their sign-in)")
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
	svc, done, err := openSessions(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer done()
	switch sub {
	case "add":
		st, err := svc.AddStaff(ctx, "system", sessions.NewStaff{Name: name, Role: access.Role(role), ExternalSubject: subject})
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "added %s (%s); give them an API token with: chamber token add --staff %s --scope sessions:write\n", st.Name, st.Role, st.ID)
		fmt.Fprintln(stdout, st.ID)
	case "list":
		list, err := svc.ListStaff(ctx)
		if err != nil {
			return err
		}
		tw := table(stdout, "ID\tNAME\tROLE\tSUBJECT\tCREATED\tSTATE")
		for _, st := range list {
			state := "active"
			if st.Revoked {
				state = "revoked"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.ID, st.Name, st.Role, orDash(st.ExternalSubject), st.CreatedAt.Format("2006-01-02 15:04"), state)
		}
		return tw.Flush()
	case "revoke":
		if err := svc.RevokeStaff(ctx, "system", staffID); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked staff member %s: their sign-ins and API tokens ended; a running server closes their connections within seconds\n", staffID)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// table starts an operator command's table with its header; Flush ends it.
func table(w io.Writer, header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	return tw
}

// runToken manages API tokens. "token add" prints the token alone on
// stdout; it is shown this once.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("chamber token: want add, list or revoke")
	}
	sub, rest := args[0], args[1:]
	var f tokenFlags
	c := newCommand("token " + sub)
	f.cfg.register(c)
	if err := f.register(c, sub); err != nil {
		return err
	}
	if err := c.parse(rest, stderr); err != nil {
		return err
	}
	staffID, tokenID, err := f.ids(sub)
	if err != nil {
		return err
	}
	svc, done, err := openSessions(ctx, f.cfg, stderr)
	if err != nil {
		return err
	}
	defer done()
	switch sub {
	case "add":
		return addToken(ctx, svc, staffID, &f, stdout, stderr)
	case "list":
		return listTokens(ctx, svc, staffID, stdout)
	default: // "revoke"
		if err := svc.RevokeAPIToken(ctx, "system", tokenID); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked API token %s\n", tokenID)
		return nil
	}
}

// tokenFlags are chamber token's flags; each subcommand has some of them.
type tokenFlags struct {
	cfg                    storageConfig
	staff, id, name, scope string
	ttl                    time.Duration
}

// register adds subcommand sub's flags to c.
func (f *tokenFlags) register(c *command, sub string) error {
	switch sub {
	case "add":
		c.fs.StringVar(&f.staff, "staff", "", "the staff member's id (see chamber staff list)")
		c.fs.StringVar(&f.name, "name", "automation", "what the token is for")
		c.fs.StringVar(&f.scope, "scope", sessions.ScopeSessionsWrite, "comma-separated scopes: "+strings.Join(sessions.Scopes, ", "))
		c.fs.DurationVar(&f.ttl, "expires", sessions.DefaultAPITokenTTL, "lifetime, at most a year (8784h)")
	case "list":
		c.fs.StringVar(&f.staff, "staff", "", "only this staff member's tokens")
	case "revoke":
		c.fs.StringVar(&f.id, "id", "", "the token's id (see chamber token list)")
	default:
		return usagef("chamber token: unknown subcommand %q (want add, list or revoke)", sub)
	}
	return nil
}

// ids parses --staff (required by add) and --id (revoke); uuid.Nil for
// those not given.
func (f *tokenFlags) ids(sub string) (staffID, tokenID uuid.UUID, err error) {
	if f.staff != "" || sub == "add" {
		if staffID, err = uuid.Parse(f.staff); err != nil {
			return uuid.Nil, uuid.Nil, usagef("chamber token %s: --staff %q is not a staff id", sub, f.staff)
		}
	}
	if sub == "revoke" {
		if tokenID, err = uuid.Parse(f.id); err != nil {
			return uuid.Nil, uuid.Nil, usagef("chamber token revoke: --id %q is not a token id", f.id)
		}
	}
	return staffID, tokenID, nil
}

// addToken gives the staff member a token and prints it, once, alone on
// stdout.
func addToken(ctx context.Context, svc *sessions.Service, staffID uuid.UUID, f *tokenFlags, stdout, stderr io.Writer) error {
	expires := time.Now().Add(f.ttl)
	tok, err := svc.AddAPIToken(ctx, "system", staffID, sessions.NewAPIToken{Name: f.name, Scopes: strings.Split(f.scope, ","), ExpiresAt: &expires})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "API token %s for %s (%s), expires %s; shown once:\n", tok.ID, tok.StaffName, strings.Join(tok.Scopes, " "), tok.ExpiresAt.Format(time.RFC3339))
	fmt.Fprintln(stdout, tok.Token)
	return nil
}

// listTokens prints a table of the staff member's tokens (everyone's for
// uuid.Nil).
func listTokens(ctx context.Context, svc *sessions.Service, staffID uuid.UUID, stdout io.Writer) error {
	list, err := svc.ListAPITokens(ctx, staffID)
	if err != nil {
		return err
	}
	tw := table(stdout, "ID\tSTAFF\tNAME\tSCOPES\tEXPIRES\tLAST USED\tSTATE")
	for _, t := range list {
		used := "-"
		if t.LastUsedAt != nil {
			used = t.LastUsedAt.Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.StaffName, t.Name, strings.Join(t.Scopes, ","), t.ExpiresAt.Format("2006-01-02 15:04"), used, tokenState(t))
	}
	return tw.Flush()
}

func tokenState(t sessions.APIToken) string {
	switch {
	case t.Revoked:
		return "revoked"
	case time.Now().After(t.ExpiresAt):
		return "expired"
	}
	return "active"
}
