// The JavaScript half of the end-to-end harness: the browsers (one way to
// start each engine), pages with the test hooks, waiting for conditions,
// the REST API, screenshots and accessibility checks. The Go half
// (e2e/server.go) starts `chamber serve` and passes its address in the
// environment; the scenarios (e2e/*.test.mjs) use only what is here.
//
// Nothing here sleeps to synchronise: every wait is for a condition in the
// page (waitJS) with a deadline, and fails with the page's state.
import { execFileSync } from 'node:child_process';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const require = createRequire(import.meta.url);

export const env = {
  url: process.env.CHAMBER_E2E_URL,
  bin: process.env.CHAMBER_E2E_BIN,
  data: process.env.CHAMBER_E2E_DATA,
  engine: process.env.CHAMBER_E2E_BROWSER || 'chromium',
  shots: process.env.CHAMBER_SCREENSHOT_DIR || '',
  chromium: process.env.CHAMBER_E2E_CHROMIUM || '/usr/bin/chromium',
  firefox: process.env.CHAMBER_E2E_FIREFOX || '/usr/bin/firefox-esr',
};
if (!env.url) throw new Error('CHAMBER_E2E_URL is not set: run the scenarios through `go test ./e2e`');

// Chromium: headless, off the network, fake camera and microphone
// (/work/shared/dependencies.md), autoplay allowed so remote audio plays.
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run', '--disable-quic', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required', '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows', '--disable-features=MediaRouter,OptimizationHints,Translate',
];

// Firefox: fake devices without a prompt, nothing fetched from the network,
// autoplay allowed (a real visitor gets the page's "Enable sound" button).
const FIREFOX_PREFS = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
  'app.update.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'network.captive-portal-service.enabled': false,
  'extensions.blocklist.enabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.enabled': false,
  'privacy.resistFingerprinting': false,
};

/** launch starts one browser of engine ('chromium' or 'firefox'). */
export async function launch(engine = env.engine) {
  const viewport = { width: 1280, height: 800 };
  if (engine === 'firefox') {
    return puppeteer.launch({
      browser: 'firefox', executablePath: env.firefox, protocol: 'webDriverBiDi', headless: true,
      extraPrefsFirefox: FIREFOX_PREFS, defaultViewport: viewport, protocolTimeout: 60000,
    });
  }
  return puppeteer.launch({
    browser: 'chrome', executablePath: env.chromium, headless: true, args: CHROMIUM_ARGS, defaultViewport: viewport, protocolTimeout: 60000,
  });
}

// testHooks runs before any page script: it keeps the page's
// RTCPeerConnections and WebSockets where a test can reach them, so the
// test reads getStats and can drop the signalling socket.
const testHooks = `(() => {
  if (window.__test) return;
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
})();`;

/** Person is one tab: a page of a browser, named for messages. */
export class Person {
  constructor(name, page, engine) {
    this.name = name;
    this.page = page;
    this.engine = engine;
  }

  /** state describes the page for a failure message. */
  async state() {
    try {
      return await this.page.evaluate(`(async () => {
        const stats = [];
        for (const pc of (window.__test ? window.__test.PCs : [])) {
          if (pc.connectionState === 'closed') continue;
          (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' || s.type === 'outbound-rtp')
            stats.push([s.type, s.kind, s.rid || '', s.bytesReceived ?? s.bytesSent, s.framesDecoded ?? s.framesEncoded ?? '', s.frameWidth || ''].join(' ')); });
        }
        return location.pathname + ' | ' + document.title + ' | ' + document.body.innerText.slice(0, 1500) + '\\nstats:\\n' + stats.join('\\n');
      })()`);
    } catch (err) {
      return '(unreadable: ' + err.message + ')';
    }
  }

  async fail(what, err) {
    throw new Error(`${this.name} (${this.engine}): ${what}: ${err && err.message}\npage: ${await this.state()}`);
  }

  /** eval evaluates a JavaScript expression (promises awaited). */
  async eval(expr) {
    try {
      return await this.page.evaluate(expr);
    } catch (err) {
      return this.fail('eval ' + expr.slice(0, 200), err);
    }
  }

