package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Help is generated from the one command table, and every command in it
// answers -h without doing anything.
func TestCommandTable(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"help"}, &out, &errOut); code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	seen := map[string]bool{}
	for _, c := range commands {
		if seen[c.name] {
			t.Errorf("command %q listed twice", c.name)
		}
		seen[c.name] = true
		if !strings.Contains(out.String(), c.synopsis+" ") {
			t.Errorf("help does not list %q", c.synopsis)
		}
	}
	if code := run(context.Background(), []string{"no-such-command"}, &out, &errOut); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if code := run(context.Background(), nil, &out, &errOut); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
}
