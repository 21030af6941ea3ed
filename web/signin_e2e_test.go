package web_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	_ "modernc.org/sqlite"

	"github.com/chamber-court/chamber/internal/oidctest"
	"github.com/chamber-court/chamber/internal/testenv"
)

// TestSignInWithProvider runs Chamber against a real OpenID provider
// (internal/oidctest) and signs staff in through the provider's login page
// in Chromium; then a disabled account, an expired sign-in and an ID token
// for another client are each refused.
func TestSignInWithProvider(t *testing.T) {
	if testing.Short() {
		t.Skip("browser tests are not short")
	}
	testenv.Chromium(t)
	op := oidctest.New(t)
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	publicURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	op.AddClient("chamber-court", "court-secret", publicURL+"/auth/callback")
	s, err := startServerIn(dir, port, "--oidc-issuer", op.Issuer, "--oidc-client-id", "chamber-court", "--oidc-client-secret", "court-secret",
		"--oidc-role-claim", "groups", "--oidc-role-map", "court-clerks=clerk,court-judges=judge",
		"--oidc-check-interval", "1s", "--credential-sweep-interval", "1s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	prev := logs
	logs = s
	t.Cleanup(func() { logs = prev })
	op.AddUser(oidctest.User{Username: "kadri", Password: "pw-kadri", GivenName: "Kadri", Family: "Kask", Groups: []string{"court-clerks"}})
	op.AddUser(oidctest.User{Username: "jaan", Password: "pw-jaan", GivenName: "Jaan", Family: "Saar", Groups: []string{"court-judges"}})
	b := newBrowser(t)
	defer b.cancel()

	signIn := func(ctx context.Context, user, password string) {
		t.Helper()
		do(t, ctx, 30*time.Second,
			chromedp.Navigate(s.url+"/"),
			click("#sign-in-provider"),
			chromedp.WaitVisible(chromedp.CSS("#username")),
			chromedp.SendKeys(chromedp.CSS("#username"), user),
			chromedp.SendKeys(chromedp.CSS("#password"), password),
			click("#login-submit"))
	}
	signedIn := func(ctx context.Context, name string) {
		t.Helper()
		do(t, ctx, 30*time.Second, chromedp.WaitVisible(chromedp.CSS("#sign-out")))
		if who := eval[string](t, ctx, `document.querySelector('.who').innerText`); !strings.Contains(who, name) {
			t.Fatalf("signed in as %q, want %s", who, name)
		}
	}
	refused := func(ctx context.Context) string {
		t.Helper()
		do(t, ctx, 30*time.Second, chromedp.WaitVisible(chromedp.CSS("#sign-in-provider")))
		return eval[string](t, ctx, `document.querySelector('#sign-in-error').innerText`)
	}

	// A clerk signs in through the provider's login page.
	kadri := b.person(t)
	signIn(kadri, "kadri", "pw-kadri")
	signedIn(kadri, "Kadri Kask")
	if who := eval[string](t, kadri, `document.querySelector('.who').innerText`); !strings.Contains(who, "Clerk") {
		t.Fatalf("the groups claim did not make Kadri a clerk: %q", who)
	}
	if c := eval[string](t, kadri, `document.cookie`); strings.Contains(c, "chamber_session") {
		t.Fatalf("the page can read the sign-in cookie: %q", c)
	}
	b.screenshot(t, kadri, "console-signed-in")

	// Disabled at the provider: the sign-in ends within a minute, and the
	// provider refuses a new one.
	op.Disable("kadri")
	poll(t, kadri, time.Minute, `fetch('/api/v1/me').then(r => r.status === 401)`)
	do(t, kadri, 20*time.Second, chromedp.Reload())
	if msg := refused(kadri); msg == "" {
		t.Fatal("the console does not say why the disabled clerk was signed out")
	}
	do(t, kadri, 30*time.Second, click("#sign-in-provider"), chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "kadri"), chromedp.SendKeys(chromedp.CSS("#password"), "pw-kadri"), click("#login-submit"),
		chromedp.WaitVisible(chromedp.CSS("#login-error")))
	if msg := eval[string](t, kadri, `document.querySelector('#login-error').innerText`); !strings.Contains(msg, "disabled") {
		t.Fatalf("the provider's answer to a disabled account: %q", msg)
	}

	// An expired sign-in is refused, and the console says so.
	jaan := b.person(t)
	signIn(jaan, "jaan", "pw-jaan")
	signedIn(jaan, "Jaan Saar")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.dataDir, "chamber.db")+"?_pragma=busy_timeout(15000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE browser_sessions SET expires_at = $1 WHERE ended_at IS NULL AND staff_id = (SELECT id FROM staff WHERE name = 'Jaan Saar')`,
		time.Now().Add(-time.Minute).UnixMicro()); err != nil {
		t.Fatal(err)
	}
	do(t, jaan, 20*time.Second, chromedp.Reload())
	if msg := refused(jaan); !strings.Contains(msg, "expired") {
		t.Fatalf("an expired sign-in: the console says %q", msg)
	}

	// An ID token issued for another client is refused.
	op.IssueForAudience("another-client")
	stranger := b.person(t)
	signIn(stranger, "jaan", "pw-jaan")
	if msg := refused(stranger); msg == "" {
		t.Fatal("a token for another audience: no refusal shown")
	}
	if code := eval[int](t, stranger, `fetch('/api/v1/me').then(r => r.status)`); code != 401 {
		t.Fatalf("a token for another audience signed the browser in: /me %d", code)
	}
	b.screenshot(t, stranger, "console-sign-in-refused")
}

// poll evaluates a JavaScript promise until it is true, or fails at the deadline.
func poll(t *testing.T, ctx context.Context, within time.Duration, expr string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !eval[bool](t, ctx, expr) {
		if time.Now().After(deadline) {
			t.Fatalf("not true within %v: %s\nserver log:\n%s", within, expr, logs.logTail())
		}
		time.Sleep(250 * time.Millisecond)
	}
}
