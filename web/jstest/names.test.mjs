import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initials, nameMismatch } from '../static/js/names.js';

test('initials', () => {
  for (const [name, want] of [['Mari Maasikas', 'MM'], ['Jaan', 'J'], ['  ', '?'], ['Peeter Pärn', 'PP'], ['ülle öun', 'ÜÖ'], ['Анна Петрова', 'АП']]) {
    assert.equal(initials(name), want, name);
  }
});

test('the invited name against the MRZ name', () => {
  const doc = { surname: 'KUUSK', given_names: 'ANTS' };
  for (const same of ['Ants Kuusk', 'KUUSK Ants', 'ants  kuusk']) assert.equal(nameMismatch(same, doc), false, same);
  assert.equal(nameMismatch('Peeter Pärn', { surname: 'PARN', given_names: 'PEETER' }), false, 'accents');
  for (const other of ['Ants Kask', 'Ants', 'Mari Kuusk']) assert.equal(nameMismatch(other, doc), true, other);
  assert.equal(nameMismatch('anyone', {}), false, 'no document name: nothing to compare');
});
