// A hearing as its people live it, in one engine (CHAMBER_E2E_BROWSER):
// the clerk's console, joining and waiting, admission, two-way media,
// simulcast, a server-enforced mute, the public viewer, chat, reconnecting
// and reloading, and a phone-sized screen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { env, launch, openPerson, staff, signIn, enterRoom, api, OFFICIALS, probe, js, videoFlows, audioFlows, audioBytes, framesOf } from './lib/harness.mjs';

const E = env.engine;
const full = E === 'chromium'; // the full matrix runs on Chromium; Firefox runs media and join/leave

test(`hearing (${E})`, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  // Staff are added by the operator command; the clerk and the judge sign
  // in to the console as themselves. A notary exists too: the clerk's
  // picker must not offer them.
  const clerk = staff('Kadri Kask', 'clerk');
  const judgeStaff = staff('Mari Maasikas', 'judge');
  const notary = staff('Tiina Tamm ' + E, 'notary');
  const mail = process.env.CHAMBER_E2E_MAIL === '1'; // the server sends e-mail (to mailpit)
  let sessionID, partyLink, publicLink;

  await t.test('console', async () => {
    const c = await openPerson(browser, 'clerk');
    await c.goto(env.url + '/');
    await c.visible('#dev-sign-in-warning');
    await c.shot(`${E}-console-sign-in`);
    if (full) await c.axe('console sign-in');
    await signIn(c, clerk);
    await c.click('#new-session');
    await c.type('#new-title', 'Kask v. Tamm');
    await c.type('#new-case', '2-26-1234');
    await c.click('#new-public');
    await c.click('#create-session');
    await c.visible('#invite-send');
    sessionID = (await c.eval('location.hash')).replace('#/session/', '');

    // The invite form offers no official role: officials are assigned.
    const offered = await c.eval(`[...document.querySelectorAll('#inv-role option')].map(o => o.value)`);
    assert.ok(offered.includes('party') && !offered.some((r) => OFFICIALS.includes(r)), `the invite form offers ${offered}`);
    // The clerk picks the judge from the staff list, which offers judges
    // and clerks and never the notary.
    await c.wait(`!!document.querySelector('#assign-staff option[value=${js(judgeStaff.id)}]')`);
    const roles = await c.eval(`[...document.querySelectorAll('#assign-staff option')].map(o => o.dataset.role)`);
    assert.ok(roles.every((r) => r === 'judge' || r === 'clerk'), `the picker offers ${roles}`);
    assert.equal(await c.eval(`!!document.querySelector('#assign-staff option[value=${js(notary.id)}]')`), false, 'the picker offers a notary');
    await c.setValue('#assign-staff', judgeStaff.id);
    await c.click('#assign-send');
    await c.wait(`!!document.querySelector('#participants tr[data-staff=${js(judgeStaff.id)}]')`);
    assert.equal(await c.eval(`!!document.querySelector('#assign-staff option[value=${js(judgeStaff.id)}]')`), false, 'the judge is offered twice');

    const invite = async (name, role, email) => {
      const n = await c.eval(`document.querySelectorAll('.join-link').length`);
      await c.setValue('#inv-name', name);
      await c.setValue('#inv-role', role);
      if (email) await c.setValue('#inv-email', email);
      await c.click('#invite-send');
      await c.wait(`document.querySelectorAll('.join-link').length > ${n}`);
      return c.eval(`document.querySelector('.join-link').value`);
    };
    const email = `jaan.tamm.${E}.${Date.now()}@example.test`;
    const firstLink = await invite('Jaan Tamm', 'party', mail ? email : '');
    const partyRow = `document.querySelector('#participants tbody tr:not([data-staff=${js(judgeStaff.id)}])')`;
    await c.wait(`!!${partyRow} && !!${partyRow}.querySelector('button.resend')`);
    if (mail) await c.wait(`${partyRow}.querySelector('.contact') && ${partyRow}.querySelector('.contact').textContent.includes(${js(email)})`);
    // Re-sending the link replaces it: the first stops working at once.
    const n = await c.eval(`document.querySelectorAll('.join-link').length`);
    await c.click(`#participants tbody tr:not([data-staff=${js(judgeStaff.id)}]) button.resend`);
    await c.click('dialog[open] .btn-danger');
    await c.wait(`document.querySelectorAll('.join-link').length > ${n}`);
    partyLink = await c.eval(`document.querySelector('.join-link').value`);
    assert.notEqual(partyLink, firstLink);
    const tokenOf = (link) => decodeURIComponent(link.split('/join/')[1]);
    assert.equal((await api(tokenOf(firstLink), 'GET', '/api/v1/me', undefined, [401])).status, 401, 'the replaced link still works');
    assert.equal((await api(tokenOf(partyLink), 'GET', '/api/v1/me')).status, 200);
    if (mail) await c.wait(`${partyRow}.querySelector('.mail-status') !== null`);

    // The public link: made, withdrawn (refused from then on), made again
    // and rotated (the older one refused, the new one used below).
    const pubToken = (link) => decodeURIComponent(link.split('/watch/')[1]);
    const publicRefused = async (link) => (await api('', 'GET', '/api/v1/public/' + encodeURIComponent(pubToken(link)), undefined, [401])).status === 401;
    await c.click('#public-link');
    await c.visible('.public-link');
    const first = await c.eval(`document.querySelector('.public-link').value`);
    await c.click('#public-link-revoke');
    await c.click('dialog[open] .btn-danger');
    await c.wait(`!document.querySelector('.public-link')`);
    assert.ok(await publicRefused(first), 'a withdrawn public link still opens the hearing');
    await c.click('#public-link');
    await c.visible('.public-link');
    const second = await c.eval(`document.querySelector('.public-link').value`);
    await c.click('#public-link-rotate');
    await c.click('dialog[open] .btn-danger');
    await c.wait(`document.querySelectorAll('.public-link').length === 1 && document.querySelector('.public-link').value !== ${js(second)}`);
    publicLink = await c.eval(`document.querySelector('.public-link').value`);
    assert.ok(await publicRefused(second), 'a rotated public link still opens the hearing');
    assert.ok(partyLink.startsWith(env.url + '/join/chi_'), partyLink);
    assert.ok(publicLink.startsWith(env.url + '/watch/'), publicLink);
    await c.wait(`document.querySelectorAll('#participants tbody tr').length === 2`);

    // Rescheduling: the session's time changes (and is e-mailed to contacts).
    const when = new Date(Date.now() + 3 * 864e5);
    when.setSeconds(0, 0);
    const local = new Date(when.getTime() - when.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
    await c.click('#reschedule');
    await c.setValue('#reschedule-when', local);
    await c.click('#reschedule-send');
    await c.wait(`!document.querySelector('dialog[open]')`);
    await c.wait(`fetch('/api/v1/sessions/${sessionID}', { headers: { 'X-Chamber-CSRF': '1' } }).then(r => r.json())
      .then(s => new Date(s.scheduled_at).getTime() === ${when.getTime()})`);

    await c.shot(`${E}-console-session`);
    if (full) await c.axe('console session');
    await c.goto(env.url + '/#/');
    await c.visible('#session-list .session-link');
    await c.shot(`${E}-console-sessions`);
    if (full) await c.axe('console sessions');
    await c.goto(env.url + '/#/session/' + sessionID);
    await c.click('#open-journal');
    await c.visible('.journal-table');
    assert.ok(await c.eval(`document.querySelectorAll('.journal-table tbody tr').length`) >= 3);
    await c.page.close();
  });
  assert.ok(partyLink, 'the console made no links');

  const judge = await openPerson(browser, 'judge');
  const party = await openPerson(browser, 'party');
  let judgeID, partyID;

  await t.test('admit', async () => {
    // The judge signs in to the console and enters the room as herself:
    // no credential in the address bar or in the page's storage.
    await signIn(judge, judgeStaff);
    await enterRoom(judge, sessionID);
    await judge.visible('#join-button');
    assert.equal(await judge.eval('location.pathname'), '/room/' + sessionID);
    assert.equal(await judge.eval(`Object.values(sessionStorage).concat(Object.values(localStorage)).filter(v => /^(chi|cht|cha|chb)_/.test(v)).length`), 0, 'a credential is kept in storage');
    assert.equal(await judge.eval(`document.cookie`), '', 'the page can read the sign-in cookie');
    await judge.wait(`document.querySelector('.preview-video').videoWidth > 0`);
    // The level meter moves with the fake microphone's tone. Firefox holds
    // Web Audio back until a click: the page offers "Test microphone".
    // (Firefox ESR here has no sound device, so its Web Audio never runs:
    // the meter itself is checked in Chromium.)
    if (E === 'chromium') await judge.wait(`Number(document.querySelector('.meter').getAttribute('aria-valuenow')) > 0`, 10000);
    else await judge.visible('#meter-start');
    await judge.shot(`${E}-join`);
    if (full) await judge.axe('join page');
    await judge.click('#join-button');
    await judge.wait(probe.inRoom);

    await party.goto(partyLink);
    // The language follows the browser, and the switch changes it.
    await party.visible('#join-button');
    assert.equal(await party.eval('location.pathname'), '/join/', 'the token stayed in the address bar');
    assert.match(await party.eval(`sessionStorage.getItem('chamber.join')`), /^chi_/);
    assert.equal(await party.eval(`document.documentElement.lang`), 'en');
    await party.setValue('#language', 'ru');
    await party.wait(`document.documentElement.lang === 'ru' && document.querySelector('#join-heading').textContent === 'Готовы войти?'`);
    await party.setValue('#language', 'et');
    await party.wait(`document.documentElement.lang === 'et' && document.querySelector('#join-heading').textContent === 'Kas oled valmis liituma?'`);
    if (full) await party.axe('join page in Estonian');
    await party.setValue('#language', 'en');
    await party.wait(`document.documentElement.lang === 'en' && !!document.querySelector('#join-button')`);
    await party.click('#join-button');
    await party.visible('#waiting-room');
    assert.match(await party.eval(`document.querySelector('#waiting-room').innerText`), /The clerk will admit you/);
    await party.shot(`${E}-waiting-room`);
    if (full) await party.axe('waiting room');

    await judge.visible('button.admit');
    partyID = await judge.eval(`document.querySelector('button.admit').closest('li').dataset.participant`);
    await judge.click('button.admit');
    await party.wait(probe.inRoom);
    judgeID = await judge.eval(`document.querySelector('figure.tile.self').dataset.participant`);
    await videoFlows(judge, partyID);
    await videoFlows(party, judgeID);
    await audioFlows(judge, partyID);
    await audioFlows(party, judgeID);
    await judge.shot(`${E}-room-judge`);
    if (full) await judge.axe('room');
  });
  assert.ok(partyID, 'admission failed');

  await t.test('simulcast', async () => {
    const out = `(async () => { const out = {}; for (const pc of window.__test.PCs) { if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach(s => { if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid || ''] = {w: s.frameWidth || 0, bytes: s.bytesSent, t: s.timestamp}; }); }
      return out; })()`;
    await judge.wait(`${out}.then(o => ['q', 'h', 'f'].every(r => o[r] && o[r].w > 0 && o[r].bytes > 0))`, 30000);
    const a = await judge.eval(out);
    assert.ok(a.q.w < a.h.w && a.h.w < a.f.w, `the judge's layers are not q < h < f: ${js(a)}`);
    // Each layer keeps within its cap (150, 500 and 1500 kbit/s, with
    // room for headers and the encoder's swings).
    await judge.wait(`${out}.then(o => o.q.t - ${a.q.t} > 3000)`, 15000);
    const b = await judge.eval(out);
    const kbps = (r) => ((b[r].bytes - a[r].bytes) * 8) / (b[r].t - a[r].t);
    const rates = { q: kbps('q'), h: kbps('h'), f: kbps('f') };
    console.log(`[${E}] simulcast layers ${a.q.w}/${a.h.w}/${a.f.w} px at ${Math.round(rates.q)}/${Math.round(rates.h)}/${Math.round(rates.f)} kbit/s`);
    // The client asks for each layer's cap (by RID, after negotiation)...
    const caps = await judge.eval(`JSON.stringify(window.__test.PCs.flatMap(pc => pc.connectionState === 'closed' ? [] : pc.getSenders())
      .filter(s => s.track && s.track.kind === 'video').flatMap(s => s.getParameters().encodings.map(e => [e.rid, e.maxBitrate, e.scaleResolutionDownBy || 1])).sort())`);
    assert.equal(caps, js([['f', 1500000, 1], ['h', 500000, 2], ['q', 150000, 4]]), 'the simulcast caps asked for');
    // ...and the half and full layers keep within theirs (with room for
    // packet headers). The quarter layer is logged: both engines run it
    // above its 150 kbit/s target with the fake camera (see docs/web.md).
    assert.ok(rates.h < 500 * 1.3 && rates.f < 1500 * 1.3, `layers over their caps: ${js(rates)}`);

    const inWidth = `(async () => { const v = ${probe.video(judgeID)}; const tr = v && v.srcObject && v.srcObject.getVideoTracks()[0]; if (!tr) return 0; let w = 0;
      for (const pc of window.__test.PCs) { if (pc.connectionState === 'closed') continue;
        (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.trackIdentifier === tr.id) w = s.frameWidth || 0; }); }
      return w; })()`;
    const track = await party.eval(`document.querySelector('figure.tile[data-participant=${js(judgeID)}][data-source="camera"]').dataset.track`);
    const quality = (extra) => party.eval(`(window.__test.WSs.at(-1).send(JSON.stringify({type: 'quality', data: {track_id: ${js(track)}${extra}}})), true)`);
    await quality(', max_layer: 0');
    await party.wait(`${inWidth}.then(w => w === ${a.q.w})`, 10000);
    await videoFlows(party, judgeID);
    await quality('');
    await party.wait(`${inWidth}.then(w => w > ${a.q.w})`, 15000);
    await videoFlows(party, judgeID);
  });

  await t.test('mute', async () => {
    await audioFlows(judge, partyID);
    const menu = `li.person[data-participant=${js(partyID)}] details.menu`;
    await judge.click('#tab-people');
    await judge.click(menu + ' summary');
    await judge.click(menu + ' .menu-item:first-child');
    await party.wait(`document.querySelector('#mic-button').disabled`);
    // The party's audio stops arriving at the judge (bounded: it must be
    // still for 2 s within 15 s).
    await judge.still(audioBytes(partyID), 2000, 15000);
    await judge.wait(`document.querySelector('figure.tile[data-participant=${js(partyID)}] .tile-muted') !== null`);
  });

  if (full) {
    await t.test('observer', async () => {
      const obs = await openPerson(browser, 'observer');
      await obs.goto(publicLink);
      await obs.visible('#watch-name');
      assert.equal(await obs.eval('location.pathname'), '/watch/');
      await obs.axe('watch page');
      await obs.type('#watch-name', 'Liis Lepik');
      await obs.click('#join-button');
      await obs.visible('#waiting-room');
      await judge.click('#tab-people');
      await judge.click('button.admit');
      await obs.wait(probe.inRoom);
      await videoFlows(obs, judgeID);
      assert.equal(await obs.eval(`document.querySelectorAll('#mic-button, #camera-button, #share-button, #chat-input').length`), 0, 'the observer has publish controls');
      assert.equal(await obs.eval(`window.__test.PCs.flatMap(pc => pc.getSenders()).filter(s => s.track).length`), 0, 'the observer sends tracks');
      await obs.shot(`${E}-watch-observer`);
      await obs.axe('observer room');
      await obs.page.close();
    });
  }

  await t.test('the room invites no official', async () => {
    await judge.click('#tab-people');
    await judge.click('#room-invite');
    await judge.visible('dialog[open] #inv-role');
    const offered = await judge.eval(`[...document.querySelectorAll('dialog[open] #inv-role option')].map(o => o.value)`);
    assert.deepEqual(offered, ['party', 'counsel', 'witness', 'interpreter', 'observer'], 'the room offers to invite');
    await judge.click('dialog[open] .actions .btn');
    await judge.wait(`!document.querySelector('dialog[open]')`);
  });

  await t.test('chat', async () => {
    await judge.click('#tab-chat');
    await judge.type('#chat-input', 'The hearing is open.\n');
    await party.wait(`document.querySelector('#chat-log').textContent.includes('The hearing is open.')`);
    await judge.wait(`document.querySelector('#chat-log').textContent.includes('The hearing is open.')`);
  });

  await t.test('hand and microphone', async () => {
    // Keyboard shortcuts: H raises the judge's hand, M turns the
    // microphone off; the party sees both on the judge's tile.
    await judge.click('#main');
    await judge.page.keyboard.press('h');
    await judge.wait(`document.querySelector('#hand-button').getAttribute('aria-pressed') === 'true'`);
    const tile = `document.querySelector('figure.tile[data-participant=${js(judgeID)}][data-source="camera"]')`;
    await party.wait(`!!${tile}.querySelector('.tile-hand')`);
    await party.click('#tab-people');
    await party.wait(`!!document.querySelector('.hands-list li[data-participant=${js(judgeID)}]')`);
    await judge.page.keyboard.press('m');
    await judge.wait(`document.querySelector('#mic-button').getAttribute('aria-pressed') === 'true'`);
    await party.wait(`!!${tile}.querySelector('.tile-muted')`);
    await party.shot(`${E}-hand-raised`);
    await judge.page.keyboard.press('h');
    await judge.page.keyboard.press('m');
    await party.wait(`!${tile}.querySelector('.tile-hand') && !${tile}.querySelector('.tile-muted')`);
  });

  // rejoined checks that a page that has just opened its signalling
  // WebSocket again shows pid's video within 2 s: the SFU asks the
  // publisher for a keyframe until the returning subscriber has one.
  const rejoined = async (who, pid) => {
    const start = Date.now();
    // The tile stays; its video gets the new connection's track.
    await who.wait(`${framesOf(pid)}.then(n => { const v = ${probe.video(pid)}; return n > 0 && !v.srcObject.__before; })`, 2000);
    console.log(`[${E}] video ${Date.now() - start} ms after the WebSocket opened`);
  };

  await t.test('reconnect', async () => {
    for (let i = 0; i < (full ? 3 : 1); i++) {
      await party.eval(`(document.querySelectorAll('video.remote').forEach(v => { if (v.srcObject) v.srcObject.__before = true; }), true)`);
      const n = await party.eval(`window.__test.WSs.length`);
      await party.eval(`(window.__test.WSs.at(-1).close(), true)`);
      await party.wait(`window.__test.WSs.length > ${n} && ${probe.wsOpen}`, 30000);
      await rejoined(party, judgeID);
    }
    await party.wait(`document.querySelector('#connection-banner').hidden`);
    assert.equal(await party.eval(`document.querySelector('.room').dataset.view`), 'room');
    await videoFlows(party, judgeID);
    await videoFlows(judge, partyID);
    assert.ok(await party.eval(`document.querySelector('#mic-button').disabled`), 'the server-enforced mute was lost on reconnect');
  });

  await t.test('reload', async () => {
    await party.page.reload();
    await party.visible('#join-button');
    assert.equal(await party.eval('location.pathname'), '/join/');
    await party.click('#join-button');
    await party.wait(probe.wsOpen);
    await rejoined(party, judgeID);
    await party.wait(probe.inRoom);
    await videoFlows(party, judgeID);
  });

  if (full) {
    await t.test('phone', async () => {
      await party.page.setViewport({ width: 390, height: 844 });
      const fits = `(() => { const tb = document.querySelector('.toolbar').getBoundingClientRect(); const leave = document.querySelector('#leave-button');
        return tb.bottom <= innerHeight && tb.top >= 0 && document.documentElement.scrollWidth <= innerWidth && leave.offsetParent !== null; })()`;
      await party.wait(fits);
      await party.shot(`${E}-room-phone`);
      const open = `document.querySelector('.room').classList.contains('side-open')`;
      // Chat opens over the stage and closes with Escape…
      await party.click('[data-panel="chat"]');
      await party.visible('#chat-log');
      await party.wait(fits);
      await party.shot(`${E}-room-phone-chat`);
      await party.axe('phone chat');
      await party.page.keyboard.press('Escape');
      await party.wait(`!${open}`);
      // …with its Close button…
      await party.click('[data-panel="documents"]');
      await party.visible('#side-close');
      await party.click('#side-close');
      await party.wait(`!${open}`);
      // …and with the phone's back button.
      await party.click('[data-panel="chat"]');
      await party.wait(open);
      await party.page.goBack();
      await party.wait(`!${open} && location.pathname === '/join/'`);
      await party.page.setViewport({ width: 1280, height: 800 });
      // The staff console fits a phone too.
      const c = await openPerson(browser, 'clerk on a phone');
      await c.page.setViewport({ width: 390, height: 844 });
      await signIn(c, clerk);
      await c.visible('#session-list .session-link');
      await c.wait(`document.documentElement.scrollWidth <= innerWidth`);
      await c.shot(`${E}-console-phone`);
      await c.page.close();
    });
  }
});
