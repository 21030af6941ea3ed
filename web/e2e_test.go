package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/chamber-court/chamber/acts/mrz"
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
	// logs is the server whose log a failure shows.
	logs *chamberServer
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
	logs = srv
	return srv
}

func startServer() (*chamberServer, error) {
	var err error
	workDir, err = os.MkdirTemp("", "chamber-web-e2e-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return startServerIn(workDir, port)
}

// binaryIn builds chamber into dir once (or uses CHAMBER_TEST_BINARY).
var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func binaryIn(dir string) (string, error) {
	binOnce.Do(func() {
		if binPath = os.Getenv("CHAMBER_TEST_BINARY"); binPath != "" {
			return
		}
		binPath = filepath.Join(dir, "chamber")
		if out, err := exec.Command("go", "build", "-o", binPath, "../cmd/chamber").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ../cmd/chamber: %v\n%s", err, out)
		}
	})
	return binPath, binErr
}

// startServerIn runs chamber serve with its data under dir on port, with
// extra flags, and waits until it is ready.
func startServerIn(dir string, port int, extra ...string) (*chamberServer, error) {
	bin, err := binaryIn(dir)
	if err != nil {
		return nil, err
	}
	s := &chamberServer{bin: bin, dataDir: filepath.Join(dir, "data"), url: fmt.Sprintf("http://127.0.0.1:%d", port),
		logPath: filepath.Join(dir, "server.log"), done: make(chan error, 1)}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--data-dir", s.dataDir, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--public-url", s.url, "--media-udp-port", "0", "--media-tcp-port", "0", "--turn-udp-port", "0", "--turn-tcp-port", "0",
		"--log-level", "debug"}, extra...)
	s.cmd = exec.Command(bin, args...)
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
	res, err := http.Get(s.url + "/")
	if err != nil {
		s.stop()
		return nil, err
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		s.stop()
		return nil, fmt.Errorf("GET / answers %d: %s does not mount package web's pages (web.New(…).Pages() in api.Config.Mount)", res.StatusCode, bin)
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
	if s == nil {
		return "(no server)"
	}
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// run runs an operator command on the server's data and returns stdout.
func (s *chamberServer) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(s.bin, append(args, "--data-dir", s.dataDir)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chamber %v: %v\n%s", args, err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// staff adds a staff member with the operator command and returns their id.
func (s *chamberServer) staff(t *testing.T, name, role string) string {
	t.Helper()
	return s.run(t, "staff", "add", "--name", name, "--role", role)
}

// apiToken gives a staff member an API token, for the test's own REST calls.
func (s *chamberServer) apiToken(t *testing.T, staffID string) string {
	t.Helper()
	return s.run(t, "token", "add", "--staff", staffID, "--scope", "sessions:write", "--expires", "1h")
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

// tab opens a new tab with the test hooks installed, in the browser's
// default context: its cookies are shared with every other such tab.
func (b *browser) tab(t *testing.T) context.Context {
	t.Helper()
	return hooked(t, b.ctx)
}

// person opens a tab in a browser context of its own — its own cookies,
// as one person's browser has — with the test hooks installed; tabs
// opened from it (tabIn) share its cookies.
func (b *browser) person(t *testing.T) context.Context {
	t.Helper()
	return hooked(t, b.ctx, chromedp.WithNewBrowserContext())
}

// tabIn opens another tab of the same person.
func tabIn(t *testing.T, person context.Context) context.Context {
	t.Helper()
	return hooked(t, person)
}

func hooked(t *testing.T, parent context.Context, opts ...chromedp.ContextOption) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent, opts...)
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
		t.Fatalf("browser: %v\npage: %s\nserver log:\n%s", err, pageState(ctx), logs.logTail())
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
	c, cancel := context.WithTimeout(ctx, timeout+15*time.Second)
	defer cancel()
	_, err := chromedp.Run(c, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		t.Fatalf("waiting for %s: %v\npage: %s\nserver log:\n%s", expr, err, pageState(ctx), logs.logTail())
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
	// cameraIn returns the getStats inbound-rtp report of a participant's
	// remote camera video ({frameWidth, framesDecoded, …}), or null.
	cameraIn = `(async pid => { const v = document.querySelector('figure.tile[data-participant="' + pid + '"][data-source="camera"] video.remote');
	  const tr = v && v.srcObject && v.srcObject.getVideoTracks()[0]; if (!tr) return null; let found = null;
	  for (const pc of window.__test.PCs) { if (pc.connectionState === 'closed') continue;
	    (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.trackIdentifier === tr.id) found = s; }); }
	  return found; })`
	// cameraOut returns the page's outgoing camera encodings by RID: {q: {frameWidth, bytesSent}, …}.
	cameraOut = `(async () => { const out = {}; for (const pc of window.__test.PCs) { if (pc.connectionState === 'closed') continue;
	  (await pc.getStats()).forEach(s => { if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid || ''] = {frameWidth: s.frameWidth || 0, bytesSent: s.bytesSent}; }); }
	  return out; })()`
	// wsOpen is true when the page's newest signalling WebSocket is open.
	wsOpen = `(window.__test.WSs.length > 0 && window.__test.WSs.at(-1).readyState === 1)`
	// audioBytes sums the inbound audio bytes of the given browser track ids.
	audioBytes = `(async ids => { let sum = 0; for (const pc of window.__test.PCs) { if (pc.connectionState === 'closed') continue;
	  const st = await pc.getStats(); st.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'audio' && ids.includes(s.trackIdentifier)) sum += s.bytesReceived; }); }
	  return sum; })`
)

// videoFlows checks that ctx receives pid's video: it has a size and its
// decoded frame count rises (framesOf counts only a video with a width).
func videoFlows(t *testing.T, ctx context.Context, pid string) {
	t.Helper()
	waitJS(t, ctx, 30*time.Second, framesOf+`(`+jsString(pid)+`) > 0`)
	f1 := eval[int](t, ctx, framesOf+`(`+jsString(pid)+`)`)
	waitJS(t, ctx, 10*time.Second, framesOf+`(`+jsString(pid)+`) > `+fmt.Sprint(f1+5))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// devSignIn signs a person's browser in to the console through the
// development sign-in (the shared server has no identity provider).
func devSignIn(t *testing.T, ctx context.Context, s *chamberServer, staffID string) {
	t.Helper()
	do(t, ctx, 30*time.Second,
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(chromedp.CSS("#dev-sign-in-warning")),
		chromedp.SetValue(chromedp.CSS("#dev-staff"), staffID),
		click("#dev-sign-in"),
		chromedp.WaitVisible(chromedp.CSS("#sign-out")))
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

	clerkID := s.staff(t, "Kadri Kask", "clerk")
	judgeStaff := s.staff(t, "Mari Maasikas", "judge")
	var partyLink, publicLink, sessionID string

	t.Run("console", func(t *testing.T) {
		ctx := b.person(t)
		do(t, ctx, 30*time.Second,
			chromedp.Navigate(s.url+"/"),
			chromedp.WaitVisible(chromedp.CSS("#dev-sign-in-warning")))
		b.screenshot(t, ctx, "console-sign-in")
		devSignIn(t, ctx, s, clerkID)
		do(t, ctx, 30*time.Second,
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
		// Officials are assigned from the staff list, never invited.
		if roles := eval[[]string](t, ctx, `[...document.querySelectorAll('#inv-role option')].map(o => o.value)`); slices.Contains(roles, "judge") || slices.Contains(roles, "clerk") {
			t.Fatalf("the invite form offers an official role: %v", roles)
		}
		waitJS(t, ctx, 10*time.Second, `!!document.querySelector('#assign-staff option[value="`+judgeStaff+`"]')`)
		do(t, ctx, 20*time.Second, chromedp.SetValue(chromedp.CSS("#assign-staff"), judgeStaff), click("#assign-send"))
		waitJS(t, ctx, 10*time.Second, `!!document.querySelector('#participants tr[data-staff="`+judgeStaff+`"]')`)
		partyLink = invite("Jaan Tamm", "party")
		do(t, ctx, 20*time.Second, click("#public-link"), chromedp.WaitVisible(chromedp.CSS(".public-link")))
		publicLink = eval[string](t, ctx, `document.querySelector('.public-link').value`)
		if !strings.HasPrefix(partyLink, s.url+"/join/chi_") || !strings.HasPrefix(publicLink, s.url+"/watch/") {
			t.Fatalf("links: party %q public %q", partyLink, publicLink)
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
	if partyLink == "" {
		t.Fatal("the console scenario made no links")
	}

	// The judge signs in to the console as themselves and enters from it.
	judgeBrowser := b.person(t)
	devSignIn(t, judgeBrowser, s, judgeStaff)
	do(t, judgeBrowser, 30*time.Second, chromedp.Navigate(s.url+"/#/session/"+sessionID), chromedp.WaitVisible(chromedp.CSS("#enter-room")),
		chromedp.Evaluate[chromedp.Void](`window.open = (url, name) => { window.__opened = [url, name]; return null; }`), click("#enter-room"))
	waitJS(t, judgeBrowser, 10*time.Second, `!!window.__opened`)
	roomPath := eval[string](t, judgeBrowser, `window.__opened[0]`)
	if roomPath != "/room/"+sessionID {
		t.Fatalf("Enter the room opens %q", roomPath)
	}
	judge, party := tabIn(t, judgeBrowser), b.tab(t)
	var judgeID, partyID string
	t.Run("admit", func(t *testing.T) {
		do(t, judge, 30*time.Second, chromedp.Navigate(s.url+roomPath), chromedp.WaitVisible(chromedp.CSS("#join-button")))
		// No token anywhere: the judge is in by their own sign-in.
		if leak := eval[string](t, judge, `location.href + ' ' + JSON.stringify(sessionStorage) + ' ' + document.cookie`); strings.Contains(leak, "chi_") || strings.Contains(leak, "chb_") {
			t.Fatalf("a credential is visible to the judge's page: %s", leak)
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
		videoFlows(t, judge, partyID)
		judgeID = eval[string](t, judge, `document.querySelector('figure.tile.self').dataset.participant`)
		videoFlows(t, party, judgeID)
		b.screenshot(t, judge, "room-judge")
	})
	if partyID == "" {
		t.Fatal("admission failed")
	}

	t.Run("simulcast", func(t *testing.T) {
		// The judge's camera goes out in three layers, on SSRCs Chromium
		// announces only through the RID header extension.
		type encoding struct {
			FrameWidth int `json:"frameWidth"`
			BytesSent  int `json:"bytesSent"`
		}
		var out map[string]encoding
		waitJS(t, judge, 15*time.Second, `(async () => { const o = await `+cameraOut+`; return ['q', 'h', 'f'].every(r => o[r] && o[r].frameWidth > 0 && o[r].bytesSent > 0); })()`)
		out = eval[map[string]encoding](t, judge, cameraOut)
		if !(out["q"].FrameWidth < out["h"].FrameWidth && out["h"].FrameWidth < out["f"].FrameWidth) {
			t.Fatalf("the judge's layers are not q < h < f: %+v", out)
		}
		// The party receives one of them (videoFlows in admit); asked for
		// the lowest (quality max_layer 0), it gets the lowest.
		track := eval[string](t, party, `document.querySelector('figure.tile[data-participant="`+judgeID+`"][data-source="camera"]').dataset.track`)
		quality := func(maxLayer string) {
			data := `{track_id: ` + jsString(track) + maxLayer + `}`
			eval[bool](t, party, `(window.__test.WSs.at(-1).send(JSON.stringify({type: 'quality', data: `+data+`})), true)`)
		}
		width := func() int {
			return eval[int](t, party, `(async () => { const s = await `+cameraIn+`(`+jsString(judgeID)+`); return s ? s.frameWidth || 0 : 0; })()`)
		}
		before := width()
		quality(`, max_layer: 0`)
		waitJS(t, party, 10*time.Second, `(async () => { const s = await `+cameraIn+`(`+jsString(judgeID)+`); return s && s.frameWidth === `+fmt.Sprint(out["q"].FrameWidth)+`; })()`)
		videoFlows(t, party, judgeID)
		t.Logf("the party receives the judge at width %d, %d when capped at layer 0", before, width())
		// Without the cap it goes back up as far as its bandwidth estimate allows.
		quality(``)
		waitJS(t, party, 15*time.Second, `(async () => { const s = await `+cameraIn+`(`+jsString(judgeID)+`); return s && s.frameWidth > `+fmt.Sprint(out["q"].FrameWidth)+`; })()`)
		videoFlows(t, party, judgeID)
	})

	t.Run("mute", func(t *testing.T) {
		// The party's microphone track as the judge's browser knows it.
		waitJS(t, judge, 20*time.Second, `!!document.querySelector('audio[data-participant="`+partyID+`"]')`)
		ids := eval[string](t, judge, `JSON.stringify([...document.querySelectorAll('audio[data-participant="`+partyID+`"]')].map(a => a.srcObject.getTracks()[0].id))`)
		bytesNow := func() int { return eval[int](t, judge, audioBytes+`(`+ids+`)`) }
		b0 := bytesNow()
		time.Sleep(1500 * time.Millisecond)
		if b1 := bytesNow(); b1 <= b0 {
			t.Fatalf("the party's audio does not arrive before the mute: %d then %d bytes", b0, b1)
		}
		menu := `li.person[data-participant="` + partyID + `"] details.menu`
		do(t, judge, 20*time.Second, click(menu+" summary"), click(menu+" .menu-item:first-child"))
		waitJS(t, party, 10*time.Second, `document.querySelector('#mic-button').disabled`)
		time.Sleep(time.Second) // packets already in flight
		c1 := bytesNow()
		time.Sleep(2500 * time.Millisecond)
		if c2 := bytesNow(); c2 > c1 {
			t.Fatalf("the party's audio still arrives after the mute: %d then %d bytes", c1, c2)
		}
		waitJS(t, judge, 10*time.Second, `document.querySelector('figure.tile[data-participant="`+partyID+`"] .tile-muted') !== null`)
	})

	t.Run("observer", func(t *testing.T) {
		obs := b.tab(t)
		do(t, obs, 30*time.Second, chromedp.Navigate(publicLink), chromedp.WaitVisible(chromedp.CSS("#watch-name")))
		if p := eval[string](t, obs, `location.pathname`); p != "/watch/" {
			t.Fatalf("the public token stayed in the address bar: %s", p)
		}
		do(t, obs, 30*time.Second, chromedp.SendKeys(chromedp.CSS("#watch-name"), "Liis Lepik"), click("#join-button"),
			chromedp.WaitVisible(chromedp.CSS("#waiting-room")))
		// Public viewers wait like everyone else until the judge admits them.
		do(t, judge, 20*time.Second, click("#tab-people"), click("button.admit"))
		waitJS(t, obs, 20*time.Second, `document.querySelector('.room') && document.querySelector('.room').dataset.view === 'room'`)
		videoFlows(t, obs, judgeID)
		if n := eval[int](t, obs, `document.querySelectorAll('#mic-button, #camera-button, #share-button, #chat-input').length`); n != 0 {
			t.Fatalf("the observer has %d publish controls", n)
		}
		if n := eval[int](t, obs, `window.__test.PCs.flatMap(pc => pc.getSenders()).filter(s => s.track).length`); n != 0 {
			t.Fatalf("the observer sends %d tracks", n)
		}
		b.screenshot(t, obs, "watch-observer")
	})

	t.Run("chat", func(t *testing.T) {
		do(t, judge, 10*time.Second, click("#tab-chat"), chromedp.SendKeys(chromedp.CSS("#chat-input"), "The hearing is open.\r"))
		waitJS(t, party, 20*time.Second, `document.querySelector('#chat-log').textContent.includes('The hearing is open.')`)
		waitJS(t, judge, 10*time.Second, `document.querySelector('#chat-log').textContent.includes('The hearing is open.')`)
	})

	// rejoinedVideo checks that a page that has just opened its signalling
	// WebSocket again shows pid's video within 2 s: the SFU asks the
	// publisher for a keyframe until the returning subscriber has one.
	rejoinedVideo := func(t *testing.T, ctx context.Context, pid string) {
		t.Helper()
		start := time.Now()
		// A <video> from before the rejoin is marked data-before.
		waitJS(t, ctx, 2*time.Second, framesOf+`(`+jsString(pid)+`) > 0 && !document.querySelector('figure.tile[data-participant="`+pid+`"][data-source="camera"] video.remote').dataset.before`)
		t.Logf("video %v after the WebSocket opened", time.Since(start).Round(10*time.Millisecond))
	}

	t.Run("reconnect", func(t *testing.T) {
		// A few times: whether the keyframe request races the new
		// subscriber's connection depends on timing.
		for range 3 {
			eval[bool](t, party, `(document.querySelectorAll('video.remote').forEach(v => v.dataset.before = '1'), true)`)
			n := eval[int](t, party, `window.__test.WSs.length`)
			eval[bool](t, party, `(window.__test.WSs.at(-1).close(), true)`)
			waitJS(t, party, 30*time.Second, fmt.Sprintf(`window.__test.WSs.length > %d && `+wsOpen, n))
			rejoinedVideo(t, party, judgeID)
		}
		waitJS(t, party, 10*time.Second, `document.querySelector('#connection-banner').hidden`)
		if v := eval[string](t, party, `document.querySelector('.room').dataset.view`); v != "room" {
			t.Fatalf("after reconnecting the party is in %q, not the room", v)
		}
		videoFlows(t, party, judgeID)
		videoFlows(t, judge, partyID)
		if !eval[bool](t, party, `document.querySelector('#mic-button').disabled`) {
			t.Fatal("the server-enforced mute was lost on reconnect")
		}
	})

	t.Run("reload", func(t *testing.T) {
		// The token left the address bar; a reload finds it in sessionStorage.
		do(t, party, 30*time.Second, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#join-button")))
		if p := eval[string](t, party, `location.pathname`); p != "/join/" {
			t.Fatalf("after a reload the page is at %s", p)
		}
		do(t, party, 20*time.Second, click("#join-button"))
		waitJS(t, party, 20*time.Second, wsOpen)
		rejoinedVideo(t, party, judgeID)
		waitJS(t, party, 20*time.Second, `document.querySelector('.room') && document.querySelector('.room').dataset.view === 'room'`)
		videoFlows(t, party, judgeID)
	})

	t.Run("phone", func(t *testing.T) {
		do(t, party, 10*time.Second, chromedp.EmulateViewport(390, 844), chromedp.Sleep(500*time.Millisecond))
		b.screenshot(t, party, "room-phone")
		do(t, party, 10*time.Second, click(`[data-panel="chat"]`), chromedp.WaitVisible(chromedp.CSS("#chat-log")))
		b.screenshot(t, party, "room-phone-chat")
	})

	// The hearing is over; the ceremony needs the CPU.
	for _, c := range []context.Context{judge, party} {
		_ = chromedp.Cancel(c)
	}

	t.Run("ceremony", func(t *testing.T) { ceremony(t, s, b) })
}

// ceremony walks a notarial act through the web UI: the notary uploads the
// draft, the embassy officer checks the principal's passport (MRZ typed
// like a desk reader types it, face and document stills), the principal
// and the notary sign in the documents panel, the notary seals, and
// /verify finds the signatures valid.
func ceremony(t *testing.T, s *chamberServer, b *browser) {
	notaryStaff, officerStaff := s.staff(t, "Tiina Tamm", "notary"), s.staff(t, "Peeter Pärn", "embassy_officer")
	notaryToken := s.apiToken(t, notaryStaff)
	var sess struct {
		ID string `json:"id"`
	}
	s.call(t, notaryToken, "POST", "/api/v1/sessions", map[string]any{"kind": "notarisation", "title": "Will of Ants Kuusk", "act_type": "will"}, &sess)
	type invitation struct {
		ParticipantID string `json:"participant_id"`
		Token         string `json:"token"`
		JoinURL       string `json:"join_url"`
	}
	// The notary presides and assigns the embassy officer: both take part
	// as themselves. Only the principal is invited.
	s.call(t, notaryToken, "POST", "/api/v1/sessions/"+sess.ID+"/assignments", map[string]any{"staff_id": officerStaff}, nil)
	var principalInv invitation
	s.call(t, notaryToken, "POST", "/api/v1/sessions/"+sess.ID+"/invitations", map[string]any{"name": "Ants Kuusk", "role": "principal"}, &principalInv)
	roomURL := s.url + "/room/" + sess.ID

	pdf, err := os.ReadFile("../documents/pades/testdata/libreoffice-will.pdf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	draft := filepath.Join(dir, "will-draft.pdf")
	if err := os.WriteFile(draft, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pdf)
	want := hex.EncodeToString(sum[:])
	inRoom := `document.querySelector('.room') && document.querySelector('.room').dataset.view === 'room'`

	notaryBrowser := b.person(t)
	devSignIn(t, notaryBrowser, s, notaryStaff)
	notary := tabIn(t, notaryBrowser)
	do(t, notary, 30*time.Second, chromedp.Navigate(roomURL), click("#join-button"))
	waitJS(t, notary, 20*time.Second, inRoom)
	do(t, notary, 30*time.Second, click("#tab-documents"), chromedp.SetUploadFiles(chromedp.CSS("#upload-input"), []string{draft}))
	waitJS(t, notary, 30*time.Second, `!!document.querySelector('li.doc')`)
	if got := eval[string](t, notary, `document.querySelector('li.doc code.hash').title`); got != want {
		t.Fatalf("the panel shows SHA-256 %s, want %s", got, want)
	}
	do(t, notary, 30*time.Second, click("li.doc .doc-actions button"))
	waitJS(t, notary, 30*time.Second, `document.querySelector('.doc-viewer .viewer').dataset.rendered === '1'`)
	b.screenshot(t, notary, "documents")

	officerBrowser := b.person(t)
	devSignIn(t, officerBrowser, s, officerStaff)
	officer, principal := tabIn(t, officerBrowser), b.tab(t)
	do(t, officer, 30*time.Second, chromedp.Navigate(roomURL), click("#join-button"), chromedp.WaitVisible(chromedp.CSS("#waiting-room")))
	do(t, principal, 30*time.Second, chromedp.Navigate(principalInv.JoinURL), click("#join-button"), chromedp.WaitVisible(chromedp.CSS("#waiting-room")))
	do(t, notary, 10*time.Second, click("#tab-people"))
	for i := 0; i < 2; i++ {
		waitJS(t, notary, 20*time.Second, `document.querySelectorAll('button.admit').length > 0`)
		n := eval[int](t, notary, `document.querySelectorAll('button.admit').length`)
		do(t, notary, 10*time.Second, click("button.admit"))
		waitJS(t, notary, 10*time.Second, fmt.Sprintf(`document.querySelectorAll('button.admit').length < %d`, n))
	}
	waitJS(t, officer, 20*time.Second, inRoom)
	waitJS(t, principal, 20*time.Second, inRoom)

	// The presiding notary presents the draft; the principal's stage follows.
	do(t, notary, 20*time.Second, click("#tab-documents"), click("li.doc .doc-actions button:nth-child(3)"))
	waitJS(t, principal, 30*time.Second, `document.querySelector('.featured .viewer') && document.querySelector('.featured .viewer').dataset.rendered === '1'`)
	b.screenshot(t, principal, "presented-document")
	do(t, notary, 20*time.Second, click(".present-bar button:last-child"))
	waitJS(t, principal, 20*time.Second, `document.querySelector('.featured').hidden`)

	// The officer checks the passport.
	videoFlows(t, officer, principalInv.ParticipantID)
	zone, err := mrz.FormatTD3(mrz.Document{Type: "P", IssuingState: "EST", Surname: "KUUSK", GivenNames: "ANTS", Number: "KX7654321",
		Nationality: "EST", BirthDate: "1951-06-14", Sex: "M", ExpiryDate: time.Now().AddDate(4, 0, 0).Format(time.DateOnly)})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(zone, "\n")
	digit := "0"
	if lines[1][9] == '0' {
		digit = "1"
	}
	bad := lines[0] + "\r" + lines[1][:9] + digit + lines[1][10:] // a wrong check digit
	do(t, officer, 20*time.Second, click("#tab-act"), chromedp.WaitVisible(chromedp.CSS("#mrz-input")),
		chromedp.SendKeys(chromedp.CSS("#identity-embassy"), "Embassy of Estonia in London"),
		chromedp.SendKeys(chromedp.CSS("#mrz-input"), bad+"\r"))
	waitJS(t, officer, 10*time.Second, `document.querySelectorAll('#mrz-errors li').length > 0`)
	if v := eval[string](t, officer, `document.querySelector('#identity-participant').value`); v != principalInv.ParticipantID {
		t.Fatalf("the identity panel offers %q, not the principal %s", v, principalInv.ParticipantID)
	}
	b.screenshot(t, officer, "identity-invalid-mrz")
	do(t, officer, 20*time.Second, chromedp.Evaluate[chromedp.Void](`document.querySelector("#mrz-input").value = ""`),
		chromedp.SendKeys(chromedp.CSS("#mrz-input"), lines[0]+"\r"+lines[1]+"\r"),
		chromedp.WaitVisible(chromedp.CSS("#capture-face")), click("#capture-face"))
	waitJS(t, officer, 20*time.Second, `document.querySelector('#check-current').textContent.includes('Face still stored')`)
	do(t, officer, 20*time.Second, click("#capture-document"))
	waitJS(t, officer, 20*time.Second, `document.querySelector('#check-current').textContent.includes('Document photo stored')`)
	do(t, officer, 20*time.Second, chromedp.SendKeys(chromedp.CSS("#principal-address"), "1 Kensington Court, London"), click("#identity-verified"))
	waitJS(t, officer, 20*time.Second, `!!document.querySelector('.check[data-status="verified"]')`)
	b.screenshot(t, officer, "identity-check")

	// The notary sees it live.
	do(t, notary, 10*time.Second, click("#tab-act"))
	waitJS(t, notary, 20*time.Second, `!!document.querySelector('#identity-checks .check[data-status="verified"]')`)

	sign := func(ctx context.Context, n int) {
		do(t, ctx, 20*time.Second, click("#tab-documents"))
		waitJS(t, ctx, 20*time.Second, `!!document.querySelector('li.doc button.sign')`)
		do(t, ctx, 20*time.Second, click("li.doc button.sign"), chromedp.WaitVisible(chromedp.CSS("#sign-location")),
			chromedp.SendKeys(chromedp.CSS("#sign-location"), "London"))
		if n == 1 {
			b.screenshot(t, ctx, "sign-dialog")
		}
		do(t, ctx, 10*time.Second, click("#sign-submit"))
		waitJS(t, ctx, 60*time.Second, fmt.Sprintf(`document.querySelector('li.doc') && document.querySelector('li.doc').dataset.signatures === '%d'`, n))
	}
	sign(principal, 1)
	sign(notary, 2)

	do(t, notary, 20*time.Second, click("#tab-act"), chromedp.SendKeys(chromedp.CSS("#seal-description"), "Last will of Ants Kuusk"), click("#seal-button"))
	waitJS(t, notary, 30*time.Second, `!!document.querySelector('#act-state .act-number')`)
	b.screenshot(t, notary, "act-sealed")

	docID := eval[string](t, notary, `(document.querySelector('#tab-documents').click(), document.querySelector('li.doc').dataset.document)`)
	var signed []byte
	s.call(t, notaryToken, "GET", "/api/v1/documents/"+docID+"/content", nil, &signed)
	if bytes.Equal(signed, pdf) || !bytes.HasPrefix(signed, []byte("%PDF")) {
		t.Fatalf("the signed version is not a new PDF (%d bytes)", len(signed))
	}
	signedPath := filepath.Join(dir, "will-signed.pdf")
	if err := os.WriteFile(signedPath, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	verify := b.tab(t)
	do(t, verify, 30*time.Second, chromedp.Navigate(s.url+"/verify"), chromedp.WaitVisible(chromedp.CSS("#verify-drop")),
		chromedp.SetUploadFiles(chromedp.CSS("#verify-file"), []string{signedPath}))
	waitJS(t, verify, 60*time.Second, `!!document.querySelector('#verdict')`)
	if v := eval[string](t, verify, `document.querySelector('#verdict').dataset.valid`); v != "true" {
		t.Fatalf("/verify says the signed PDF is not valid: %s", pageState(verify))
	}
	if n := eval[int](t, verify, `document.querySelectorAll('.sig-card[data-status="valid"]').length`); n < 2 {
		t.Fatalf("/verify shows %d valid signatures, want the principal's and the notary's", n)
	}
	if txt := eval[string](t, verify, `document.querySelector('#verify-result').innerText`); !strings.Contains(txt, "has not been changed") {
		t.Fatalf("/verify does not say the document is unchanged: %s", txt)
	}
	b.screenshot(t, verify, "verify")
}
