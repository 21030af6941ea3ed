// Playing a recording back, in Chromium: a judge and a party are recorded
// while the judge presents a document and the clerk mutes the party; the
// clerk then opens the session's playback page from the console. Both
// people's files play on one clock, in step with each other; choosing a
// journal entry goes to its moment, and playing marks the entry of the
// moment; the composite, once the server has made it, plays too.
//
// Staff sign in through the console's development sign-in (the server has
// no OpenID provider), with this file's own helpers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { env, launch, openPerson, api, probe, js, videoFlows, framesOf } from './lib/harness.mjs';

const E = env.engine;

/** chamber runs the operator command against the server's data. */
function chamber(...args) {
  return execFileSync(env.bin, [...args, '--data-dir', env.data], { encoding: 'utf8' }).trim();
}

/** staffMember adds a staff member and returns their ID and an API token. */
function staffMember(name, role) {
  const id = chamber('staff', 'add', '--name', name, '--role', role);
  return { id, token: chamber('token', 'add', '--staff', id, '--name', 'e2e playback', '--scope', 'sessions:write') };
}

/** signInAs signs a tab in as a staff member, with the development sign-in. */
async function signInAs(person, staffID, hash = '') {
  await person.goto(env.url + '/' + hash);
  await person.wait(`!!document.querySelector('#dev-staff option[value=${js(staffID)}]')`);
  await person.setValue('#dev-staff', staffID);
  await person.click('#dev-sign-in');
  await person.wait(`fetch('/api/v1/me').then(r => r.ok ? r.json() : {}).then(m => m.staff && m.staff.id === ${js(staffID)})`);
}

// playing reports each active tile's place on the recording's clock: its
// file's offset plus the video's own time, against the page's clock.
const playing = `(() => {
  const stage = document.querySelector('#stage');
  return { pos: Number(stage.dataset.position), tiles: [...stage.querySelectorAll('figure.pb-tile:not(.absent)')].map((f) => {
    const v = f.querySelector('video');
    return { participant: f.dataset.participant, file: Number(f.dataset.file), t: v.currentTime * 1000, paused: v.paused, ready: v.readyState };
  }) };
})()`;

