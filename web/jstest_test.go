package web_test

import (
	"os/exec"
	"testing"

	"github.com/chamber-court/chamber/internal/testenv"
)

// TestClientModules runs the browser client's unit tests with node: the
// room's store (jstest/store.test.mjs) and the string catalogs
// (jstest/strings.test.mjs: a translation missing a key fails).
func TestClientModules(t *testing.T) {
	node := testenv.Command(t, "node")
	out, err := exec.Command(node, "--test", "--test-reporter=spec", "jstest/").CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("node --test jstest/: %v", err)
	}
}