  /** wait waits until a JavaScript expression (maybe a promise) is truthy. */
  async wait(expr, timeout = 20000) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
      try {
        last = await this.page.evaluate(expr);
        if (last) return last;
      } catch (err) {
        // A navigation destroys the context under evaluate: try again.
        last = err;
      }
      if (Date.now() > deadline) return this.fail('waiting for ' + expr.slice(0, 300) + ' (last: ' + (last && last.message || last) + ')', new Error('timeout'));
      await pause(100); // the polling interval, not a synchronisation
    }
  }

  /**
   * still waits until a numeric expression stops changing for quiet ms (a
   * counter that has stopped: bytes after a mute), within timeout. It is
   * the bounded negative check: it fails if the value keeps moving.
   */
  async still(expr, quiet = 2000, timeout = 15000) {
    const deadline = Date.now() + timeout;
    let value = await this.eval(expr);
    let since = Date.now();
    for (;;) {
      await pause(250);
      const v = await this.eval(expr);
      if (v !== value) {
        value = v;
        since = Date.now();
      } else if (Date.now() - since >= quiet) {
        return v;
      }
      if (Date.now() > deadline) return this.fail(`${expr.slice(0, 200)} kept changing for ${timeout} ms`, new Error('timeout'));
    }
  }

  async goto(url) {
    try {
      await this.page.goto(url, { waitUntil: 'load' });
    } catch (err) {
      return this.fail('goto ' + url, err);
    }
  }

  /** click waits for a visible, enabled element and clicks it. */
  async click(sel, timeout = 20000) {
    await this.visible(sel, timeout);
    await this.wait(`(() => { const el = document.querySelector(${JSON.stringify(sel)}); return el && !el.disabled; })()`, timeout);
    try {
      // The DOM's click, not a synthetic pointer: a tab in the background
      // does not render, and puppeteer's pointer click waits until it has.
      await this.page.$eval(sel, (el) => { el.scrollIntoView({ block: 'nearest' }); el.focus(); el.click(); });
    } catch (err) {
      return this.fail('click ' + sel, err);
    }
  }

  /** visible waits for an element to be shown. */
  async visible(sel, timeout = 20000) {
    // Polled with evaluate: puppeteer's own waits run on animation frames,
    // which a tab in the background does not get.
    await this.wait(`(() => { const el = document.querySelector(${JSON.stringify(sel)}); if (!el) return false;
      const r = el.getBoundingClientRect(); const st = getComputedStyle(el);
      return (r.width > 0 || r.height > 0) && st.visibility !== 'hidden'; })()`, timeout);
  }

  /** type types text into an element (\n presses Enter). */
  async type(sel, text) {
    await this.visible(sel);
    const parts = text.split('\n');
    for (let i = 0; i < parts.length; i++) {
      if (parts[i]) await this.page.type(sel, parts[i]);
      if (i < parts.length - 1) await this.page.keyboard.press('Enter');
    }
  }

  async setValue(sel, value) {
    await this.visible(sel);
    await this.page.$eval(sel, (el, v) => {
      el.value = v;
      el.dispatchEvent(new Event('input', { bubbles: true }));
      el.dispatchEvent(new Event('change', { bubbles: true }));
    }, value);
  }

  async upload(sel, file) {
    const el = await this.page.$(sel);
    if (!el) return this.fail('upload', new Error('no ' + sel));
    await el.uploadFile(file);
  }

  async shot(name) {
    if (!env.shots) return;
    mkdirSync(env.shots, { recursive: true });
    await this.page.screenshot({ path: path.join(env.shots, name + '.png') });
  }

  /**
   * axe runs axe-core on the page as it is and fails on any serious or
   * critical violation. state names the page state in the message.
   */
  async axe(state) {
    await this.page.evaluate(axeSource());
    const found = await this.page.evaluate(`(async () => {
      const r = await axe.run(document, { resultTypes: ['violations'] });
      return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
        .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' — ' + (n.failureSummary || '').split('\\n').slice(0, 2).join(' ')).join('; '));
    })()`);
    if (found.length) throw new Error(`axe on ${state} (${this.engine}): ${found.length} serious or critical violations:\n${found.join('\n')}`);
  }
}

let axeText = null;
function axeSource() {
  if (!axeText) axeText = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8') + '\n;true';
  return axeText;
}

/** openPerson opens a new tab with the test hooks. */
export async function openPerson(browser, name, engine = env.engine) {
  // A context of its own per person, as on a person's own computer: its
  // own storage, and a page that is not a background tab of someone
  // else's (background tabs present no frames and render no PDF pages).
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.evaluateOnNewDocument(testHooks);
  page.on('pageerror', (err) => console.log(`[${name} ${engine}] page error: ${err.message}`));
  page.on('console', (msg) => { if (msg.type() === 'error') console.log(`[${name} ${engine}] console: ${msg.text()}`); });
  return new Person(name, page, engine);
}

