// Presenting exhibits to the room, and leaving and closing it, in one
// engine: a witness (no see_documents) sees a presented exhibit and is
// refused it after the presentation ends; a party sees an exhibit not yet
// admitted while it is shown; a late joiner gets the current page; the
// judge presents a second document and pages through it; leaving says so;
// closing the session ends every page with "session ended".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { env, launch, openPerson, hearing, join, api, probe, js, videoFlows } from './lib/harness.mjs';

const E = env.engine;

test(`present (${E})`, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const { id: sid, inv } = await hearing('Lease dispute ' + E, [['Mari Maasikas', 'judge'], ['Jaan Tamm', 'party'], ['Tiit Kask', 'witness'], ['Kati Karu', 'counsel']]);
  const pdf = new Uint8Array(readFileSync('../documents/pades/testdata/libreoffice-will.pdf'));
  const judgeTok = inv['Mari Maasikas'].token; // the judge's API token

  // Two documents: a labelled exhibit (not admitted) and a second one.
  const up = async (name, bytes) => (await api(judgeTok, 'POST', `/api/v1/sessions/${sid}/documents?name=${encodeURIComponent(name)}`, bytes)).body;
  const lease = await up('Lease agreement.pdf', pdf);
  await api(judgeTok, 'PATCH', `/api/v1/documents/${lease.id}`, { label: 'P-1', status: 'submitted' });
  const other = new Uint8Array(readFileSync('../documents/pades/testdata/ghostscript-contract.pdf'));
  const second = await up('Inventory.pdf', other);

  const enter = async (name, role) => {
    const p = await openPerson(browser, role);
    await join(p, inv[name], sid);
    return p;
  };
  const judge = await enter('Mari Maasikas', 'judge');
  await judge.wait(probe.inRoom);
  const party = await enter('Jaan Tamm', 'party');
  const witness = await enter('Tiit Kask', 'witness');
  await judge.click('#tab-people');
  await judge.wait(`document.querySelectorAll('.waiting-list button.admit').length === 2`);
  await judge.click('#admit-all');
  await party.wait(probe.inRoom);
  await witness.wait(probe.inRoom);
  await videoFlows(witness, inv['Mari Maasikas'].participant_id);
  await videoFlows(judge, inv['Tiit Kask'].participant_id);
  const content = (tok, doc) => api(tok, 'GET', `/api/v1/documents/${doc}/content`, undefined, [403, 404]).then((r) => r.status);

  await t.test('the witness sees a presented exhibit, and not after', async () => {
    assert.equal(await content(inv['Tiit Kask'].token, lease.id), 403, 'the witness reads an exhibit nobody presented');
    await judge.click('#tab-documents');
    await judge.wait(`document.querySelectorAll('li.doc').length === 2`);
    await judge.click(`li.doc[data-document=${js(lease.id)}] .present`);
    for (const who of [witness, party, judge]) {
      await who.wait(`document.querySelector('.featured .viewer') && document.querySelector('.featured .viewer').dataset.rendered === '1'`, 60000);
      await who.wait(`document.querySelector('#present-title').textContent.includes('P-1 — Lease agreement.pdf, page 1 of')`);
    }
    if (E === 'chromium') await witness.axe('presented exhibit');
    await witness.shot(`${E}-presented-exhibit`);
    assert.equal(await content(inv['Tiit Kask'].token, lease.id), 200, 'the witness is refused the presented exhibit');
    assert.equal(await content(inv['Jaan Tamm'].token, lease.id), 200, 'the party is refused the presented exhibit');
    // The reader zooms on their own.
    await witness.click('.featured [data-fit="width"]');
    await witness.wait(`document.querySelector('.featured .viewer').dataset.fit === 'width'`);
  });

  await t.test('a late joiner gets the current page', async () => {
    const counsel = await enter('Kati Karu', 'counsel');
    await judge.click('#tab-people');
    await judge.wait(`document.querySelectorAll('.waiting-list button.admit').length === 1`);
    await judge.click('.waiting-list button.admit');
    await counsel.wait(probe.inRoom);
    await counsel.wait(`document.querySelector('.featured .viewer') && document.querySelector('.featured .viewer').dataset.rendered === '1'`, 60000);
    await counsel.wait(`document.querySelector('#present-title').textContent.includes('P-1')`);
    await counsel.click('#leave-button');
    await counsel.wait(`document.querySelector('#end-heading') && document.querySelector('#end-heading').textContent.includes('You have left')`);
  });

  await t.test('a second document replaces the first', async () => {
    await judge.click('#tab-documents');
    await judge.click(`li.doc[data-document=${js(second.id)}] .present`);
    for (const who of [witness, judge]) {
      await who.wait(`document.querySelector('#present-title').textContent.startsWith('Inventory.pdf, page 1 of')`, 60000);
      await who.wait(`document.querySelector('.featured .viewer').dataset.rendered === '1'`, 60000);
    }
    assert.equal(await content(inv['Tiit Kask'].token, lease.id), 403, 'the first exhibit stays readable after it was replaced');
    const pages = await judge.eval(`Number(document.querySelector('.featured .viewer').dataset.pages)`);
    if (pages > 1) {
      await judge.click('#present-next');
      await witness.wait(`document.querySelector('.featured .viewer').dataset.rendered === '2'`, 60000);
    }
    await judge.click('#present-stop');
    await witness.wait(`document.querySelector('.featured').hidden`);
    assert.equal(await content(inv['Tiit Kask'].token, second.id), 403, 'the witness keeps the document after the presentation');
  });

  await t.test('leaving and closing end every page', async () => {
    await party.click('#leave-button');
    await party.wait(`document.querySelector('#end-heading') && document.querySelector('#end-heading').textContent.includes('You have left')`);
    await judge.click('#tab-people');
    await judge.click('#close-session');
    await judge.click('dialog[open] .btn-danger');
    for (const who of [judge, witness]) {
      await who.wait(`document.querySelector('#end-heading') && document.querySelector('#end-heading').textContent.includes('ended')`, 20000);
      assert.equal(await who.eval(`document.querySelectorAll('video').length`), 0, 'a dead room is left behind');
    }
    await witness.shot(`${E}-session-ended`);
  });
});
