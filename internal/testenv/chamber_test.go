package testenv

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHelperReadyz is not a test: run by the scripts below with
// TESTENV_HELPER_LISTEN set, it answers /readyz on that address until
// killed, as a ready server does.
func TestHelperReadyz(t *testing.T) {
	addr := os.Getenv("TESTENV_HELPER_LISTEN")
	if addr == "" {
		return
	}
	http.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {})
	t.Fatal(http.ListenAndServe(addr, nil))
}

// TestStartChamberRetriesATakenPort: a server whose port was taken between
// choosing and binding it is started again on other ports. The "binary"
// is a script that says so on its first run and on its second answers
// /readyz on the address it was given (TestHelperReadyz).
func TestStartChamberRetriesATakenPort(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "chamber")
	script := `#!/bin/sh
# serve --listen 127.0.0.1:PORT …
if [ ! -e "` + dir + `/tried" ]; then
	touch "` + dir + `/tried"
	echo "chamber serve: --listen $3: listen tcp $3: bind: address already in use" >&2
	exit 2
fi
TESTENV_HELPER_LISTEN=$3 exec "` + os.Args[0] + `" -test.run='^TestHelperReadyz$'
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := StartChamber(ctx, ChamberConfig{Bin: bin, Dir: dir})
	if err != nil {
		t.Fatalf("StartChamber: %v", err)
	}
	defer c.Kill()
	if runs := strings.Count(c.Log(), "=== chamber serve, run"); runs != 2 {
		t.Errorf("%d runs, want 2 (one refused, one on other ports):\n%s", runs, c.Log())
	}
	if code, _ := c.Ready(ctx); code != 200 {
		t.Errorf("/readyz %d after the retry", code)
	}
}

// TestStartChamberFailsForOtherReasons: a server that fails for another
// reason is not tried again.
func TestStartChamberFailsForOtherReasons(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "chamber")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'chamber serve: cannot reach the database' >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := StartChamber(ctx, ChamberConfig{Bin: bin, Dir: dir}); err == nil || !strings.Contains(err.Error(), "cannot reach the database") {
		t.Fatalf("StartChamber: %v; want the server's own failure", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "server.log"))
	if runs := strings.Count(string(b), "=== chamber serve, run"); runs != 1 {
		t.Errorf("%d runs, want 1", runs)
	}
}
