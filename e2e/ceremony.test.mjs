// A notarial act through the web UI (Chromium): the notary uploads the
// draft and presents it; the embassy officer checks the principal's
// passport (the MRZ typed as a desk reader types it; a face still taken at
// full resolution and shown before it is stored; the document photo); the
// principal and the notary sign (the notary's dialog names the newest
// version's hash); the notary seals; /verify finds both signatures valid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { env, launch, openPerson, hearing, join, api, probe, videoFlows } from './lib/harness.mjs';

// td3 builds a passport's machine-readable zone (ICAO 9303 TD3).
function td3({ surname, given, number, nationality, birth, sex, expiry }) {
  const weights = [7, 3, 1];
  const val = (c) => (c === '<' ? 0 : /\d/.test(c) ? Number(c) : c.charCodeAt(0) - 55);
  const check = (s) => String([...s].reduce((sum, c, i) => sum + val(c) * weights[i % 3], 0) % 10);
  const pad = (s, n) => (s + '<'.repeat(n)).slice(0, n);
  const line1 = pad('P<EST' + surname + '<<' + given, 44);
  const num = pad(number, 9);
  const opt = pad('', 14);
  const body = num + check(num) + nationality + birth + check(birth) + sex + expiry + check(expiry) + opt + check(opt);
  const composite = num + check(num) + birth + check(birth) + expiry + check(expiry) + opt + check(opt);
  return [line1, body + check(composite)];
}

