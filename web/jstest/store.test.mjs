// Unit tests of the room's store (static/js/store.js), run by node:
// `node --test web/jstest/` (TestClientModules runs it in go test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initial, reduce, viewOf, enforcedMute, peopleHere, hands, inConsultation, recordingState } from '../static/js/store.js';

const judge = { id: 'j', name: 'Mari Maasikas', role: 'judge', space: 'main', connected: true };
const party = { id: 'p', name: 'Jaan Tamm', role: 'party', space: 'waiting', connected: true };

function run(state, ...actions) {
  const effects = [];
  for (const a of actions) {
    const r = reduce(state, a);
    state = r.state;
    effects.push(...r.effects);
  }
  return { state, effects };
}

function joinedAs(you, extra = {}) {
  const s = initial({ you, permissions: ['publish', 'chat', 'see_participants', 'admit'], session: { id: 's', kind: 'hearing', title: 'T' } });
  return run(s, { type: 'joined', joined: { peers: [] }, welcome: Object.assign({ you, participants: [judge, party], permissions: ['publish', 'chat', 'see_participants', 'admit'] }, extra) });
}

test('a party waits, is admitted, and sees the room', () => {
  let { state, effects } = joinedAs(party);
  assert.equal(viewOf(state), 'waiting');
  assert.ok(effects.some((e) => e.type === 'announce' && e.key === 'waiting.title'));
  ({ state, effects } = run(state, { type: 'message', msg: 'participant_updated', data: Object.assign({}, party, { space: 'main' }) }));
  assert.equal(viewOf(state), 'room');
  assert.ok(effects.some((e) => e.key === 'room.admitted'));
  assert.deepEqual(peopleHere(state).map((p) => p.id).sort(), ['j', 'p']);
});

test('a party admitted while joining is let in by the welcome sent again', () => {
  // The welcome in "joined" was read before the admission; the server
  // sends it again ("welcome"), read after.
  let { state } = joinedAs(party);
  assert.equal(viewOf(state), 'waiting');
  const admitted = Object.assign({}, party, { space: 'main' });
  let effects;
  ({ state, effects } = run(state, { type: 'message', msg: 'welcome', data: { you: admitted, participants: [judge, admitted], permissions: ['publish', 'chat', 'see_participants'] } }));
  assert.equal(viewOf(state), 'room');
  assert.ok(effects.some((e) => e.key === 'room.admitted'));
  assert.ok(!effects.some((e) => e.type === 'rejoined'), 'a welcome again is not a new connection');
  assert.ok(!state.perms.has('admit'));
  assert.equal(state.participants.get('p').space, 'main');
});

test('a main-room mute does not follow the party into a consultation, and holds again on return', () => {
  const muted = Object.assign({}, party, { space: 'main', audio_muted: true, video_muted: true });
  let { state } = joinedAs(muted);
  assert.deepEqual(enforcedMute(state.you), { audio: true, video: true });
  let effects;
  ({ state, effects } = run(state, { type: 'message', msg: 'participant_updated', data: Object.assign({}, muted, { space: 'c1' }) }));
  assert.ok(inConsultation(state));
  assert.deepEqual(enforcedMute(state.you), { audio: false, video: false });
  assert.ok(effects.some((e) => e.key === 'room.consultationUnmuted'));
  ({ state, effects } = run(state, { type: 'message', msg: 'participant_updated', data: Object.assign({}, muted, { space: 'main' }) }));
  assert.deepEqual(enforcedMute(state.you), { audio: true, video: true });
  assert.ok(effects.some((e) => e.key === 'room.youWereMuted'));
});

test('a late joiner in the main room gets the presented page; a consultation room does not', () => {
  const pr = { document_id: 'd1', page: 3, by: 'j' };
  assert.deepEqual(joinedAs(Object.assign({}, party, { space: 'main' }), { presenting: pr }).state.presenting, pr);
  assert.equal(joinedAs(Object.assign({}, party, { space: 'c1' }), { presenting: pr }).state.presenting, null);
  let { state } = joinedAs(Object.assign({}, party, { space: 'main' }));
  ({ state } = run(state, { type: 'message', msg: 'present', data: pr }, { type: 'message', msg: 'present', data: Object.assign({}, pr, { page: 4 }) }));
  assert.equal(state.presenting.page, 4);
  ({ state } = run(state, { type: 'message', msg: 'present', data: { document_id: null } }));
  assert.equal(state.presenting, null);
});

test('chat keeps the room each message was said in', () => {
  let { state } = joinedAs(Object.assign({}, party, { space: 'main' }));
  ({ state } = run(state,
    { type: 'message', msg: 'chat', data: { from: 'j', text: 'open', space: 'main', at: '1' } },
    { type: 'message', msg: 'chat', data: { from: 'c', text: 'private', space: 'c1', at: '2' } }));
  assert.deepEqual(state.chat.map((m) => [m.text, m.space, m.seq]), [['open', 'main', 1], ['private', 'c1', 2]]);
});

