package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// errUsage marks a configuration error: the command prints one line and
// exits with status 2.
var errUsage = errors.New("usage")

// usageError is a configuration problem worth one line on stderr.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
func (e *usageError) Unwrap() error { return errUsage }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// command is one subcommand's flag set. Every flag can also be set by an
// environment variable CHAMBER_<FLAG>, with dashes as underscores; the
// command line wins.
type command struct {
	name string
	fs   *flag.FlagSet
}

func newCommand(name string) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := &command{name: name, fs: fs}
	fs.Usage = func() {}
	return c
}

// envName returns the environment variable for a flag.
func envName(flagName string) string {
	return "CHAMBER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse reads the command line, then the environment for flags not given.
// -h prints the flags with their variables and defaults.
func (c *command) parse(args []string, stderr io.Writer) error {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printUsage(stderr)
			return flag.ErrHelp
		}
		return usagef("chamber %s: %v (see chamber %s -h)", c.name, err, c.name)
	}
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	c.fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = usagef("chamber %s: invalid value %q for %s: %v", c.name, v, envName(f.Name), e)
			}
		}
	})
	return err
}

// parseFile parses a command line that names exactly one file, with flags
// before or after it ("chamber verify will.pdf --json"); what describes the
// file in the usage error.
func (c *command) parseFile(args []string, stderr io.Writer, what string) (string, error) {
	var files []string
	for rest := args; len(rest) > 0; {
		if err := c.parse(rest, stderr); err != nil {
			return "", err
		}
		rest = c.fs.Args()
		if len(rest) > 0 {
			files, rest = append(files, rest[0]), rest[1:]
		}
	}
	if len(files) != 1 {
		return "", usagef("chamber %s: give exactly one %s", c.name, what)
	}
	return files[0], nil
}

// openFile opens a file named on the command line and returns its size.
func (c *command) openFile(name string) (*os.File, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, usagef("chamber %s: %v", c.name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

func (c *command) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: chamber %s [flags]\n\nFlags (each also settable by its environment variable):\n", c.name)
	c.fs.VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  --%-18s %-28s %s (default %s)\n", f.Name, envName(f.Name), f.Usage, def)
	})
}

// byteSize is a flag value like 200MiB, 1.5GB or 1048576.
type byteSize int64

func (b *byteSize) String() string { return fmt.Sprint(int64(*b)) }

func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

func parseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			var f float64
			if _, err := fmt.Sscanf(strings.TrimSpace(num), "%g", &f); err != nil || f < 0 {
				return 0, fmt.Errorf("not a size: %q", s)
			}
			return int64(f * u.mult), nil
		}
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 0 {
		return 0, fmt.Errorf("not a size: %q (e.g. 200MiB)", s)
	}
	return n, nil
}

// years is a duration flag that also accepts "10y".
type years time.Duration

func (y *years) String() string { return time.Duration(*y).String() }

func (y *years) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "y"); ok {
		var f float64
		if _, err := fmt.Sscanf(n, "%g", &f); err != nil || f <= 0 {
			return fmt.Errorf("not a duration: %q", s)
		}
		*y = years(time.Duration(f * 365.25 * 24 * float64(time.Hour)))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*y = years(d)
	return nil
}
