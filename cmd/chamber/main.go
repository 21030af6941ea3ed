// Command chamber is Chamber's single binary: the server (chamber serve)
// and the operator commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
)

// Set at build time with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

// subcommand is one entry of the command table.
type subcommand struct {
	name     string // what follows "chamber"
	synopsis string // for the usage text, e.g. "journal verify"
	summary  string
	run      func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is the one table of subcommands, in the order help lists them.
var commands = []subcommand{
	{"serve", "serve", "run the service", func(ctx context.Context, args []string, _, stderr io.Writer) error {
		return runServe(ctx, args, stderr)
	}},
	{"migrate", "migrate", "apply database migrations and exit", func(ctx context.Context, args []string, _, stderr io.Writer) error {
		return runMigrate(ctx, args, stderr)
	}},
	{"staff", "staff", "add, list or revoke staff members", runStaff},
	{"token", "token", "add, list or revoke staff members' API tokens (automation)", runToken},
	{"signer", "signer", "enroll, list or revoke officials' personal signing identities", runSigner},
	{"journal", "journal verify", "verify the hash-chained journal", runJournal},
	{"evidence", "evidence reconcile", "compare the evidence store with the record; journal orphans", runEvidence},
	{"verify", "verify", "verify the signatures of a PDF", runVerify},
	{"bundle", "bundle verify", "verify an evidence bundle offline", runBundle},
	{"loadtest", "loadtest", "load-test a running server's media path", runLoadtest},
	{"drain", "drain", "hand this node's rooms to the other nodes and take no new ones (before stopping it)", runDrain},
	{"version", "version", "print version information", func(_ context.Context, _ []string, stdout, _ io.Writer) error {
		printVersion(stdout)
		return nil
	}},
}

// usage is the text of "chamber help", generated from the command table.
func usage() string {
	var b strings.Builder
	b.WriteString("Chamber — virtual courtrooms and remote notarisation.\n\nUsage: chamber <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-19s %s\n", c.synopsis, c.summary)
	}
	b.WriteString("\nRun \"chamber <command> -h\" for a command's flags.\n")
	return b.String()
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command and returns the process exit status: 0 on
// success, 1 on failure, 2 on a configuration error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage())
		return 0
	case "--version", "-version":
		cmd = "version"
	}
	for _, c := range commands {
		if c.name == cmd {
			return exitCode(c.run(ctx, rest, stdout, stderr), stderr)
		}
	}
	return exitCode(usagef("chamber: unknown command %q (run chamber help)", cmd), stderr)
}

// exitError carries a specific exit status with an already-printed message.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func exitCode(err error, stderr io.Writer) int {
	var exit *exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &exit):
		return exit.code
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, err)
		return 2
	default:
		fmt.Fprintln(stderr, "chamber:", err)
		return 1
	}
}

func printVersion(w io.Writer) {
	c := commit
	if c == "" {
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	fmt.Fprintf(w, "chamber %s (commit %s, %s, %s/%s)\n", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
