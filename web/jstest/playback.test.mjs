// Unit tests of the playback page's model (static/js/playback-model.js),
// run by node: `node --test web/jstest/` (TestClientModules runs it in go test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Clock, placement, needsSeek, timeline, current, clockText, msBetween, people } from '../static/js/playback-model.js';

test('the clock runs while playing, holds, seeks and stops at the end', () => {
  let now = 1000;
  const c = new Clock(10000, () => now);
  assert.equal(c.position(), 0);
  c.play();
  now += 2500;
  assert.equal(c.position(), 2500);
  c.hold(); // a video waits for data
  now += 5000;
  assert.equal(c.position(), 2500);
  c.resume();
  now += 500;
  assert.equal(c.position(), 3000);
  c.seek(8000);
  now += 1000;
  assert.equal(c.position(), 9000);
  now += 5000;
  assert.equal(c.position(), 10000);
  assert.ok(c.ended());
  c.pause();
  c.play(); // from the end: again from the start
  assert.equal(c.position(), 0);
  c.pause();
  c.seek(-5);
  assert.equal(c.position(), 0);
  c.seek(99999);
  assert.equal(c.position(), 10000);
  c.resume(); // not playing: resume does not start it
  now += 1000;
  assert.equal(c.position(), 10000);
});

test('a file is active from its offset for its duration', () => {
  const f = { start_offset_ms: 1500, duration_ms: 2000 };
  for (const [pos, active, local] of [[0, false, -1500], [1499, false, -1], [1500, true, 0], [3499, true, 1999], [3500, false, 2000]]) {
    assert.deepEqual(placement(f, pos), { active, local }, 'at ' + pos);
  }
  assert.equal(needsSeek(1.0, 1100), false);
  assert.equal(needsSeek(1.0, 1300), true);
  assert.equal(needsSeek(2.0, 1700), true);
});

test('the timeline holds the journal of the recording\'s time and who spoke', () => {
  const manifest = {
    started_at: '2026-11-23T10:00:00Z', stopped_at: '2026-11-23T10:01:00Z',
    files: [{ participant_id: 'a', participant_name: 'Alice' }, { participant_id: 'b', participant_name: 'Bob' }],
    speakers: [{ at_ms: 5000, participant_id: 'a' }, { at_ms: 20000, participant_id: null }, { at_ms: 61000, participant_id: 'b' }],
  };
  const entries = [
    { seq: 1, at: '2026-11-23T09:59:00Z', action: 'participant.joined', details: { name: 'Alice' } }, // before
    { seq: 2, at: '2026-11-23T10:00:00Z', action: 'recording.started', details: {} },
    { seq: 3, at: '2026-11-23T10:00:05Z', action: 'participant.joined', details: { name: 'Bob' } },
    { seq: 4, at: '2026-11-23T10:00:05Z', action: 'document.presented', details: { document_id: 'd', page: 2 } },
    { seq: 5, at: '2026-11-23T10:00:30Z', action: 'orphan.found', details: {} }, // not shown
    { seq: 6, at: '2026-11-23T10:02:00Z', action: 'participant.left', details: { name: 'Bob' } }, // after
  ];
  const list = timeline(entries, manifest);
  assert.deepEqual(list.map((e) => [e.atMs, e.action]), [
    [0, 'recording.started'], [5000, 'participant.joined'], [5000, 'document.presented'], [5000, 'speaker'], [20000, 'speaker'],
  ]);
  assert.equal(current(list, -1), -1);
  assert.equal(current(list, 0), 0);
  assert.equal(current(list, 4999), 0);
  assert.equal(current(list, 5000), 3);
  assert.equal(current(list, 59999), 4);
  assert.equal(current([], 10), -1);
  assert.deepEqual(people(manifest), { a: 'Alice', b: 'Bob' });
  assert.equal(msBetween(manifest.started_at, manifest.stopped_at), 60000);
});

test('times read as a clock', () => {
  for (const [ms, want] of [[0, '0:00'], [999, '0:00'], [61000, '1:01'], [3599000, '59:59'], [3600000, '1:00:00'], [3725000, '1:02:05'], [-5, '0:00']]) {
    assert.equal(clockText(ms), want);
  }
});