test('raised hands come and go with status messages and with leaving the room', () => {
  let { state, effects } = joinedAs(judge, { statuses: { p: { hand: true, mic_off: false } } });
  assert.deepEqual(hands(state), ['p']);
  ({ state, effects } = run(state, { type: 'message', msg: 'status', data: { participant_id: 'p', hand: false, mic_off: true } }));
  assert.deepEqual(hands(state), []);
  assert.equal(state.statuses.get('p').mic_off, true);
  ({ state, effects } = run(state, { type: 'message', msg: 'status', data: { participant_id: 'p', hand: true, mic_off: true } }));
  assert.ok(effects.some((e) => e.key === 'hand.raisedBy' && e.params.name === 'Jaan Tamm'));
  ({ state } = run(state, { type: 'message', msg: 'participant_updated', data: Object.assign({}, party, { space: 'waiting' }) }));
  assert.deepEqual(hands(state), []);
});

test('bye codes end the room once, with the right page', () => {
  for (const [code, kind] of [['session_closed', 'closed'], ['removed', 'removed'], ['token_revoked', 'removed'], ['left', 'left']]) {
    const { state, effects } = run(joinedAs(judge).state, { type: 'closed', code }, { type: 'closed', code: 'session_closed' });
    assert.equal(state.ended.kind, kind, code);
    assert.equal(effects.filter((e) => e.type === 'end').length, 1, code);
  }
  const { effects } = run(joinedAs(judge).state, { type: 'closed', code: 'token_expired' });
  assert.ok(effects.some((e) => e.type === 'check'));
  const closed = run(joinedAs(judge).state, { type: 'message', msg: 'session_closed', data: { state: 'closed' } });
  assert.equal(closed.state.ended.kind, 'closed');
});

test('the participants event replaces whom one may know of (admitted, or sent back to wait)', () => {
  const waiting = Object.assign({}, party);
  let { state } = joinedAs(waiting, { participants: [waiting] });
  assert.deepEqual([...state.participants.keys()], ['p']);
  const counsel = { id: 'c', name: 'Kai Kask', role: 'counsel', space: 'main', connected: true };
  ({ state } = run(state, { type: 'message', msg: 'participants', data: { for: 'p', participants: [judge, counsel, Object.assign({}, party, { space: 'main' })] } }));
  assert.deepEqual([...state.participants.keys()].sort(), ['c', 'j', 'p']);
  // A list meant for someone else changes nothing.
  ({ state } = run(state, { type: 'message', msg: 'participants', data: { for: 'x', participants: [] } }));
  assert.equal(state.participants.size, 3);
  // Sent back to the waiting room: everyone else is forgotten, oneself is kept.
  ({ state } = run(state, { type: 'message', msg: 'participants', data: { for: 'p', participants: [] } }));
  assert.deepEqual([...state.participants.keys()], ['p']);
});

test('an observer admitted from the waiting room gets a tile for everyone on stage it is told of', () => {
  const obs = { id: 'o', name: 'Liis Lepik', role: 'observer', space: 'waiting', connected: true };
  const s0 = initial({ you: obs, permissions: ['view_session'], session: { id: 's', kind: 'hearing', title: 'T' } });
  let { state } = run(s0, { type: 'joined', joined: { peers: [] }, welcome: { you: obs, participants: [obs], permissions: ['view_session'] } });
  // While waiting it knows of nobody but itself.
  assert.deepEqual(peopleHere(state).map((p) => p.id), ['o']);
  const stageJudge = { id: 'j', name: 'Mari Maasikas', role: 'judge', space: 'main', connected: true };
  ({ state } = run(state,
    { type: 'message', msg: 'participant_updated', data: Object.assign({}, obs, { space: 'main' }) },
    { type: 'message', msg: 'participants', data: { for: 'o', participants: [stageJudge, Object.assign({}, obs, { space: 'main' })] } }));
  assert.deepEqual(peopleHere(state).map((p) => p.id).sort(), ['j', 'o']);
});

test('a stopped recording waiting for storage is shown as storage_pending, and said once', () => {
  assert.equal(recordingState(undefined), 'off');
  assert.equal(recordingState({ recording: true }), 'recording');
  assert.equal(recordingState({ recording: false, storage_pending: true }), 'storage_pending');
  let { state } = joinedAs(Object.assign({}, judge), { recording: { recording: true } });
  assert.equal(recordingState(state.recording), 'recording');
  let effects;
  ({ state, effects } = run(state, { type: 'message', msg: 'recording', data: { recording: false, storage_pending: true } }));
  assert.equal(recordingState(state.recording), 'storage_pending');
  assert.ok(effects.some((e) => e.key === 'room.recordingStopped'));
  assert.ok(effects.some((e) => e.key === 'recording.storagePending'), 'the pending storage is not announced');
  ({ state, effects } = run(state, { type: 'message', msg: 'recording', data: { recording: false, storage_pending: true } }));
  assert.ok(!effects.some((e) => e.key === 'recording.storagePending'), 'announced twice');
  ({ state } = run(state, { type: 'message', msg: 'recording', data: { recording: false } }));
  assert.equal(recordingState(state.recording), 'off');
});
