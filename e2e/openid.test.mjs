// Staff sign in to the console with the court's OpenID provider (identity
// issue 12), in one engine: through the provider's login page, with the
// role from the groups claim; an account disabled at the provider is
// signed out within seconds and refused; an expired browser session sends
// its user back to sign in; an ID token for another audience is refused;
// signing out ends the sign-in on the server. TestOpenIDConsoleSignIn runs
// the provider and the server (CHAMBER_E2E_CONTROL acts on them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { env, launch, openPerson, js, pause } from './lib/harness.mjs';

const E = env.engine;
const control = process.env.CHAMBER_E2E_CONTROL;
if (!control) throw new Error('CHAMBER_E2E_CONTROL is not set: run through TestOpenIDConsoleSignIn');

/** admin makes a change at the provider or in the server's database (the Go side). */
async function admin(path, form) {
  const res = await fetch(control + path, { method: 'POST', body: form instanceof URLSearchParams ? form : JSON.stringify(form) });
  if (!res.ok) throw new Error(`control ${path}: ${res.status} ${await res.text()}`);
  return res.text();
}

// Each engine has accounts of its own: the first run disables its clerk.
const people = {
  chromium: { clerk: ['Kadri', 'Kask'], judge: ['Jaan', 'Saar'], third: ['Piret', 'Puu'] },
  firefox: { clerk: ['Kadi', 'Kivi'], judge: ['Juhan', 'Sepp'], third: ['Pille', 'Paju'] },
}[E];

function account(key, group) {
  const [given, family] = people[key];
  return { Username: `${key}-${E}`, Password: `pw-${key}-${E}`, GivenName: given, Family: family, Groups: [group], name: `${given} ${family}` };
}

test(`OpenID sign-in (${E})`, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const clerk = account('clerk', 'court-clerks');
  const judge = account('judge', 'court-judges');
  const third = account('third', 'court-judges');
  for (const a of [clerk, judge, third]) await admin('/users', a);

  /** signIn signs in through the provider's login page. */
  const signIn = async (p, a) => {
    await p.goto(env.url + '/');
    await p.click('#sign-in-provider');
    await p.visible('#username');
    assert.ok((await p.eval('location.href')).startsWith(await providerOrigin(p)), 'not on the provider');
    await p.type('#username', a.Username);
    await p.type('#password', a.Password);
    await p.click('#login-submit');
  };
  let provider = '';
  const providerOrigin = async (p) => provider || (provider = new URL(await p.eval('location.href')).origin);
  const signedIn = async (p, a, role) => {
    await p.visible('#sign-out', 30000);
    const who = await p.eval(`document.querySelector('.who').innerText`);
    assert.ok(who.includes(a.name), `signed in as ${who}, want ${a.name}`);
    assert.ok(who.includes(role), `the groups claim did not give ${a.name} the role ${role}: ${who}`);
  };
  /** refused waits for the sign-in card and returns what it says. */
  const refused = async (p) => {
    await p.visible('#sign-in-provider', 30000);
    return p.eval(`document.querySelector('#sign-in-error').innerText`);
  };
  const me = (p) => p.eval(`fetch('/api/v1/me', { headers: { 'X-Chamber-CSRF': '1' } }).then(r => r.status)`);

  await t.test('a clerk signs in through the provider', async () => {
    const p = await openPerson(browser, 'clerk');
    await p.goto(env.url + '/');
    await p.visible('#sign-in-provider');
    assert.equal(await p.eval(`!!document.querySelector('#dev-sign-in, #dev-staff')`), false, 'the development sign-in is offered beside a provider');
    if (E === 'chromium') await p.axe('console sign-in with a provider');
    await signIn(p, clerk);
    await signedIn(p, clerk, 'Clerk');
    assert.equal(await p.eval('document.cookie'), '', 'the page can read the sign-in cookie');
    await p.shot(`${E}-openid-signed-in`);

    // Disabled at the provider: the server's next check of the sign-in
    // (every second here) ends it; the console says why, and the provider
    // refuses a new sign-in.
    assert.equal(await admin('/signed-in', new URLSearchParams({ name: clerk.name })), '1');
    await admin('/disable', new URLSearchParams({ username: clerk.Username }));
    const deadline = Date.now() + 60000;
    while (await admin('/signed-in', new URLSearchParams({ name: clerk.name })) !== '0') {
      assert.ok(Date.now() < deadline, 'the disabled clerk is still signed in after a minute');
      await pause(250); // the polling interval, not a synchronisation
    }
    await p.page.reload();
    assert.match(await refused(p), /signed out/, 'the console does not say why the disabled clerk was signed out');
    await p.click('#sign-in-provider');
    await p.visible('#username');
    await p.type('#username', clerk.Username);
    await p.type('#password', clerk.Password);
    await p.click('#login-submit');
    await p.visible('#login-error');
    assert.match(await p.eval(`document.querySelector('#login-error').innerText`), /disabled/);
    await p.goto(env.url + '/');
    await p.visible('#sign-in-provider');
    assert.equal(await me(p), 401);
  });

  await t.test('an expired sign-in sends the judge back to sign in', async () => {
    const p = await openPerson(browser, 'judge');
    await signIn(p, judge);
    await signedIn(p, judge, 'Judge');
    assert.equal(await admin('/expire', new URLSearchParams({ name: judge.name })), '1', 'no sign-in to expire');
    await p.page.reload();
    assert.match(await refused(p), /expired/);
    assert.equal(await me(p), 401);
    await p.shot(`${E}-openid-expired`);
  });

  await t.test('an ID token for another audience is refused', async () => {
    await admin('/audience', new URLSearchParams({ aud: 'another-client' }));
    try {
      const p = await openPerson(browser, 'stranger');
      await signIn(p, third);
      assert.notEqual(await refused(p), '', 'a token for another audience: no refusal shown');
      assert.equal(await me(p), 401, 'a token for another audience signed the browser in');
      await p.shot(`${E}-openid-wrong-audience`);
    } finally {
      await admin('/audience', new URLSearchParams({ aud: '' }));
    }
  });

  await t.test('signing out ends the sign-in', async () => {
    const p = await openPerson(browser, 'judge again');
    await signIn(p, third);
    await signedIn(p, third, 'Judge');
    const cookie = (await p.page.cookies(env.url)).find((c) => c.name.endsWith('chamber_session'));
    assert.ok(cookie && cookie.httpOnly, 'no HttpOnly sign-in cookie');
    // The sign-in cookie works from outside the page as well, until…
    const replay = () => fetch(env.url + '/api/v1/me', { headers: { Cookie: `${cookie.name}=${cookie.value}` } }).then((r) => r.status);
    assert.equal(await replay(), 200);
    await p.click('#sign-out');
    // …the console signs out, and follows the provider's logout back here.
    await p.wait(`location.origin === ${js(env.url)} && !!document.querySelector('#sign-in-provider')`, 30000);
    assert.equal(await replay(), 401, 'the sign-in outlived signing out');
    assert.equal(await me(p), 401);
  });
});