export function pause(ms) { return new Promise((r) => setTimeout(r, ms)); }

// Officials (judge, clerk, notary, embassy officer) are staff: never
// invited, they are assigned to a session and enter it from the console as
// themselves. Everyone else is invited with a link.
export const OFFICIALS = ['judge', 'clerk', 'notary', 'embassy_officer'];

/**
 * staff adds a staff member with the operator command (`chamber staff
 * add`, which prints their ID and no credential) and returns {id, name, role}.
 */
export function staff(name, role) {
  const id = execFileSync(env.bin, ['staff', 'add', '--data-dir', env.data, '--name', name, '--role', role], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  if (!/^[0-9a-f-]{36}$/.test(id)) throw new Error(`chamber staff add printed ${JSON.stringify(id)}, not a staff ID`);
  return { id, name, role };
}

/**
 * apiToken gives a staff member an API token (`chamber token add`), as an
 * administrator gives a script one: the scenarios' REST calls use it; the
 * console refuses it and signs in instead.
 */
export function apiToken(st, scope = 'sessions:write') {
  const tok = execFileSync(env.bin, ['token', 'add', '--data-dir', env.data, '--staff', st.id, '--scope', scope, '--expires', '1h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  if (!tok.startsWith('cha_')) throw new Error(`chamber token add printed ${JSON.stringify(tok)}, not an API token`);
  return tok;
}

/**
 * signIn signs a person in to the console as staff member st with the
 * development sign-in (the suite's server has no OpenID provider; the
 * provider's own sign-in is TestOpenIDConsoleSignIn's).
 */
export async function signIn(person, st) {
  await person.goto(env.url + '/');
  await person.visible('#dev-sign-in-warning');
  await person.setValue('#dev-staff', st.id);
  await person.click('#dev-sign-in');
  await person.wait(`!!document.querySelector('#sign-out') && document.querySelector('.who').textContent.includes(${js(st.name)})`);
}

/**
 * enterRoom takes a signed-in official from the console's page of session
 * sid into its room. The console's "Enter the room" opens /room/{id} in a
 * window of its own; a new window would lack the test hooks, so window.open
 * is recorded instead and the room opens in this tab, at the address the
 * button chose.
 */
export async function enterRoom(person, sid) {
  await person.goto(env.url + '/#/session/' + sid);
  await person.visible('#enter-room');
  await person.eval(`(window.open = (url, name) => { window.__opened = { url, name }; return null; }, true)`);
  await person.click('#enter-room');
  const opened = await person.wait(`window.__opened`);
  if (opened.url !== '/room/' + sid) await person.fail('enter the room', new Error(`the console opened ${opened.url}`));
  await person.goto(env.url + opened.url);
}

/**
 * arrive brings someone to the room's Join button: a party, counsel, … by
 * the invitation link; an official by signing in to the console and
 * entering from there.
 */
export async function arrive(person, who, sid) {
  if (who.join_url) await person.goto(who.join_url);
  else {
    await signIn(person, who.staff);
    await enterRoom(person, sid);
  }
}

/** join arrives and presses Join. */
export async function join(person, who, sid) {
  await arrive(person, who, sid);
  await person.click('#join-button');
}

/** api makes a REST call and returns {status, body}; it throws on >= 300 unless allow lists the status. */
export async function api(token, method, p, body, allow = []) {
  const headers = {};
  if (token) headers.Authorization = 'Bearer ' + token;
  let data;
  if (body !== undefined && !(body instanceof Uint8Array)) {
    headers['Content-Type'] = 'application/json';
    data = JSON.stringify(body);
  } else if (body) {
    headers['Content-Type'] = 'application/pdf';
    data = body;
  }
  const res = await fetch(env.url + p, { method, headers, body: data });
  const type = res.headers.get('content-type') || '';
  const out = type.includes('json') ? await res.json() : Buffer.from(await res.arrayBuffer());
  if (res.status >= 300 && !allow.includes(res.status)) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(out)}`);
  return { status: res.status, body: out };
}

/**
 * hearing creates a session through the API and brings people into it, as
 * a court's staff does: the member of staff of the creating role among
 * people (else "Staff <title>") creates it; every other official is added
 * as staff and assigned; everyone else is invited. It returns {id, staff
 * (the creator's API token), creator, inv: {name: person}}, where a person
 * is an invitation ({participant_id, token, join_url}) or an official
 * ({participant_id, staff, token: their API token}).
 */
export async function hearing(title, people, { kind = 'hearing', staffRole = 'clerk', extra = {} } = {}) {
  const creatorEntry = people.find(([, role]) => role === staffRole);
  const creator = staff(creatorEntry ? creatorEntry[0] : 'Staff ' + title, staffRole);
  const tok = apiToken(creator);
  const { body: sess } = await api(tok, 'POST', '/api/v1/sessions', Object.assign({ kind, title }, extra));
  const inv = {};
  for (const [name, role] of people) {
    if (creatorEntry && name === creatorEntry[0]) {
      const { body: entry } = await api(tok, 'POST', `/api/v1/sessions/${sess.id}/enter`, {});
      inv[name] = { participant_id: entry.participant.id, staff: creator, token: tok };
    } else if (OFFICIALS.includes(role)) {
      const st = staff(name, role);
      const { body: p } = await api(tok, 'POST', `/api/v1/sessions/${sess.id}/assignments`, { staff_id: st.id });
      inv[name] = { participant_id: p.id, staff: st, token: apiToken(st) };
    } else {
      inv[name] = (await api(tok, 'POST', `/api/v1/sessions/${sess.id}/invitations`, { name, role })).body;
    }
  }
  return { id: sess.id, staff: tok, creator, inv };
}

export function js(v) { return JSON.stringify(v); }

// JavaScript probes, by participant id.
export const probe = {
  // the <video> of a participant's remote camera tile
  video: (pid) => `document.querySelector('figure.tile[data-participant=${js(pid)}][data-source="camera"] video.remote')`,
  inRoom: `(document.querySelector('.room') && document.querySelector('.room').dataset.view === 'room')`,
  wsOpen: `(window.__test.WSs.length > 0 && window.__test.WSs.at(-1).readyState === 1)`,
};

/**
 * framesOf returns how many frames of a participant's remote camera video
 * the page has decoded (getStats framesDecoded of the video's track: both
 * engines keep it, in a tab in front or behind), or -1 while the <video>
 * has no size yet.
 */
export function framesOf(pid) {
  return `(async () => { const v = ${probe.video(pid)}; if (!v || !v.videoWidth) return -1;
    const tr = v.srcObject && v.srcObject.getVideoTracks()[0]; if (!tr) return -1; let n = -1;
    for (const pc of window.__test.PCs) { if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video' && s.trackIdentifier === tr.id) n = s.framesDecoded || 0; }); }
    return n; })()`;
}

/** videoFlows checks that who receives pid's video: it has a size and presents new frames. */
export async function videoFlows(who, pid, timeout = 30000) {
  await who.wait(`${framesOf(pid)}.then(n => n >= 0)`, timeout);
  const f1 = await who.eval(framesOf(pid));
  await who.wait(`${framesOf(pid)}.then(n => n > ${f1 + 5})`, 15000);
  // The tile shows it: not marked paused, not hidden (the stall check
  // once hid every Firefox video).
  await who.wait(`(() => { const v = ${probe.video(pid)}; const t = v.closest('figure'); return getComputedStyle(v).visibility !== 'hidden' && !t.classList.contains('no-video'); })()`, 5000);
}

/** inboundAudioBytes sums the received audio bytes of pid's microphone at who. */
export function audioBytes(pid) {
  return `(async () => { const ids = [...document.querySelectorAll('audio[data-participant=${js(pid)}]')].map(a => a.srcObject && a.srcObject.getTracks()[0] && a.srcObject.getTracks()[0].id);
    let sum = 0; for (const pc of window.__test.PCs) { if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'audio' && ids.includes(s.trackIdentifier)) sum += s.bytesReceived; }); }
    return sum; })()`;
}

/** audioFlows checks that who receives pid's microphone: bytes keep arriving. */
export async function audioFlows(who, pid, timeout = 20000) {
  await who.wait(`!!document.querySelector('audio[data-participant=${js(pid)}]')`, timeout);
  const b0 = await who.eval(audioBytes(pid));
  await who.wait(`${audioBytes(pid)}.then(b => b > ${b0 + 1000})`, 15000);
}

/** writeJSON keeps a result file beside the screenshots (timings). */
export function writeResult(name, value) {
  if (!env.shots) return;
  mkdirSync(env.shots, { recursive: true });
  writeFileSync(path.join(env.shots, name + '.json'), JSON.stringify(value, null, 2));
}
