// RoomConnection speaks Chamber's signalling protocol (docs/signaling.md)
// over one WebSocket and keeps two RTCPeerConnections: "publish" carries
// this browser's media to the server (we offer), "subscribe" carries
// everyone else's media to us (the server offers). ICE candidates trickle
// both ways. When the WebSocket drops or a PeerConnection fails, the
// connection rejoins by itself with the same token, after a short backoff;
// the server keeps role and space.
//
// Events (CustomEvent.detail):
//   state    {state: connecting|connected|reconnecting|closed, attempt, reason}
//   joined   {joined, welcome, rejoin}     the "joined" message
//   message  {type, data}                  every other server message
//   tracks   {tracks: [{line, track}]}     the remote tracks now received
//   closed   {reason, code}                final: no reconnection follows

const PROTOCOL_VERSION = 1;
const PING_EVERY = 20000;
const DISCONNECTED_GRACE = 6000;

// Camera simulcast: three layers the SFU picks from per subscriber.
const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', maxBitrate: 1500000 },
];

// Server reasons after which reconnecting is pointless.
// Bye codes after which the client does not come back (protocol.Bye*).
const FINAL_BYES = ['left', 'removed', 'token_revoked', 'token_expired', 'session_closed'];

// Redirects followed in a row for one join (a large gallery's edge node).
const MAX_REDIRECTS = 3;

export class RoomConnection extends EventTarget {
  /**
   * sessionId and token identify the participant; media is the local
   * {stream, audio, video} to publish (null publishes nothing). The
   * camera goes out in the three SIMULCAST layers unless simulcast is
   * false; a screen share always in one.
   */
  constructor({ sessionId, token, media, simulcast = true }) {
    super();
    this.sessionId = sessionId;
    this.token = token;
    this.media = media || null;
    this.simulcast = simulcast;
    this.attempt = 0;
    this.ended = false;
    this.joinedOnce = false;
    this.seq = 0;
    this.generation = 0;
    this.pending = new Map();
    this.screen = null; // {stream, transceiver}
    this.sources = new Map(); // publish transceiver → source
    this.subLines = new Map(); // mid → MediaLine of the last subscribe offer
    this.redirectPath = null; // where the next connection joins, once
    this.redirects = 0;
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  /** Opens the connection (and reopens it after drops). */
  start() {
    this.ended = false;
    this.connect();
  }

  /**
   * wsURL is where to join: the session's signalling URL on this page's
   * origin, or once, after a redirect, the path the server gave — still on
   * this origin (the page's policy allows no other); the node that answers
   * passes the connection on to the one it names.
   */
  wsURL() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const path = this.redirectPath || `/api/v1/sessions/${encodeURIComponent(this.sessionId)}/signal`;
    this.redirectPath = null;
    return `${proto}//${location.host}${path}`;
  }

  connect() {
    this.teardown();
    const gen = ++this.generation;
    this.emit('state', { state: this.attempt ? 'reconnecting' : 'connecting', attempt: this.attempt });
    const ws = new WebSocket(this.wsURL());
    this.ws = ws;
    this.lastReason = '';
    ws.onopen = () => {
      this.sendRaw({ type: 'join', id: 'join', data: { version: PROTOCOL_VERSION, token: this.token, redirect: true } });
    };
    ws.onmessage = (e) => {
      if (gen !== this.generation) return;
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      this.onMessage(msg).catch((err) => this.fail('client error: ' + (err && err.message)));
    };
    ws.onclose = (e) => {
      if (gen !== this.generation) return;
      this.onClosed(e.reason || this.lastReason);
    };
  }

  /** leave tells the server and stops for good. */
  leave() {
    this.ended = true;
    this.sendRaw({ type: 'leave' });
    this.teardown();
    this.emit('closed', { reason: 'left' });
  }

