// Signing confirmed by a recent sign-in (identity issue 12), in one
// engine: a judge whose sign-in at the provider is an hour old presses
// Sign in the hearing's room, is refused (reauthentication_required:
// nothing is signed) and told to confirm it is them; a window of its own
// takes the judge through the provider's login page and tells the Sign
// dialog, while the room page stays — same page, same connection — and
// the judge signs. pdfsig names the judge; the journal says the signature
// was confirmed by a sign-in. TestOpenIDSigningReauthentication runs the provider and the
// server (CHAMBER_E2E_CONTROL acts on them) with a provider's defaults:
// policy sign-in, five minutes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { env, launch, openPerson, api, staff, apiToken, enterRoom, probe, Person, pause } from './lib/harness.mjs';

const E = env.engine;
const control = process.env.CHAMBER_E2E_CONTROL;
if (!control) throw new Error('CHAMBER_E2E_CONTROL is not set: run through TestOpenIDSigningReauthentication');

/** admin makes a change at the provider or reads the server's journal (the Go side). */
async function admin(p, form) {
  const res = await fetch(control + p, { method: 'POST', body: form instanceof URLSearchParams ? form : JSON.stringify(form) });
  if (!res.ok) throw new Error(`control ${p}: ${res.status} ${await res.text()}`);
  return res.text();
}

test(`signing confirmed by a recent sign-in (${E})`, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const [given, family] = E === 'firefox' ? ['Juhan', 'Sepp'] : ['Jaan', 'Saar'];
  const judge = { Username: `judge-${E}`, Password: `pw-judge-${E}`, GivenName: given, Family: family, Groups: ['court-judges'], name: `${given} ${family}` };
  await admin('/users', judge);

  const p = await openPerson(browser, 'judge');
  let provider = '';
  /** login goes through the provider's login page, wherever the console sent the browser (tab who). */
  const login = async (who) => {
    await who.visible('#username', 30000);
    const here = new URL(await who.eval('location.href'));
    assert.notEqual(here.origin, new URL(env.url).origin, 'the login page is not the provider’s');
    provider = provider || here.origin;
    assert.equal(here.origin, provider);
    await who.type('#username', judge.Username);
    await who.type('#password', judge.Password);
    await who.click('#login-submit');
  };

  // The judge signed in at the provider an hour ago (the provider says so).
  await admin('/auth-time', new URLSearchParams({ ago: '3600' }));
  await p.goto(env.url + '/');
  await p.click('#sign-in-provider');
  await login(p);
  await p.wait(`location.origin === ${JSON.stringify(env.url)} && !!document.querySelector('#sign-out')`, 30000);
  const me = await p.eval(`fetch('/api/v1/me', { headers: { 'X-Chamber-CSRF': '1' } }).then(r => r.json())`);
  assert.equal(me.staff.role, 'judge');
  assert.ok(Date.now() - Date.parse(me.sign_in.auth_time) > 50 * 60 * 1000, `the sign-in is not an hour old: ${me.sign_in.auth_time}`);

  // A clerk schedules the hearing, assigns the judge and files the judgment.
  const clerk = staff(`Clerk ${E}`, 'clerk');
  const tok = apiToken(clerk);
  const { body: sess } = await api(tok, 'POST', '/api/v1/sessions', { kind: 'hearing', title: `Tamm v Kask (${E})` });
  await api(tok, 'POST', `/api/v1/sessions/${sess.id}/assignments`, { staff_id: me.staff.id });
  const pdf = readFileSync('../documents/pades/testdata/libreoffice-will.pdf');
  const { body: doc } = await api(tok, 'POST', `/api/v1/sessions/${sess.id}/documents?name=judgment.pdf`, new Uint8Array(pdf));

  // The judge enters the hearing's room and signs the judgment there.
  await enterRoom(p, sess.id);
  await p.click('#join-button', 60000);
  await p.wait(probe.inRoom, 60000);
  await p.eval(`(window.__stayed = true)`);
  const sockets = await p.eval(`window.__test.WSs.length`);
  await p.click('#tab-documents');
  await p.wait(`!!document.querySelector('li.doc button.sign')`, 30000);
  await p.click('li.doc button.sign');
  await p.type('#sign-reason', 'Judgment');
  await p.type('#sign-location', 'Tallinn');
  await p.click('#sign-submit');
  // Refused: the dialog asks the judge to confirm it is them; nothing is signed.
  await p.visible('#sign-reauth', 60000);
  assert.match(await p.eval(`document.querySelector('#sign-reauth-box').innerText`), /Confirm it is you/);
  if (E === 'chromium') {
    await p.shot('sign-reauthentication-required');
    await p.axe('sign dialog asking to sign in again');
  }
  const { body: unsigned } = await api(tok, 'GET', `/api/v1/documents/${doc.id}`);
  assert.equal(unsigned.signatures, 0, 'the stale sign-in signed');
  assert.equal(JSON.parse(await admin('/journal', new URLSearchParams({ action: 'document.signed' }))).length, 0);

  // Through the provider again — honestly, this time — in a window of
  // its own, which tells the dialog and closes.
  await admin('/auth-time', new URLSearchParams({ ago: '' }));
  const opened = new Promise((resolve) => p.page.once('popup', resolve));
  await p.click('#sign-reauth');
  const popup = await Promise.race([opened, pause(30000).then(() => p.fail('opening the re-authentication window', new Error('no window opened within 30 s')))]);
  t.after(() => { if (!popup.isClosed()) return popup.close(); });
  const win = new Person('judge (re-authentication window)', popup, E);
  await login(win);
  await p.wait(`document.querySelector('#sign-reauth-box').hidden && document.body.innerText.includes('Confirmed: you signed in again')`, 60000);
  await p.click('#sign-submit');
  await p.wait(`document.querySelector('li.doc') && document.querySelector('li.doc').dataset.signatures === '1'`, 120000);
  // The room never left: the same page, the same signalling connection.
  assert.equal(await p.eval('window.__stayed === true'), true, 'the room page was left for the provider');
  assert.equal(await p.eval(`window.__test.WSs.length`), sockets, 'the room was joined again');
  assert.ok(await p.eval(probe.inRoom), 'the judge is no longer in the room');

  // pdfsig names the judge; the journal says a sign-in confirmed it.
  const { body: signed } = await api(tok, 'GET', `/api/v1/documents/${doc.id}/content`);
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'reauth-')), 'judgment-signed.pdf');
  writeFileSync(file, signed);
  let out = '';
  try {
    out = execFileSync('pdfsig', [file], { encoding: 'utf8' });
  } catch (err) {
    out = String(err.stdout || ''); // pdfsig exits non-zero on an untrusted (development) root
  }
  const names = [...out.matchAll(/Signer Certificate Common Name: (.*)/g)].map((m) => m[1]);
  assert.equal(names[0], judge.name, `pdfsig names ${JSON.stringify(names)}`);
  const entries = JSON.parse(await admin('/journal', new URLSearchParams({ action: 'document.signed' })));
  assert.equal(entries.length, 1);
  assert.equal(entries[0].confirmation, 'sign-in');
  assert.ok(Date.parse(entries[0].auth_time) > Date.parse(me.sign_in.auth_time), `confirmed by the old sign-in: ${entries[0].auth_time}`);
  assert.equal(JSON.parse(await admin('/journal', new URLSearchParams({ action: 'staff.reauthenticated' }))).length, 1);
});
