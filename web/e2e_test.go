package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/chamber-court/chamber/internal/testenv"
)

// The browser tests run the real binary (`chamber serve`, built from
// ../cmd/chamber, or CHAMBER_TEST_BINARY) on free loopback ports and drive
// Debian's Chromium with fake camera and microphone through chromedp. One
// server and one browser serve every scenario; each person is a tab.

var (
	srvOnce sync.Once
	srv     *chamberServer
	srvErr  error
	workDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if srv != nil {
		srv.stop()
	}
	if workDir != "" && os.Getenv("CHAMBER_TEST_KEEP") == "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

type chamberServer struct {
	bin, dataDir, url, logPath string
	cmd                        *exec.Cmd
	done                       chan error
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// server builds and starts chamber once for the whole package.
func server(t *testing.T) *chamberServer {
	t.Helper()
	srvOnce.Do(func() { srv, srvErr = startServer() })
	if srvErr != nil {
		t.Fatalf("starting chamber: %v", srvErr)
	}
	return srv
}

func startServer() (*chamberServer, error) {
	var err error
	workDir, err = os.MkdirTemp("", "chamber-web-e2e-")
	if err != nil {
		return nil, err
	}
	bin := os.Getenv("CHAMBER_TEST_BINARY")
	if bin == "" {
		bin = filepath.Join(workDir, "chamber")
		build := exec.Command("go", "build", "-o", bin, "../cmd/chamber")
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ../cmd/chamber: %v\n%s", err, out)
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &chamberServer{bin: bin, dataDir: filepath.Join(workDir, "data"), url: fmt.Sprintf("http://127.0.0.1:%d", port),
		logPath: filepath.Join(workDir, "server.log"), done: make(chan error, 1)}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "serve", "--data-dir", s.dataDir, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--public-url", s.url, "--media-udp-port", "0", "--media-tcp-port", "0", "--turn-udp-port", "0", "--turn-tcp-port", "0",
		"--log-level", "debug")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(s.url + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("chamber serve exited: %v\n%s", err, s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("chamber serve not ready after 60s\n%s", s.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return s, nil
}

func (s *chamberServer) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
}

func (s *chamberServer) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// staff adds a staff member with the operator command and returns the token.
func (s *chamberServer) staff(t *testing.T, name, role string) string {
	t.Helper()
	cmd := exec.Command(s.bin, "staff", "add", "--data-dir", s.dataDir, "--name", name, "--role", role)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chamber staff add: %v\n%s", err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// call makes a REST call; out (if not nil) receives the JSON answer.
func (s *chamberServer) call(t *testing.T, token, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if w, ok := out.(*[]byte); ok {
			*w = b
		} else if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	if res.StatusCode >= 300 && out != nil {
		t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	return res.StatusCode
}

// hasRoute reports whether the server's OpenAPI document lists a path.
func (s *chamberServer) hasRoute(t *testing.T, path string) bool {
	t.Helper()
	var doc struct {
		Paths map[string]any `json:"paths"`
	}
	s.call(t, "", "GET", "/api/v1/openapi.json", nil, &doc)
	_, ok := doc.Paths[path]
	return ok
}

// ——— the browser ———

// testHooks runs before any page script: it keeps the page's
// RTCPeerConnections and WebSockets where a test can reach them, so the
// test reads getStats and can drop the signalling socket.
const testHooks = `(() => {
  const PCs = [], WSs = [];
  const PC = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...a) { const pc = new PC(...a); PCs.push(pc); return pc; };
  window.RTCPeerConnection.prototype = PC.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, PC);
  const WS = window.WebSocket;
  window.WebSocket = function (...a) { const ws = new WS(...a); WSs.push(ws); return ws; };
  window.WebSocket.prototype = WS.prototype;
  Object.setPrototypeOf(window.WebSocket, WS);
  window.__test = { PCs, WSs };
})();`

type browser struct {
	ctx    context.Context
	cancel func()
	shots  string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	chromium := testenv.Chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.DisableGPU, chromedp.NoSandbox, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-features", "MediaRouter,OptimizationHints,Translate"),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil {
		acancel()
		t.Fatalf("starting chromium: %v", err)
	}
	shots := os.Getenv("CHAMBER_SCREENSHOT_DIR")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	return &browser{ctx: bctx, cancel: func() { bcancel(); acancel() }, shots: shots}
}

// tab opens a new tab with the test hooks installed.
func (b *browser) tab(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: testHooks})
		return err
	}))
	if err != nil {
		t.Fatalf("new tab: %v", err)
	}
	return ctx
}