test('ceremony (chromium)', async (t) => {
  const browser = await launch('chromium');
  t.after(() => browser.close());
  const { id: sid, inv } = await hearing('Will of Ants Kuusk', [['Tiina Tamm', 'notary'], ['Peeter Pärn', 'embassy_officer'], ['Ants Kuusk', 'principal']],
    { kind: 'notarisation', staffRole: 'notary', extra: { act_type: 'will' } });
  const pdf = readFileSync('../documents/pades/testdata/libreoffice-will.pdf');
  const dir = mkdtempSync(path.join(tmpdir(), 'chamber-ceremony-'));
  const draft = path.join(dir, 'will-draft.pdf');
  writeFileSync(draft, pdf);
  const want = createHash('sha256').update(pdf).digest('hex');

  // The notary created the act and enters from the console; the embassy
  // officer is assigned staff and does the same; the principal has a link.
  const notary = await openPerson(browser, 'notary');
  await join(notary, inv['Tiina Tamm'], sid);
  await notary.wait(probe.inRoom);
  await notary.click('#tab-documents');
  await notary.upload('#upload-input', draft);
  await notary.wait(`!!document.querySelector('li.doc')`, 30000);
  assert.equal(await notary.eval(`document.querySelector('li.doc code.hash').title`), want);
  await notary.click('li.doc .doc-actions button');
  await notary.wait(`document.querySelector('.doc-viewer .viewer').dataset.rendered === '1'`, 60000);
  await notary.shot('documents');
  await notary.axe('documents panel');

  const officer = await openPerson(browser, 'officer');
  const principal = await openPerson(browser, 'principal');
  for (const [p, name] of [[officer, 'Peeter Pärn'], [principal, 'Ants Kuusk']]) {
    await join(p, inv[name], sid);
    await p.visible('#waiting-room');
  }
  await notary.click('#tab-people');
  await notary.wait(`document.querySelectorAll('.waiting-list button.admit').length === 2`);
  await notary.click('#admit-all');
  await officer.wait(probe.inRoom);
  await principal.wait(probe.inRoom);

  await t.test('presenting the draft', async () => {
    await notary.click('#tab-documents');
    await notary.click('li.doc .present');
    await principal.wait(`document.querySelector('.featured .viewer') && document.querySelector('.featured .viewer').dataset.rendered === '1'`, 60000);
    await principal.shot('presented-document');
    await notary.click('#present-stop');
    await principal.wait(`document.querySelector('.featured').hidden`);
  });

  await t.test('identity check', async () => {
    const pid = inv['Ants Kuusk'].participant_id;
    await videoFlows(officer, pid);
    const expiry = new Date(Date.now() + 4 * 365 * 864e5).toISOString().slice(2, 10).replace(/-/g, '');
    const [l1, l2] = td3({ surname: 'KUUSK', given: 'ANTS', number: 'KX7654321', nationality: 'EST', birth: '510614', sex: 'M', expiry });
    const bad = l2.slice(0, 9) + (l2[9] === '0' ? '1' : '0') + l2.slice(10); // a wrong check digit
    await officer.click('#tab-act');
    await officer.type('#identity-embassy', 'Embassy of Estonia in London');
    await officer.type('#mrz-input', l1 + '\n' + bad + '\n');
    await officer.wait(`document.querySelectorAll('#mrz-errors li').length > 0`);
    assert.equal(await officer.eval(`document.querySelector('#identity-participant').value`), pid);
    await officer.shot('identity-invalid-mrz');
    await officer.setValue('#mrz-input', '');
    await officer.type('#mrz-input', l1 + '\n' + l2 + '\n');
    await officer.click('#capture-face');
    // The still is shown before it is stored, at the camera's full size.
    await officer.visible('#still-preview img', 20000);
    // It is the principal's camera at the largest size it sends (Chromium
    // lowers every layer when the CPU is short), not the filmstrip tile.
    const size = await officer.eval(`document.querySelector('#still-size').textContent`);
    const [w] = size.match(/\d+/g).map(Number);
    const full = await principal.eval(`(async () => { let w = 0; for (const pc of window.__test.PCs) { if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach(s => { if (s.type === 'outbound-rtp' && s.kind === 'video') w = Math.max(w, s.frameWidth || 0); }); } return w; })()`);
    const tileW = await officer.eval(`Math.round(document.querySelector('figure.tile[data-participant=${JSON.stringify(pid)}] video').getBoundingClientRect().width)`);
    console.log(`[chromium] face still ${size}; the principal sends up to ${full} px; the tile is ${tileW} px wide`);
    assert.ok(w >= full * 0.75 && w > 320, `the face still (${size}) is not the camera's largest layer (${full} px)`);
    await officer.shot('identity-still-preview');
    await officer.click('#still-accept');
    await officer.wait(`document.querySelector('#check-current').textContent.includes('Face still stored')`);
    await officer.click('#capture-document');
    await officer.click('#still-accept');
    await officer.wait(`document.querySelector('#check-current').textContent.includes('Document photo stored')`);
    await officer.type('#principal-address', '1 Kensington Court, London');
    await officer.click('#identity-verified');
    await officer.wait(`!!document.querySelector('.check[data-status="verified"]')`);
    await officer.shot('identity-check');
    await officer.axe('identity check');
    await notary.click('#tab-act');
    await notary.wait(`!!document.querySelector('#identity-checks .check[data-status="verified"]')`);
  });

  const sign = async (who, n) => {
    await who.click('#tab-documents');
    await who.wait(`!!document.querySelector('li.doc button.sign')`);
    // The list has caught up with the signatures before this one (a panel
    // shown again refreshes after it is drawn).
    await who.wait(`document.querySelector('li.doc').dataset.signatures === '${n - 1}'`);
    const hash = await who.eval(`document.querySelector('li.doc').dataset.sha256`);
    await who.click('li.doc button.sign');
    await who.type('#sign-location', 'London');
    // The dialog names the version being signed: the newest.
    const said = await who.eval(`document.querySelector('#sign-explain').textContent`);
    assert.ok(said.includes(hash.slice(0, 12)), `the sign dialog names another version than ${hash}: ${said}`);
    if (n === 2) await who.shot('sign-dialog');
    await who.click('#sign-submit');
    await who.wait(`document.querySelector('li.doc') && document.querySelector('li.doc').dataset.signatures === '${n}'`, 120000);
  };

  await t.test('signing and sealing', async () => {
    // The notary designates the act's document before anyone signs, in
    // the act panel.
    await notary.click('#tab-documents');
    const designated = await notary.eval(`document.querySelector('li.doc').dataset.document`);
    await notary.click('#tab-act');
    await notary.wait(`!!document.querySelector('#act-document option[value=${JSON.stringify(designated)}]')`);
    assert.match(await notary.eval(`document.querySelector('#act-document-current').textContent`), /No document is designated/);
    await notary.setValue('#act-document', designated);
    await notary.click('#designate-document');
    await notary.wait(`document.querySelector('#act-document-current').textContent.includes('will-draft.pdf')`);
    const { body: view } = await api(inv['Tiina Tamm'].token, 'GET', `/api/v1/sessions/${sid}`);
    assert.equal(view.act.document_id, designated, 'the act does not name the designated document');
    await sign(principal, 1);
    await sign(notary, 2);
    await notary.click('#tab-act');
    await notary.type('#seal-description', 'Last will of Ants Kuusk');
    await notary.click('#seal-button');
    await notary.wait(`!!document.querySelector('#act-state .act-number')`, 30000);
    await notary.shot('act-sealed');
  });

  await t.test('verify', async () => {
    await notary.click('#tab-documents');
    const docID = await notary.eval(`document.querySelector('li.doc').dataset.document`);
    const { body: signed } = await api(inv['Tiina Tamm'].token, 'GET', `/api/v1/documents/${docID}/content`);
    assert.ok(!signed.equals(pdf) && signed.subarray(0, 4).toString() === '%PDF', 'the signed version is not a new PDF');
    const signedPath = path.join(dir, 'will-signed.pdf');
    writeFileSync(signedPath, signed);
    const v = await openPerson(browser, 'verifier');
    await v.goto(env.url + '/verify');
    await v.visible('#verify-drop');
    await v.upload('#verify-file', signedPath);
    await v.wait(`!!document.querySelector('#verdict')`, 60000);
    assert.equal(await v.eval(`document.querySelector('#verdict').dataset.valid`), 'true');
    assert.ok(await v.eval(`document.querySelectorAll('.sig-card[data-status="valid"]').length`) >= 2);
    assert.match(await v.eval(`document.querySelector('#verify-result').innerText`), /has not been changed/);
    await v.shot('verify');
    await v.axe('verify result');
  });
  void sid;
});
