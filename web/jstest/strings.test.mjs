// Every catalog besides English has every English key (and no other), with
// the same {placeholders}: a translation that misses a key fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import en from '../static/js/strings/en.js';

const dir = new URL('../static/js/strings/', import.meta.url);
const holes = (s) => [...String(s).matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort().join(',');

test('English has no empty string', () => {
  assert.deepEqual(Object.keys(en).filter((k) => !en[k]), []);
});

for (const file of readdirSync(dir).filter((f) => f.endsWith('.js') && f !== 'en.js')) {
  test(`${file} has every English key with its placeholders`, async () => {
    const cat = (await import(new URL(file, dir))).default;
    const missing = Object.keys(en).filter((k) => !(k in cat));
    const extra = Object.keys(cat).filter((k) => !(k in en));
    assert.deepEqual(missing, [], `${file} lacks ${missing.length} keys`);
    assert.deepEqual(extra, [], `${file} has keys English lacks`);
    assert.deepEqual(Object.keys(en).filter((k) => holes(en[k]) !== holes(cat[k])), []);
  });
}
