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
	"syscall"
)

// Set at build time with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

const usage = `Chamber — virtual courtrooms and remote notarisation.

Usage: chamber <command> [flags]

Commands:
  serve            run the service
  migrate          apply database migrations and exit
  staff            add, list or revoke staff members
  token            add, list or revoke staff members' API tokens (automation)
  journal verify   verify the hash-chained journal
  verify           verify the signatures of a PDF
  bundle verify    verify an evidence bundle offline
  loadtest         load-test a running server's media path
  version          print version information

Run "chamber <command> -h" for a command's flags.
`

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
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = runServe(ctx, rest, stderr)
	case "migrate":
		err = runMigrate(ctx, rest, stderr)
	case "version", "--version", "-version":
		printVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		if f, ok := extraCommands[cmd]; ok {
			err = f(ctx, rest, stdout, stderr)
			break
		}
		err = usagef("chamber: unknown command %q (run chamber help)", cmd)
	}
	return exitCode(err, stderr)
}

// extraCommands are registered by the files that implement them.
var extraCommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{}

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
