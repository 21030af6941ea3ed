// The invite forms never offer an official role (static/js/roles.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { invitableRoles } from '../static/js/roles.js';

const officials = ['judge', 'clerk', 'notary', 'embassy_officer'];
const hearing = ['judge', 'clerk', 'party', 'counsel', 'witness', 'interpreter', 'observer'];
const notarisation = ['notary', 'embassy_officer', 'principal', 'witness', 'interpreter', 'observer'];

test('the room offers no official role', () => {
  assert.deepEqual(invitableRoles(hearing, officials), ['party', 'counsel', 'witness', 'interpreter', 'observer']);
  assert.deepEqual(invitableRoles(notarisation, officials), ['principal', 'witness', 'interpreter', 'observer']);
});

test('the console offers what the caller may invite, and never an official even if told so', () => {
  assert.deepEqual(invitableRoles(hearing, officials, ['party', 'witness']), ['party', 'witness']);
  assert.deepEqual(invitableRoles(hearing, officials, ['judge', 'party']), ['party']);
  assert.deepEqual(invitableRoles(hearing, officials, []), []);
});
