// Playing a recording back, in Chromium: a judge and a party are recorded
// while the judge presents a document and mutes the party; the clerk then
// opens the session's playback page from the console. Both people's files
// play on one clock, in step with each other; choosing a journal entry
// goes to its moment, and playing marks the entry of the moment; the
// composite, once the server has made it, plays too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { env, launch, openPerson, hearing, api, probe, js, videoFlows, framesOf } from './lib/harness.mjs';

const E = env.engine;

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
  const { id: sid, inv, staff: clerk } = await hearing('Playback ' + E, [['Mari Maasikas', 'judge'], ['Jaan Tamm', 'party']]);
  const judgeTok = inv['Mari Maasikas'].token;
  const judgeID = inv['Mari Maasikas'].participant_id;
  const partyID = inv['Jaan Tamm'].participant_id;
  const pdf = new Uint8Array(readFileSync('../documents/pades/testdata/ghostscript-contract.pdf'));
  const doc = (await api(judgeTok, 'POST', `/api/v1/sessions/${sid}/documents?name=Contract.pdf`, pdf)).body;

  const enter = async (name, role) => {
    const p = await openPerson(browser, role);
    await p.goto(inv[name].join_url);
    await p.click('#join-button');
    return p;
  };
  const judge = await enter('Mari Maasikas', 'judge');
  await judge.wait(probe.inRoom);
  const party = await enter('Jaan Tamm', 'party');
  await judge.click('#tab-people');
  await judge.wait(`document.querySelectorAll('.waiting-list button.admit').length === 1`);
  await judge.click('.waiting-list button.admit');
  await party.wait(probe.inRoom);
  await videoFlows(judge, partyID);
  await videoFlows(party, judgeID);

  await t.test('a recording with a page shown and a mute', async () => {
    const rec = `/api/v1/sessions/${sid}/recording`;
    await api(judgeTok, 'POST', rec, { action: 'start' });
    // Media flows into the recording for a few seconds each step: the
    // waits are for frames the other side decodes, not for time.
    const frames = async (n) => { const f0 = await judge.eval(framesOf(partyID)); await judge.wait(`${framesOf(partyID)}.then(n => n > ${f0 + n})`, 30000); };
    await frames(60);
    await judge.click('#tab-documents');
    await judge.click(`li.doc[data-document=${js(doc.id)}] .present`);
    await party.wait(`document.querySelector('.featured .viewer') && document.querySelector('.featured .viewer').dataset.rendered === '1'`, 60000);
    await frames(60);
    await api(judgeTok, 'POST', `/api/v1/sessions/${sid}/participants/${partyID}/mute`, { audio: true });
    await frames(60);
    await judge.click('#present-stop');
    const stopped = await api(judgeTok, 'POST', rec, { action: 'stop' });
    assert.ok(stopped.body.manifest_key, 'the recording was not stored');
  });

  const clerkTab = await openPerson(browser, 'clerk');
  await t.test('the clerk opens the playback page from the console', async () => {
    await clerkTab.goto(env.url + '/#/session/' + sid);
    await clerkTab.type('#staff-token', clerk);
    await clerkTab.click('#sign-in');
    await clerkTab.click('#open-playback');
    await clerkTab.wait(`document.querySelectorAll('#stage figure.pb-tile').length >= 2`, 30000);
    const who = await clerkTab.eval(`[...new Set([...document.querySelectorAll('#stage figure.pb-tile')].map(f => f.dataset.participant))].sort()`);
    assert.deepEqual(who, [judgeID, partyID].sort(), 'the playback shows other people than were recorded');
    await clerkTab.wait(`[...document.querySelectorAll('#stage video')].every(v => v.readyState >= 2)`, 30000);
    await clerkTab.wait(`document.querySelector('#timeline li[data-action="document.presented"]') && document.querySelector('#timeline li[data-action="participant.muted"]')`);
    await clerkTab.axe('playback');
    await clerkTab.shot(`${E}-playback`);
  });

  const offsets = await clerkTab.eval(`fetch('/api/v1/sessions/${sid}/recordings', { headers: { Authorization: 'Bearer ' + sessionStorage.getItem('chamber.staff') } })
    .then(r => r.json()).then(l => fetch('/api/v1/sessions/${sid}/recordings/' + l[l.length - 1].id, { headers: { Authorization: 'Bearer ' + sessionStorage.getItem('chamber.staff') } }))
    .then(r => r.json()).then(r => r.manifest.files.map(f => f.start_offset_ms))`);

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
    const both = `(() => { const s = ${playing}; return s.tiles.length >= 2; })()`;
    await clerkTab.wait(both);
    const start = Math.max(...offsets);
    await clerkTab.click('#play');
    await clerkTab.wait(`(() => { const s = ${playing}; return s.pos > ${start + 2000} && s.tiles.length >= 2 && s.tiles.every(x => !x.paused); })()`, 30000);
    const a = await inStep('playing');
    await clerkTab.wait(`(() => { const s = ${playing}; return s.pos > ${a.pos + 1500}; })()`, 15000);
    const b = await inStep('still playing');
    for (const x of b.tiles) {
      const before = a.tiles.find((y) => y.file === x.file);
      assert.ok(before && x.t > before.t + 1000, `video ${x.file} did not advance: ${before && before.t} → ${x.t}`);
    }
  });

  await t.test('choosing a journal entry goes to its moment, and playing marks the entry of the moment', async () => {
    const entry = `document.querySelector('#timeline li[data-action="document.presented"]')`;
    const at = Number(await clerkTab.eval(`${entry}.dataset.atMs`));
    await clerkTab.click(`#timeline li[data-action="document.presented"] button`);
    await clerkTab.wait(`(() => { const s = ${playing}; return Math.abs(s.pos - ${at}) < 1500 && s.tiles.length >= 2 && s.tiles.every(x => x.ready >= 2); })()`, 20000);
    await inStep('after the seek', 400);
    await clerkTab.wait(`${entry}.classList.contains('current') && ${entry}.getAttribute('aria-current') === 'true'`);
    // Playing on, the mute's entry becomes the current one.
    const mute = `document.querySelector('#timeline li[data-action="participant.muted"]')`;
    const muteAt = Number(await clerkTab.eval(`${mute}.dataset.atMs`));
    await clerkTab.wait(`(() => { const s = ${playing}; return s.pos > ${muteAt}; })()`, 60000);
    await clerkTab.wait(`${mute}.classList.contains('current') && !${entry}.classList.contains('current')`);
    // The marked entry is always the last one at or before the clock.
    assert.ok(await clerkTab.eval(`(() => { const pos = Number(document.querySelector('#stage').dataset.position);
      const items = [...document.querySelectorAll('#timeline li')]; const cur = items.findIndex(li => li.classList.contains('current'));
      return cur >= 0 && Number(items[cur].dataset.atMs) <= pos + 200 && (cur === items.length - 1 || Number(items[cur + 1].dataset.atMs) > pos - 200); })()`));
    await clerkTab.click('#play'); // pause
    await clerkTab.wait(`(() => { const s = ${playing}; return s.tiles.every(x => x.paused); })()`);
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