test(`playback (${E})`, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const clerk = staffMember('Kadri Kask ' + E, 'clerk');
  const judgeStaff = staffMember('Mari Maasikas ' + E, 'judge');
  const { body: sess } = await api(clerk.token, 'POST', '/api/v1/sessions', { kind: 'hearing', title: 'Playback ' + E });
  const sid = sess.id;
  const judgeID = (await api(clerk.token, 'POST', `/api/v1/sessions/${sid}/assignments`, { staff_id: judgeStaff.id })).body.id;
  const partyInv = (await api(clerk.token, 'POST', `/api/v1/sessions/${sid}/invitations`, { name: 'Jaan Tamm', role: 'party' })).body;
  const partyID = partyInv.participant_id;
  const pdf = new Uint8Array(readFileSync('../documents/pades/testdata/ghostscript-contract.pdf'));
  const doc = (await api(clerk.token, 'POST', `/api/v1/sessions/${sid}/documents?name=Contract.pdf`, pdf)).body;

  const judge = await openPerson(browser, 'judge');
  await signInAs(judge, judgeStaff.id);
  await judge.goto(env.url + '/room/' + sid);
  await judge.click('#join-button');
  await judge.wait(probe.inRoom);
  const party = await openPerson(browser, 'party');
  await party.goto(partyInv.join_url);
  await party.click('#join-button');
  await judge.click('#tab-people');
  await judge.wait(`document.querySelectorAll('.waiting-list button.admit').length === 1`);
  await judge.click('.waiting-list button.admit');
  await party.wait(probe.inRoom);
  await videoFlows(judge, partyID);
  await videoFlows(party, judgeID);

  await t.test('a recording with a page shown and a mute', async () => {
    const rec = `/api/v1/sessions/${sid}/recording`;
    await api(clerk.token, 'POST', rec, { action: 'start' });
    // Media flows into the recording for a few seconds each step: the
    // waits are for frames the other side decodes, not for time. Enough of
    // them that both people's files overlap for several seconds even when
    // a loaded machine starts someone's video file late (a second file).
    const frames = async (n) => { const f0 = await judge.eval(framesOf(partyID)); await judge.wait(`${framesOf(partyID)}.then(n => n > ${f0 + n})`, 30000); };
    await frames(120);
    await judge.click('#tab-documents');
    await judge.click(`li.doc[data-document=${js(doc.id)}] .present`);
    await party.wait(`document.querySelector('.featured .viewer') && document.querySelector('.featured .viewer').dataset.rendered === '1'`, 60000);
    await frames(120);
    await api(clerk.token, 'POST', `/api/v1/sessions/${sid}/participants/${partyID}/mute`, { audio: true });
    await frames(120);
    await judge.click('#present-stop');
    const stopped = await api(clerk.token, 'POST', rec, { action: 'stop' });
    assert.ok(stopped.body.manifest_key, 'the recording was not stored');
  });

  const clerkTab = await openPerson(browser, 'clerk');
  await t.test('the clerk opens the playback page from the console', async () => {
    await signInAs(clerkTab, clerk.id, '#/session/' + sid);
    await clerkTab.click('#open-playback');
    await clerkTab.wait(`document.querySelectorAll('#stage figure.pb-tile').length >= 2`, 30000);
    const who = await clerkTab.eval(`[...new Set([...document.querySelectorAll('#stage figure.pb-tile')].map(f => f.dataset.participant))].sort()`);
    assert.deepEqual(who, [judgeID, partyID].sort(), 'the playback shows other people than were recorded');
    await clerkTab.wait(`[...document.querySelectorAll('#stage video')].every(v => v.readyState >= 2)`, 30000);
    await clerkTab.wait(`document.querySelector('#timeline li[data-action="document.presented"]') && document.querySelector('#timeline li[data-action="participant.muted"]')`);
    await clerkTab.axe('playback');
  });

  const files = await clerkTab.eval(`fetch('/api/v1/sessions/${sid}/recordings').then(r => r.json())
    .then(l => fetch('/api/v1/sessions/${sid}/recordings/' + l[l.length - 1].id)).then(r => r.json())
    .then(r => r.manifest.files.map(f => ({ participant: f.participant_id, offset: f.start_offset_ms, duration: f.duration_ms,
      timing: f.tracks.map(x => x.kind + ':' + x.timing).join(' ') })))`);
  console.log('recorded files: ' + JSON.stringify(files));
  const offsets = files.map((f) => f.offset);

  // until waits for a condition on the playing state s, and says what the
  // state was when it did not come.
  const until = async (cond, timeout = 20000) => {
    try {
      await clerkTab.wait(`(() => { const s = ${playing}; return ${cond}; })()`, timeout);
    } catch (err) {
      throw new Error(`waiting for ${cond}: ${JSON.stringify(await clerkTab.eval(playing))}\n${err.message.slice(-600)}`);
    }
  };

  // inStep checks that every active video is where the clock says, and so
  // in step with the others.
  const inStep = async (what, tolerance = 300) => {
    const s = await clerkTab.eval(playing);
    assert.ok(s.tiles.length >= 2, `${what}: ${s.tiles.length} videos at ${s.pos} ms`);
    const places = s.tiles.map((x) => offsets[x.file] + x.t);
    for (const p of places) assert.ok(Math.abs(p - s.pos) <= tolerance, `${what}: a video is at ${Math.round(p)} ms, the clock at ${s.pos} ms (${JSON.stringify(s)})`);
    assert.ok(Math.max(...places) - Math.min(...places) <= tolerance, `${what}: the videos are ${Math.round(Math.max(...places) - Math.min(...places))} ms apart`);
    return s;
  };

  await t.test('two recordings play in sync', async () => {
    const start = Math.max(...offsets);
    await clerkTab.click('#play');
    await until(`s.pos > ${start + 2000} && s.tiles.length >= 2 && s.tiles.every(x => !x.paused)`, 30000);
    const a = await inStep('playing');
    await until(`s.pos > ${a.pos + 1500}`, 15000);
    const b = await inStep('still playing');
    await clerkTab.shot(`${E}-playback`);
    for (const x of b.tiles) {
      const before = a.tiles.find((y) => y.file === x.file);
      assert.ok(before && x.t > before.t + 1000, `video ${x.file} did not advance: ${before && before.t} → ${x.t}`);
    }
  });

  await t.test('choosing a journal entry goes to its moment, and playing marks the entry of the moment', async () => {
    const entry = `document.querySelector('#timeline li[data-action="document.presented"]')`;
    const at = Number(await clerkTab.eval(`${entry}.dataset.atMs`));
    await clerkTab.click(`#timeline li[data-action="document.presented"] button`);
    await until(`Math.abs(s.pos - ${at}) < 1500 && s.tiles.length >= 2 && s.tiles.every(x => x.ready >= 2)`);
    await inStep('after the seek', 400);
    await clerkTab.wait(`${entry}.classList.contains('current') && ${entry}.getAttribute('aria-current') === 'true'`);
    // Playing on, the mute's entry becomes the current one.
    const mute = `document.querySelector('#timeline li[data-action="participant.muted"]')`;
    const muteAt = Number(await clerkTab.eval(`${mute}.dataset.atMs`));
    await until(`s.pos > ${muteAt}`, 60000);
    await clerkTab.wait(`${mute}.classList.contains('current') && !${entry}.classList.contains('current')`);
    // The marked entry is always the last one at or before the clock.
    assert.ok(await clerkTab.eval(`(() => { const pos = Number(document.querySelector('#stage').dataset.position);
      const items = [...document.querySelectorAll('#timeline li')]; const cur = items.findIndex(li => li.classList.contains('current'));
      return cur >= 0 && Number(items[cur].dataset.atMs) <= pos + 200 && (cur === items.length - 1 || Number(items[cur + 1].dataset.atMs) > pos - 200); })()`));
    await clerkTab.click('#play'); // pause
    await until('s.tiles.every(x => x.paused)');
  });

  await t.test('the composite, once made, plays', async () => {
    // The server composes in the background, after the stop; the page
    // says how far it is when it is opened.
    const state = async () => clerkTab.eval(`document.querySelector('#composite').dataset.state`);
    let s = await state();
    assert.ok(['pending', 'stored', 'unavailable'].includes(s), 'composite state ' + s);
    const deadline = Date.now() + 180000;
    while (s === 'pending' && Date.now() < deadline) {
      await clerkTab.page.reload({ waitUntil: 'load' });
      await clerkTab.wait(`!!document.querySelector('#composite')`, 30000);
      s = await state();
      if (s === 'pending') await clerkTab.wait(`new Promise(r => setTimeout(() => r(true), 2000))`); // the polling interval
    }
    assert.equal(s, 'stored', 'the composite was not made (ffmpeg is installed by scripts/test)');
    await clerkTab.click('#composite-play');
    await clerkTab.wait(`(() => { const v = document.querySelector('#composite-video'); return v && v.readyState >= 2 && v.videoWidth === 1280; })()`, 30000);
    await clerkTab.shot(`${E}-playback-composite`);
  });
});
