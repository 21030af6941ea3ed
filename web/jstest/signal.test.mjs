import { test } from 'node:test';
import assert from 'node:assert/strict';

// A WebSocket that records what the client does and lets the test play
// the server. No network: this tests the client's handling of redirect.
class FakeSocket {
  static all = [];
  static OPEN = 1;
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = FakeSocket.OPEN;
    FakeSocket.all.push(this);
  }
  send(s) { this.sent.push(JSON.parse(s)); }
  close() { this.readyState = 3; }
  // server side
  open() { this.onopen(); }
  message(msg) { this.onmessage({ data: JSON.stringify(msg) }); }
  closeFromServer(reason) { this.readyState = 3; this.onclose({ code: 1000, reason }); }
}

globalThis.WebSocket = FakeSocket;
globalThis.location = { protocol: 'https:', host: 'court.example' };
const { RoomConnection } = await import('../static/js/signal.js');

const tick = () => new Promise((r) => setImmediate(r));

test('a gallery observer follows a redirect on its own origin, at once, and no more than three in a row', async () => {
  FakeSocket.all = [];
  const rc = new RoomConnection({ sessionId: 's1', token: 'tok', media: null });
  const states = [];
  rc.addEventListener('state', (e) => states.push(e.detail.state));
  rc.start();
  const first = FakeSocket.all[0];
  assert.equal(first.url, 'wss://court.example/api/v1/sessions/s1/signal');
  first.open();
  assert.deepEqual(first.sent[0].data, { version: 1, token: 'tok', redirect: true }, 'the join says the client follows redirects');

  const path = '/api/v1/sessions/s1/signal?edge=abc.def';
  first.message({ type: 'redirect', id: 'join', data: { url: 'wss://node-2.internal/api/v1/sessions/s1/signal?edge=abc.def', path, reason: 'gallery' } });
  await tick();
  first.closeFromServer('redirect');
  assert.equal(FakeSocket.all.length, 2, 'the next connection opens at once, without back-off');
  assert.equal(FakeSocket.all[1].url, 'wss://court.example' + path, 'on this origin, at the path given — never the node URL');
  assert.ok(!states.includes('reconnecting'), `states ${states}`);
  FakeSocket.all[1].open();
  assert.equal(FakeSocket.all[1].sent[0].data.token, 'tok', 'the same token');

  // Three redirects in a row at most: the fourth is not followed.
  for (let i = 2; i <= 4; i++) {
    const ws = FakeSocket.all[i - 1];
    ws.message({ type: 'redirect', id: 'join', data: { path, reason: 'gallery' } });
    await tick();
    ws.closeFromServer('redirect');
  }
  assert.equal(FakeSocket.all.length, 4, 'a fourth redirect in a row is not followed at once');
  assert.ok(states.includes('reconnecting'), 'it falls back to the usual reconnection');
  rc.ended = true;
  clearTimeout(rc.retryTimer);
});

test('a redirect elsewhere than a session signalling path is ignored', async () => {
  FakeSocket.all = [];
  const rc = new RoomConnection({ sessionId: 's1', token: 'tok', media: null });
  rc.start();
  const ws = FakeSocket.all[0];
  ws.open();
  for (const path of ['https://evil.example/x', '//evil.example/api/v1/sessions/s1/signal', '/somewhere', 42, null]) {
    ws.message({ type: 'redirect', id: 'join', data: { path } });
    await tick();
    assert.equal(rc.redirectPath, null, `followed ${path}`);
  }
  rc.ended = true;
  ws.closeFromServer('bye');
  clearTimeout(rc.retryTimer);
});