// do runs steps with a timeout, failing the test with the page's state.
func do(t *testing.T, ctx context.Context, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("browser: %v\npage: %s\nserver log:\n%s", err, pageState(ctx), srv.logTail())
	}
}

// eval evaluates a JavaScript expression (promises awaited) into T.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("eval %q: %v\npage: %s", expr, err, pageState(ctx))
	}
	return v
}

// waitJS waits until a JavaScript expression is truthy.
func waitJS(t *testing.T, ctx context.Context, timeout time.Duration, expr string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(c, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		t.Fatalf("waiting for %s: %v\npage: %s\nserver log:\n%s", expr, err, pageState(ctx), srv.logTail())
	}
}

func pageState(ctx context.Context) string {
	c, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := chromedp.Run(c, chromedp.Evaluate[string](`(async () => {
	  let stats = [];
	  for (const pc of (window.__test ? window.__test.PCs : [])) {
	    if (pc.connectionState === 'closed') continue;
	    (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' || s.type === 'outbound-rtp')
	      stats.push([s.type, s.kind, s.rid || '', s.bytesReceived ?? s.bytesSent, s.framesDecoded ?? s.framesEncoded ?? '', s.keyFramesDecoded ?? '', s.decoderImplementation || s.encoderImplementation || ''].join(' ')); });
	  }
	  return location.pathname + " | " + document.title + " | " + document.body.innerText.slice(0, 1500) + "\nstats:\n" + stats.join("\n");
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

func (b *browser) screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.CaptureScreenshot())
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		t.Error(err)
	}
}

// JavaScript probes.
const (
	// framesOf returns the decoded frame count of a participant's remote camera video, or -1.
	framesOf = `(pid => { const v = document.querySelector('figure.tile[data-participant="' + pid + '"][data-source="camera"] video.remote');
	  return v && v.videoWidth > 0 ? v.getVideoPlaybackQuality().totalVideoFrames : -1; })`
	// audioBytes sums the inbound audio bytes of the given browser track ids.
	audioBytes = `(async ids => { let sum = 0; for (const pc of window.__test.PCs) { if (pc.connectionState === 'closed') continue;
	  const st = await pc.getStats(); st.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'audio' && ids.includes(s.trackIdentifier)) sum += s.bytesReceived; }); }
	  return sum; })`
)

// videoFlows checks that ctx receives pid's video: it has a size and its
// decoded frame count rises.
func videoFlows(t *testing.T, ctx context.Context, who, pid string) {
	t.Helper()
	waitJS(t, ctx, 30*time.Second, framesOf+`(`+jsString(pid)+`) > 0`)
	f1 := eval[int](t, ctx, framesOf+`(`+jsString(pid)+`)`)
	waitJS(t, ctx, 10*time.Second, framesOf+`(`+jsString(pid)+`) > `+fmt.Sprint(f1+5))
	w := eval[int](t, ctx, `document.querySelector('figure.tile[data-participant="`+pid+`"][data-source="camera"] video.remote').videoWidth`)
	if w <= 0 {
		t.Fatalf("%s: video of %s has width %d", who, pid, w)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// ——— the scenarios ———

func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests are not short")
	}
	testenv.Chromium(t)
	s := server(t)
	b := newBrowser(t)
	defer b.cancel()

	clerkToken := s.staff(t, "Kadri Kask", "clerk")
	var judgeLink, partyLink, publicLink, sessionID string

	t.Run("console", func(t *testing.T) {
		ctx := b.tab(t)
		do(t, ctx, 30*time.Second,
			chromedp.Navigate(s.url+"/"),
			chromedp.WaitVisible(chromedp.CSS("#staff-token")))
		b.screenshot(t, ctx, "console-sign-in")
		do(t, ctx, 30*time.Second,
			chromedp.SendKeys(chromedp.CSS("#staff-token"), clerkToken),
			click("#sign-in"),
			click("#new-session"),
			chromedp.WaitVisible(chromedp.CSS("#new-title")),
			chromedp.SendKeys(chromedp.CSS("#new-title"), "Kask v. Tamm"),
			chromedp.SendKeys(chromedp.CSS("#new-case"), "2-26-1234"),
			click("#new-public"),
			click("#create-session"),
			chromedp.WaitVisible(chromedp.CSS("#invite-send")))
		loc := eval[string](t, ctx, `location.hash`)
		sessionID = strings.TrimPrefix(loc, "#/session/")
		invite := func(name, role string) string {
			n := eval[int](t, ctx, `document.querySelectorAll('.join-link').length`)
			do(t, ctx, 20*time.Second,
				chromedp.SetValue(chromedp.CSS("#inv-name"), name),
				chromedp.SetValue(chromedp.CSS("#inv-role"), role),
				click("#invite-send"))
			waitJS(t, ctx, 10*time.Second, fmt.Sprintf(`document.querySelectorAll('.join-link').length > %d`, n))
			return eval[string](t, ctx, `document.querySelector('.join-link').value`)
		}
		judgeLink = invite("Mari Maasikas", "judge")
		partyLink = invite("Jaan Tamm", "party")
		do(t, ctx, 20*time.Second, click("#public-link"), chromedp.WaitVisible(chromedp.CSS(".public-link")))
		publicLink = eval[string](t, ctx, `document.querySelector('.public-link').value`)
		if !strings.HasPrefix(judgeLink, s.url+"/join/chi_") || !strings.HasPrefix(publicLink, s.url+"/watch/") {
			t.Fatalf("links: judge %q public %q", judgeLink, publicLink)
		}
		waitJS(t, ctx, 10*time.Second, `document.querySelectorAll('#participants tbody tr').length === 2`)
		b.screenshot(t, ctx, "console-session")
		do(t, ctx, 20*time.Second, chromedp.Navigate(s.url+"/#/"), chromedp.WaitVisible(chromedp.CSS("#session-list .session-link")))
		b.screenshot(t, ctx, "console-sessions")
		do(t, ctx, 10*time.Second, chromedp.Navigate(s.url+"/#/session/"+sessionID), chromedp.WaitVisible(chromedp.CSS("#open-journal")), click("#open-journal"),
			chromedp.WaitVisible(chromedp.CSS(".journal-table")))
		if n := eval[int](t, ctx, `document.querySelectorAll('.journal-table tbody tr').length`); n < 3 {
			t.Fatalf("journal shows %d entries, want at least 3", n)
		}
	})
	if judgeLink == "" {
		t.Fatal("the console scenario made no links")
	}

	judge, party := b.tab(t), b.tab(t)
	var judgeID, partyID string
	t.Run("admit", func(t *testing.T) {
		do(t, judge, 30*time.Second, chromedp.Navigate(judgeLink), chromedp.WaitVisible(chromedp.CSS("#join-button")))
		if p := eval[string](t, judge, `location.pathname`); p != "/join/" {
			t.Fatalf("the token stayed in the address bar: %s", p)
		}
		if tok := eval[string](t, judge, `sessionStorage.getItem('chamber.join')`); !strings.HasPrefix(tok, "chi_") {
			t.Fatalf("token not kept in sessionStorage: %q", tok)
		}
		waitJS(t, judge, 10*time.Second, `document.querySelector('.preview-video').videoWidth > 0`)
		b.screenshot(t, judge, "join")
		do(t, judge, 30*time.Second, click("#join-button"), chromedp.WaitVisible(chromedp.CSS("#video-grid")))
		waitJS(t, judge, 20*time.Second, `document.querySelector('.room').dataset.view === 'room'`)

		do(t, party, 30*time.Second, chromedp.Navigate(partyLink), click("#join-button"), chromedp.WaitVisible(chromedp.CSS("#waiting-room")))
		if txt := eval[string](t, party, `document.querySelector('#waiting-room').innerText`); !strings.Contains(txt, "The clerk will admit you") {
			t.Fatalf("waiting screen says %q", txt)
		}
		b.screenshot(t, party, "waiting-room")

		do(t, judge, 30*time.Second, chromedp.WaitVisible(chromedp.CSS("button.admit")))
		partyID = eval[string](t, judge, `document.querySelector('button.admit').closest('li').dataset.participant`)
		do(t, judge, 10*time.Second, click("button.admit"))
		waitJS(t, party, 20*time.Second, `document.querySelector('.room').dataset.view === 'room'`)
		videoFlows(t, judge, "judge", partyID)
		judgeID = eval[string](t, judge, `document.querySelector('figure.tile.self').dataset.participant`)
		videoFlows(t, party, "party", judgeID)
		b.screenshot(t, judge, "room-judge")
	})
	if partyID == "" {
		t.Fatal("admission failed")
	}
	_ = sessionID
	_ = publicLink
}

var _ = errors.New
var _ = sha256.Sum256
var _ = hex.EncodeToString
