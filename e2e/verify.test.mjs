// The public /verify page on a PDF that two people signed, each signature
// followed by a document timestamp (prepared by TestVerifyPage).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { env, launch, openPerson } from './lib/harness.mjs';

test('verify page counts signatures and document timestamps apart', async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const v = await openPerson(browser, 'verifier');
  await v.goto(env.url + '/verify');
  await v.upload('#verify-file', process.env.CHAMBER_E2E_VERIFY_PDF);
  await v.wait(`!!document.querySelector('#verdict')`, 60000);
  assert.equal(await v.eval(`document.querySelector('#verdict').dataset.valid`), 'true', 'not valid');
  assert.equal(await v.eval(`document.querySelector('#verify-counts').innerText`), '2 signatures, 2 document timestamps');
  const titles = await v.eval(`[...document.querySelectorAll('.sig-card[data-kind="signature"] h3')].map(h => h.innerText)`);
  assert.equal(titles.length, 2);
  assert.ok(titles[0].includes('Anna Maria Eriksson') && titles[1].includes('Jüri Õunapuu'), `signature cards ${titles}`);
  assert.equal(await v.eval(`document.querySelectorAll('.sig-card[data-kind="document timestamp"]').length`), 2);
  assert.equal(await v.eval(`document.querySelector('#verdict').dataset.development`), 'true', 'the development keys are not mentioned');
  await v.axe('verify counts');
  await v.shot('verify-counts');
});