  sendRaw(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /** send sends a message; room messages (chat, present) and quality go through it. */
  send(type, data) { this.sendRaw({ type, data }); }

  /** request sends a message and waits for the reply carrying its id. */
  request(type, data, timeoutMs = 15000) {
    const id = type + '-' + (++this.seq);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error('no answer to ' + type));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.sendRaw({ type, id, data });
    });
  }

  async onMessage(msg) {
    const { type, id, data } = msg;
    if (id && this.pending.has(id) && (type === 'answer' || type === 'error' || type === 'pong')) {
      const p = this.pending.get(id);
      this.pending.delete(id);
      clearTimeout(p.timer);
      if (type === 'error') p.reject(Object.assign(new Error(data.message), { code: data.code }));
      else p.resolve(data);
      return;
    }
    switch (type) {
      case 'joined': return this.onJoined(data);
      case 'redirect': return this.onRedirect(data);
      case 'offer': return this.onSubscribeOffer(data);
      case 'candidate': return this.onCandidate(data);
      case 'pong': this.lastPong = Date.now(); return;
      case 'bye':
        this.lastReason = data && data.code;
        return;
      case 'error':
        if (data.ref === 'join' || id === 'join') {
          this.lastReason = data.code;
          this.joinError = data;
          return;
        }
        if (data.code === 'ice_failed') this.lastReason = 'ice_failed';
        this.emit('message', { type, data });
        return;
      default:
        this.emit('message', { type, data });
    }
  }

  /**
   * onRedirect follows the server's placement (a gallery observer sent to
   * another node): the socket closes and the next connection, at once,
   * joins at the path given. Later reconnections start from the usual URL.
   */
  onRedirect(data) {
    const path = data && data.path;
    if (typeof path !== 'string' || !path.startsWith('/api/v1/sessions/') || this.redirects >= MAX_REDIRECTS) return;
    this.redirects++;
    this.redirectPath = path;
    this.lastReason = 'redirect';
  }

  async onJoined(joined) {
    this.attempt = 0;
    this.redirects = 0;
    const rejoin = this.joinedOnce;
    this.joinedOnce = true;
    const config = { iceServers: joined.ice_servers || [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' };
    this.pub = new RTCPeerConnection(config);
    this.sub = new RTCPeerConnection(config);
    this.pendingCands = { publish: [], subscribe: [] };
    for (const [name, pc] of [['publish', this.pub], ['subscribe', this.sub]]) {
      pc.onicecandidate = (e) => {
        if (!e.candidate) return;
        const c = e.candidate.toJSON();
        this.send('candidate', { pc: name, candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment });
      };
      pc.onconnectionstatechange = () => this.watchPC(name, pc);
    }
    this.sub.ontrack = () => this.emitTracks();
    // The server refuses media from the waiting room; the room calls
    // allowPublishing once the participant is admitted (set before the
    // joined event, whose handler may already call it).
    const you = joined.session && joined.session.you;
    this.publishAllowed = !(you && you.space === 'waiting');
    this.emit('joined', { joined, welcome: joined.session || null, rejoin });
    this.emit('state', { state: 'connected' });
    this.pingTimer = setInterval(() => {
      if (this.lastPing && (!this.lastPong || this.lastPong < this.lastPing) && Date.now() - this.lastPing > 2 * PING_EVERY) {
        this.fail('no pong');
        return;
      }
      this.lastPing = Date.now();
      this.send('ping', { at: this.lastPing });
    }, PING_EVERY);
    if (this.publishAllowed) await this.publishLocal();
  }

  /**
   * allowPublishing publishes the local media once the participant has
   * left the waiting room (and on every connection after that, until the
   * next joined says otherwise).
   */
  async allowPublishing() {
    if (this.publishAllowed) return;
    this.publishAllowed = true;
    await this.publishLocal();
  }

  watchPC(name, pc) {
    const s = pc.connectionState;
    if (s === 'failed') {
      this.fail(name + ' connection failed');
    } else if (s === 'disconnected') {
      clearTimeout(this.discTimer);
      this.discTimer = setTimeout(() => {
        if (pc.connectionState === 'disconnected') this.fail(name + ' connection lost');
      }, DISCONNECTED_GRACE);
    }
  }

  /** fail drops the current connection; onClosed schedules the rejoin. */
  fail(reason) {
    if (!this.ws) return;
    this.lastReason = reason;
    const ws = this.ws;
    try { ws.close(4000, String(reason).slice(0, 100)); } catch { /* already closing */ }
    // Some browsers delay onclose for a dead socket; do not wait for it.
    setTimeout(() => { if (this.ws === ws) this.onClosed(reason); }, 1000);
  }

  onClosed(reason) {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    this.teardown();
    if (this.ended) return;
    const joinErr = this.joinError;
    this.joinError = null;
    // Refusals of the token are final; anything else — "unavailable" when
    // the server's database or store is down — is retried with back-off.
    if (joinErr && ['unauthenticated', 'token_expired', 'token_revoked', 'forbidden', 'unsupported_version'].includes(joinErr.code)) {
      this.ended = true;
      this.emit('closed', { reason: joinErr.message, code: joinErr.code });
      return;
    }
    if (FINAL_BYES.includes(this.lastReason)) {
      this.ended = true;
      this.emit('closed', { reason: this.lastReason, code: this.lastReason });
      return;
    }
    if (this.redirectPath) {
      this.connect(); // placed elsewhere: join there now, no back-off
      return;
    }
    this.attempt++;
    const delay = Math.min(10000, 500 * 2 ** Math.min(this.attempt - 1, 5)) + Math.random() * 300;
    this.emit('state', { state: 'reconnecting', attempt: this.attempt, reason, code: joinErr ? joinErr.code : undefined });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => { if (!this.ended) this.connect(); }, delay);
  }

  /** teardown closes the PeerConnections and the socket, keeping local media. */
  teardown() {
    clearInterval(this.pingTimer);
    clearTimeout(this.discTimer);
    this.lastPing = 0;
    this.lastPong = 0;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error('connection closed'));
    }
    this.pending.clear();
    for (const pc of [this.pub, this.sub]) {
      if (pc) {
        pc.onconnectionstatechange = null;
        pc.close();
      }
    }
    if (this.pub || this.sub) this.emit('tracks', { tracks: [] });
    this.pub = null;
    this.sub = null;
    this.sources = new Map();
    this.subLines = new Map();
    if (this.screen) this.screen.transceiver = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      try { ws.close(1000); } catch { /* closed */ }
    }
  }

  // ——— publishing ———

  async publishLocal() {
    const m = this.media;
    if (!m || !this.pub) return;
    const stream = m.stream;
    if (m.audio) this.addSender(m.audio, 'microphone', stream);
    if (m.video) this.addSender(m.video, 'camera', stream, this.simulcast);
    if (this.screen && this.screen.stream) {
      const track = this.screen.stream.getVideoTracks()[0];
      if (track && track.readyState === 'live') this.screen.transceiver = this.addSender(track, 'screen', this.screen.stream);
    }
    if (this.sources.size) await this.negotiatePublish();
  }

  addSender(track, source, stream, simulcast = false) {
    const init = { direction: 'sendonly', streams: [stream] };
    // Largest first: Firefox ESR given the layers smallest first left the
    // full layer unsent (width 0) and ran the quarter one at its cap;
    // Chromium takes either order. The server names layers by RID.
    if (simulcast && track.kind === 'video') init.sendEncodings = SIMULCAST.map((e) => Object.assign({}, e)).reverse();
    const tr = this.pub.addTransceiver(track, init);
    this.sources.set(tr, source);
    return tr;
  }

  /** negotiatePublish offers the publish PeerConnection's current tracks, one negotiation at a time. */
  negotiatePublish() {
    const run = async () => {
      const pc = this.pub;
      if (!pc) return;
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const tracks = [];
      for (const tr of pc.getTransceivers()) {
        const src = this.sources.get(tr);
        if (src && tr.mid && tr.currentDirection !== 'stopped' && !tr.stopped) tracks.push({ mid: tr.mid, source: src });
      }
      const answer = await this.request('offer', { pc: 'publish', sdp: pc.localDescription.sdp, tracks });
      if (pc !== this.pub) return;
      await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
      await this.flushCandidates('publish');
      await this.capLayers();
    };
    this.pubChain = (this.pubChain || Promise.resolve()).then(run, run).catch((err) => {
      if (this.pub) this.emit('message', { type: 'error', data: { code: err.code || 'client', message: err.message, ref: 'offer' } });
    });
    return this.pubChain;
  }

  /**
   * capLayers states each camera layer's cap again once the answer is in:
   * both engines may drop or reorder what addTransceiver asked for while
   * they negotiate (Firefox sent its layers at rates unrelated to the
   * caps), so the encodings are matched by RID and set explicitly.
   */
  async capLayers() {
    for (const [tr, src] of this.sources) {
      if (src !== 'camera' || !this.simulcast || !tr.sender || !tr.sender.track) continue;
      const params = tr.sender.getParameters();
      if (!params.encodings || params.encodings.length < 2) continue;
      let changed = false;
      for (const enc of params.encodings) {
        const want = SIMULCAST.find((e) => e.rid === enc.rid);
        if (!want) continue;
        if (enc.maxBitrate !== want.maxBitrate) { enc.maxBitrate = want.maxBitrate; changed = true; }
        const scale = want.scaleResolutionDownBy || 1;
        if ((enc.scaleResolutionDownBy || 1) !== scale) { enc.scaleResolutionDownBy = scale; changed = true; }
      }
      if (!changed) continue;
      try { await tr.sender.setParameters(params); } catch { /* the browser keeps its own */ }
    }
  }

  /** replaceTrack swaps the microphone or camera track (null stops sending it) without renegotiating. */
  async replaceTrack(source, track) {
    if (this.media) this.media[source === 'microphone' ? 'audio' : 'video'] = track;
    if (!this.pub) return;
    for (const [tr, src] of this.sources) {
      if (src === source) {
        await tr.sender.replaceTrack(track);
        return;
      }
    }
    if (track) {
      this.addSender(track, source, this.media.stream, source === 'camera' && this.simulcast);
      await this.negotiatePublish();
    }
  }

  /** shareScreen publishes a display-capture stream as the "screen" source. */
  async shareScreen(stream) {
    this.screen = { stream, transceiver: null };
    if (!this.pub) return;
    this.screen.transceiver = this.addSender(stream.getVideoTracks()[0], 'screen', stream);
    await this.negotiatePublish();
  }

  /** stopScreen ends the screen share; the server unpublishes it when the m-line stops. */
  async stopScreen() {
    const s = this.screen;
    this.screen = null;
    if (!s) return;
    for (const tr of s.stream.getTracks()) tr.stop();
    if (s.transceiver && this.pub) {
      this.sources.delete(s.transceiver);
      try { s.transceiver.stop(); } catch { /* already stopped */ }
      await this.negotiatePublish();
    }
  }

  // ——— subscribing ———

  async onSubscribeOffer(sd) {
    if (sd.pc !== 'subscribe' || !this.sub) return;
    const pc = this.sub;
    this.subLines = new Map((sd.tracks || []).map((l) => [l.mid, l]));
    await pc.setRemoteDescription({ type: 'offer', sdp: sd.sdp });
    await this.flushCandidates('subscribe');
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (pc !== this.sub) return;
    this.send('answer', { pc: 'subscribe', sdp: pc.localDescription.sdp });
    this.emitTracks();
  }

  emitTracks() {
    if (!this.sub) return;
    const tracks = [];
    for (const tr of this.sub.getTransceivers()) {
      const line = tr.mid && this.subLines.get(tr.mid);
      if (!line || !tr.receiver || !tr.receiver.track) continue;
      const dir = tr.currentDirection || tr.direction;
      if (dir === 'inactive' || dir === 'stopped' || dir === 'sendonly') continue;
      tracks.push({ line, track: tr.receiver.track, receiver: tr.receiver });
    }
    this.emit('tracks', { tracks });
  }

  async onCandidate(c) {
    const pc = c.pc === 'publish' ? this.pub : c.pc === 'subscribe' ? this.sub : null;
    if (!pc || !c.candidate) return;
    const init = { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment };
    if (!pc.remoteDescription) {
      this.pendingCands[c.pc].push(init);
      return;
    }
    try { await pc.addIceCandidate(init); } catch { /* a stale candidate after renegotiation */ }
  }

  async flushCandidates(name) {
    const pc = name === 'publish' ? this.pub : this.sub;
    const list = this.pendingCands[name];
    this.pendingCands[name] = [];
    for (const init of list) {
      try { await pc.addIceCandidate(init); } catch { /* stale */ }
    }
  }

  /** setQuality caps (maxLayer 0…2) or pauses one received video track. */
  setQuality(trackId, { maxLayer, paused }) {
    const data = { track_id: trackId };
    if (maxLayer !== undefined && maxLayer !== null) data.max_layer = maxLayer;
    if (paused) data.paused = true;
    this.send('quality', data);
  }

  /** stats returns both PeerConnections' getStats reports (null while disconnected). */
  async stats() {
    if (!this.pub || !this.sub) return null;
    const [pub, sub] = await Promise.all([this.pub.getStats(), this.sub.getStats()]);
    return { pub, sub };
  }
}
