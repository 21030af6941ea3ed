// The room: it wires the signalling connection to the store (store.js)
// and the views to the state the store returns — the header, the tiles
// (tiles.js), the stage (stage.js), the toolbar (toolbar.js) and the side
// panels — and runs what the browser itself does: local media, moderation
// calls over REST, connection statistics. The server enforces every rule;
// the controls shown here only follow the permissions it lists.
import { t, roleLabel } from './i18n.js';
import { h, replace, announce, toast, confirmDialog } from './dom.js';
import { ApiError, errorText } from './api.js';
import { getMedia, mediaErrorText } from './media.js';
import { RoomConnection } from './signal.js';
import { initial, reduce, viewOf, inConsultation, enforcedMute, nameOf, recordingState, MAIN } from './store.js';
import { Tiles } from './tiles.js';
import { Stage } from './stage.js';
import { Toolbar } from './toolbar.js';
import { createPeoplePanel } from './people.js';
import { createChatPanel } from './chat.js';
import { createDocumentsPanel } from './documents.js';
import { createActPanel } from './act.js';

export class Room extends EventTarget {
  constructor({ app, api, token, me, session, media, onEnd, videoId, audioId }) {
    super();
    this.app = app;
    this.api = api;
    this.token = token;
    this.media = media || null; // {stream, audio, video} of this browser
    this.videoId = videoId;
    this.audioId = audioId;
    this.onEnd = onEnd;
    this.state = initial({ you: me.participant, permissions: me.permissions, session });
    this.videos = new Map(); // tile key → {track, id} received
    this.audioEls = new Map(); // track id → <audio>
    this.screen = null; // this browser's shared screen track
    this.layers = new Map(); // received track id → {rids, current}: simulcast layers (track_published, layer)
    this.layerWaits = new Set(); // functions called on every layer change
    this.tiles = new Tiles();
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  // ——— what the panels read ———

  can(action) { return this.state.perms.has(action); }
  get sid() { return this.state.session.id; }
  get you() { return this.state.you; }
  get session() { return this.state.session; }
  get participants() { return this.state.participants; }
  get consultations() { return this.state.consultations; }
  get recording() { return this.state.recording; }

  /** nameOf returns a participant's name and role, from whatever knows it. */
  nameOf(id) { return nameOf(this.state, id) || { name: t('room.someone'), role: '' }; }

  start() {
    this.render();
    const conn = new RoomConnection({ sessionId: this.sid, token: this.token, media: this.media });
    this.conn = conn;
    if (this.media && this.media.startMuted) this.setMicMuted(true, false);
    conn.addEventListener('state', (e) => this.dispatch({ type: 'connection', state: e.detail.state, attempt: e.detail.attempt }));
    conn.addEventListener('joined', (e) => this.dispatch(Object.assign({ type: 'joined' }, e.detail)));
    conn.addEventListener('message', (e) => this.dispatch({ type: 'message', msg: e.detail.type, data: e.detail.data }));
    conn.addEventListener('tracks', (e) => this.onTracks(e.detail.tracks));
    conn.addEventListener('closed', (e) => this.dispatch({ type: 'closed', code: e.detail.code, reason: e.detail.reason }));
    conn.start();
    this.statsTimer = setInterval(() => this.pollStats(), 2000);
    this.unload = () => conn.leave();
    window.addEventListener('beforeunload', this.unload);
  }

  /** dispatch runs an action through the store, then shows the result. */
  dispatch(action) {
    const prev = this.state;
    const { state, effects } = reduce(prev, action);
    this.state = state;
    this.update(prev);
    for (const fx of effects) this.effect(fx);
  }

  effect(fx) {
    switch (fx.type) {
      case 'toast': return toast(t(fx.key, fx.params));
      case 'announce': return announce(t(fx.key, fx.params), fx.assertive);
      case 'badge': return this.badge(fx.panel);
      case 'event':
        this.noteLayers(fx.name, fx.data);
        return this.emit(fx.name, fx.data);
      case 'error': return toast(errorText(new ApiError(0, fx.code, fx.message)), 'error');
      case 'end': return this.finish(fx.kind, fx.reason);
      case 'check': return this.whyClosed(fx.code, fx.reason);
      case 'rejoined':
        // A new connection has new down-tracks: state every preference again.
        this.stage.forgetQuality();
        this.sendStatus();
        return undefined;
    }
    return undefined;
  }

  /** update renders what changed between prev and the current state. */
  update(prev) {
    const s = this.state;
    if (s.ended) return;
    if (prev.you !== s.you || prev === s) this.applyView(prev);
    if (prev.recording !== s.recording) {
      const rec = recordingState(s.recording);
      this.recBadge.hidden = rec !== 'recording';
      this.pendingBadge.hidden = rec !== 'storage_pending';
      this.emit('recording', s.recording);
    }
    if (prev.connection !== s.connection) this.applyConnection();
    if (prev.participants !== s.participants || prev.you !== s.you || prev.consultations !== s.consultations || prev.statuses !== s.statuses || prev.peers !== s.peers) {
      this.emit('participants');
    }
    if (prev.session !== s.session) {
      this.emit('session');
    }
    if (prev.chat !== s.chat) this.emit('chat', s.chat);
    this.toolbar.update(s, this.local());
    this.renderTiles();
  }

  local() {
    return { media: this.media, screen: this.screen, sharing: !!this.screen };
  }

  renderTiles() {
    this.tiles.sync(this.state, this.videos, { camera: this.media && this.media.video, screen: this.screen });
    this.stage.layout(this.state, this.tiles.tiles);
    this.stageEl.dataset.layout = this.stage.featured.hidden ? 'grid' : 'featured';
  }

  // ——— rendering ———

  render() {
    const s = this.state;
    document.title = s.session.title + ' — ' + t('app.name');
    this.recBadge = h('div', { class: 'rec-badge', role: 'status', hidden: true, id: 'recording-indicator' },
      h('span', { class: 'rec-dot', 'aria-hidden': 'true' }), t('room.recording'));
    this.pendingBadge = h('div', { class: 'rec-badge rec-pending', role: 'status', hidden: true, id: 'recording-pending', dataset: { state: 'storage_pending' } },
      t('recording.storagePending'));
    this.qualityEl = h('div', { class: 'quality', id: 'connection-quality', role: 'img', 'aria-label': t('quality.unknown'), title: t('quality.unknown') },
      h('span', { class: 'bar b1' }), h('span', { class: 'bar b2' }), h('span', { class: 'bar b3' }));
    this.banner = h('div', { class: 'banner', role: 'alert', hidden: true, id: 'connection-banner' });
    this.spaceBanner = h('div', { class: 'banner banner-info', role: 'status', hidden: true, id: 'space-banner' });
    this.deviceBox = h('div', { class: 'device-problems', id: 'device-problems' });
    this.stage = new Stage({ api: this.api, actions: {
      present: (doc, page) => this.present(doc, page),
      stopPresenting: () => this.stopPresenting(),
      setQuality: (id, max) => this.conn && this.conn.setQuality(id, { maxLayer: max }),
    } });
    this.audioBox = h('div', { class: 'sr-only', 'aria-hidden': 'true' });
    this.stageEl = h('main', { class: 'stage', id: 'main', tabindex: '-1', dataset: { layout: 'grid' } }, this.stage.featured, this.stage.grid, this.audioBox);

    this.waiting = h('section', { class: 'waiting card', hidden: true, id: 'waiting-room', 'aria-labelledby': 'waiting-heading' },
      h('div', { class: 'spinner', 'aria-hidden': 'true' }),
      h('h1', { id: 'waiting-heading', tabindex: '-1' }, t('waiting.title')),
      h('p', null, t('waiting.text')),
      h('p', { class: 'muted' }, t('waiting.hint')));

    this.side = this.renderPanels();
    this.toolbar = new Toolbar({ room: this, panels: this.panels });
    const who = h('div', { class: 'who' }, h('span', { class: 'who-name' }, s.you.name), ' · ', h('span', { class: 'who-role' }, roleLabel(s.you.role)));
    this.header = h('header', { class: 'room-header' },
      h('div', { class: 'room-title' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }),
        h('div', null, h('h1', { class: 'title' }, s.session.title),
          h('div', { class: 'subtitle' }, [s.session.case_number, t('kind.' + s.session.kind)].filter(Boolean).join(' · ')))),
      h('div', { class: 'room-status' }, this.recBadge, this.pendingBadge, this.qualityEl, who));
    this.body = h('div', { class: 'room-body' }, this.stageEl, this.side);
    this.root = h('div', { class: 'room', dataset: { view: 'connecting' } }, this.header, this.banner, this.spaceBanner, this.deviceBox, this.waiting, this.body, this.toolbar.el);
    replace(this.app, this.root);
    if (this.panels.length) this.showPanel(this.panels[0][0], false);
    this.closeSideOnNarrow();
    this.toolbar.update(s, this.local());
    this.renderTiles();
  }

  renderPanels() {
    const panels = [];
    if (this.can('see_participants')) panels.push(['people', t('panel.people'), createPeoplePanel(this)]);
    panels.push(['chat', t('panel.chat'), createChatPanel(this)]);
    if (this.can('see_documents')) panels.push(['documents', t('panel.documents'), createDocumentsPanel(this)]);
    if (this.state.session.kind === 'notarisation' && (this.can('identity_check') || this.can('seal') || this.state.you.role === 'principal')) {
      panels.push(['act', t('panel.act'), createActPanel(this)]);
    }
    this.panels = panels;
    const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': t('panel.label') });
    this.closeSide = h('button', { type: 'button', class: 'btn btn-small side-close', id: 'side-close', onclick: () => this.hideSide(true) }, t('common.close'));
    const side = h('aside', { class: 'side', id: 'side-panel', 'aria-label': t('panel.label') }, h('div', { class: 'side-head' }, tablist, this.closeSide));
    this.tabButtons = new Map();
    for (const [key, label, panel] of panels) {
      const tab = h('button', { type: 'button', role: 'tab', id: 'tab-' + key, 'aria-controls': 'panel-' + key, 'aria-selected': 'false', tabindex: '-1' }, label,
        h('span', { class: 'tab-badge', hidden: true }, h('span', { class: 'sr-only' }, t('panel.news'))));
      tab.addEventListener('click', () => this.showPanel(key));
      tab.addEventListener('keydown', (e) => this.tabKey(e, key));
      tablist.append(tab);
      panel.el.id = 'panel-' + key;
      panel.el.setAttribute('role', 'tabpanel');
      panel.el.setAttribute('aria-labelledby', 'tab-' + key);
      panel.el.tabIndex = 0;
      panel.el.hidden = true;
      side.append(panel.el);
      this.tabButtons.set(key, tab);
    }
    // On a phone the side panel is an overlay: Escape or the back button closes it.
    this.onEscape = (e) => {
      if (e.key !== 'Escape' || !this.overlay() || !this.root.classList.contains('side-open') || document.querySelector('dialog[open]')) return;
      e.preventDefault();
      this.hideSide(true);
    };
    document.addEventListener('keydown', this.onEscape);
    this.onPop = () => { if (this.overlay() && this.root.classList.contains('side-open')) this.hideSide(false); };
    window.addEventListener('popstate', this.onPop);
    return side;
  }

  /** overlay reports whether the side panel covers the stage (narrow screens). */
  overlay() { return window.matchMedia('(max-width: 900px)').matches; }

  closeSideOnNarrow() {
    if (this.overlay()) this.root.classList.remove('side-open');
    else this.root.classList.add('side-open');
  }

  tabKey(e, key) {
    const keys = this.panels.map((p) => p[0]);
    let i = keys.indexOf(key);
    if (e.key === 'ArrowRight') i = (i + 1) % keys.length;
    else if (e.key === 'ArrowLeft') i = (i - 1 + keys.length) % keys.length;
    else if (e.key === 'Home') i = 0;
    else if (e.key === 'End') i = keys.length - 1;
    else return;
    e.preventDefault();
    this.showPanel(keys[i]);
    this.tabButtons.get(keys[i]).focus();
  }

  showPanel(key, open = true) {
    for (const [k, , panel] of this.panels) {
      const on = k === key;
      panel.el.hidden = !on;
      const tab = this.tabButtons.get(k);
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
      if (on) {
        tab.querySelector('.tab-badge').hidden = true;
        if (panel.shown) panel.shown();
      }
    }
    this.current = key;
    if (open) {
      const was = this.root.classList.contains('side-open');
      this.root.classList.add('side-open');
      // The phone's back button closes the overlay rather than the page;
      // focus moves into the panel that now covers the stage.
      if (!was && this.overlay()) history.pushState({ side: key }, '');
      if (this.overlay()) {
        const panel = this.panels.find((p) => p[0] === key);
        if (panel) panel[2].el.focus({ preventScroll: true });
      }
    }
    this.toolbar.panelsChanged(this.current, this.root.classList.contains('side-open'));
  }

  /** hideSide closes the side panel overlay; fromUI undoes its history entry. */
  hideSide(fromUI) {
    if (!this.root.classList.contains('side-open')) return;
    this.root.classList.remove('side-open');
    this.toolbar.panelsChanged(this.current, false);
    if (fromUI && this.overlay() && history.state && history.state.side) history.back();
    const b = this.toolbar.panelButton(this.current);
    if (b) b.focus();
  }

  togglePanel(key) {
    if (this.current === key && this.root.classList.contains('side-open')) return this.hideSide(true);
    return this.showPanel(key);
  }

  /** badge marks a panel that has news while another is shown. */
  badge(key) {
    if (this.current === key && this.root.classList.contains('side-open')) return;
    const tab = this.tabButtons.get(key);
    if (tab) tab.querySelector('.tab-badge').hidden = false;
    this.toolbar.badge(key);
  }

  applyConnection() {
    const { state, attempt } = this.state.connection;
    if (state === 'reconnecting') {
      this.banner.hidden = false;
      this.banner.textContent = t('room.reconnecting', { attempt });
      this.root.dataset.connection = 'reconnecting';
      this.setQualityLevel(0);
    } else if (state === 'connected') {
      this.banner.hidden = true;
      this.root.dataset.connection = 'connected';
    }
  }

  /** applyView shows the waiting room or the room for the participant's space. */
  applyView(prev) {
    const s = this.state;
    const view = viewOf(s);
    const before = this.root.dataset.view;
    this.root.dataset.view = view;
    this.waiting.hidden = view !== 'waiting';
    this.body.hidden = view === 'waiting';
    if (view === 'waiting' && before !== 'waiting') {
      document.title = t('waiting.title') + ' — ' + t('app.name');
      this.waiting.querySelector('h1').focus();
    } else if (view === 'room' && before !== 'room') {
      document.title = s.session.title + ' — ' + t('app.name');
      if (this.conn && this.can('publish')) this.conn.allowPublishing();
      this.stageEl.focus({ preventScroll: true });
    }
    const consult = inConsultation(s);
    this.spaceBanner.hidden = !consult;
    this.spaceBanner.textContent = consult ? t('room.inConsultation') : '';
    this.root.dataset.space = consult ? 'consultation' : (s.you.space || MAIN);
    // A raised hand does not follow its owner to another room.
    if (prev.you.space !== s.you.space) this.handUp = false;
  }

  // ——— media received ———

  onTracks(tracks) {
    const videos = new Map();
    const audio = new Set();
    for (const { line, track } of tracks) {
      if (line.kind === 'audio' || track.kind === 'audio') {
        audio.add(line.track_id);
        let el = this.audioEls.get(line.track_id);
        if (!el) {
          el = h('audio', { autoplay: true, dataset: { participant: line.participant_id, track: line.track_id } });
          this.audioEls.set(line.track_id, el);
          this.audioBox.append(el);
        }
        if (!el.srcObject || el.srcObject.getTracks()[0] !== track) {
          el.srcObject = new MediaStream([track]);
          el.play().catch(() => this.needSoundUnlock());
        }
        continue;
      }
      videos.set(line.participant_id + ':' + line.source, { track, id: line.track_id });
    }
    for (const [id, el] of this.audioEls) {
      if (!audio.has(id)) {
        el.srcObject = null;
        el.remove();
        this.audioEls.delete(id);
      }
    }
    this.videos = videos;
    if (!this.state.ended) this.renderTiles();
  }

  needSoundUnlock() {
    if (this.soundBtn) return;
    this.soundBtn = h('button', { type: 'button', class: 'btn btn-primary sound-unlock', onclick: () => {
      for (const el of this.audioEls.values()) el.play().catch(() => {});
      this.soundBtn.remove();
      this.soundBtn = null;
    } }, t('room.enableSound'));
    this.stageEl.append(this.soundBtn);
  }

  // ——— presenting ———

  /** present shows a document page to everyone in the main room. */
  present(documentId, page) {
    if (page < 1) return;
    const pr = this.state.presenting;
    if (pr && pr.document_id === documentId && this.stage.pages && page > this.stage.pages) return;
    this.conn.send('present', { document_id: documentId, page });
  }

  stopPresenting() { this.conn.send('present', { document_id: null, page: 0 }); }

  // ——— the end ———

  async whyClosed(code, reason) {
    if (['unauthenticated', 'token_expired', 'forbidden'].includes(code)) {
      // Ask the API why: it names expiry and revocation.
      try {
        await this.api.get('/me');
        const s = await this.api.get('/sessions/' + this.sid);
        if (s.state === 'closed') return this.dispatch({ type: 'end', kind: 'closed' });
      } catch (err) {
        if (err instanceof ApiError && err.code === 'token_revoked') return this.dispatch({ type: 'end', kind: 'removed' });
        if (err instanceof ApiError && err.code === 'token_expired') return this.dispatch({ type: 'end', kind: 'refused', reason: t('error.tokenExpired') });
        return this.dispatch({ type: 'end', kind: 'refused', reason: errorText(err) });
      }
    }
    return this.dispatch({ type: 'end', kind: 'refused', reason: errorText(new ApiError(0, code, reason)) });
  }

  /**
   * finish stops everything this page runs and hands over to the end page.
   * Each step is guarded: one that fails must not leave a dead room.
   */
  finish(kind, reason) {
    const steps = [
      () => clearInterval(this.statsTimer),
      () => this.tiles.stop(),
      () => window.removeEventListener('beforeunload', this.unload),
      () => { if (this.conn && !this.conn.ended) this.conn.leave(); },
      () => { if (this.conn) this.conn.stopScreen(); },
      () => { if (this.media && this.media.stream) for (const tr of this.media.stream.getTracks()) tr.stop(); },
      () => { if (this.screen) this.screen.stop(); },
      () => { for (const el of this.audioEls.values()) el.srcObject = null; },
      () => this.stage.close(),
      () => this.toolbar.stop(),
      () => document.removeEventListener('keydown', this.onEscape),
      () => window.removeEventListener('popstate', this.onPop),
    ];
    for (const step of steps) {
      try { step(); } catch (err) { console.error('leaving the room:', err); }
    }
    this.onEnd({ kind, reason, rejoin: kind === 'left' });
  }

  leave() { this.dispatch({ type: 'end', kind: 'left' }); }

  // ——— local media controls ———

  micMuted() { return !this.media || !this.media.audio || !this.media.audio.enabled; }

  setMicMuted(muted, tell = true) {
    if (!this.media || !this.media.audio) return;
    this.media.audio.enabled = !muted;
    this.toolbar.update(this.state, this.local());
    if (tell) this.sendStatus();
  }

  /** sendStatus tells the space this participant's hand and microphone. */
  sendStatus() {
    if (!this.conn || !this.can('publish') || viewOf(this.state) === 'waiting') return;
    this.conn.send('status', { hand: !!this.handUp, mic_off: this.micMuted() });
  }

  toggleMic() {
    if (!this.media || !this.media.audio) return this.retryDevice('audio');
    if (enforcedMute(this.state.you).audio) return undefined;
    const muted = this.media.audio.enabled;
    this.setMicMuted(muted);
    announce(muted ? t('room.micOff') : t('room.micOn'));
    return undefined;
  }

  toggleHand() {
    this.handUp = !this.handUp;
    this.sendStatus();
    announce(this.handUp ? t('hand.youRaised') : t('hand.youLowered'));
    this.toolbar.update(this.state, this.local());
  }

  async toggleCamera() {
    if (enforcedMute(this.state.you).video) return;
    if (!this.media) this.media = { stream: new MediaStream(), audio: null, video: null };
    if (this.media.video) {
      const tr = this.media.video;
      await this.conn.replaceTrack('camera', null);
      tr.stop();
      this.media.stream.removeTrack(tr);
      this.media.video = null;
      announce(t('room.cameraIsOff'));
    } else {
      await this.retryDevice('video');
    }
    this.update(this.state);
  }

  /**
   * retryDevice asks for the camera or microphone again (after a refusal
   * or a device that was busy); a failure is said in plain words beside a
   * Try again button for that device.
   */
  async retryDevice(kind) {
    if (!this.media) this.media = { stream: new MediaStream(), audio: null, video: null };
    try {
      const s = await getMedia({ audio: kind === 'audio', video: kind === 'video', audioId: this.audioId, videoId: this.videoId });
      const tr = kind === 'audio' ? s.getAudioTracks()[0] : s.getVideoTracks()[0];
      if (!tr) throw Object.assign(new Error('no track'), { name: 'NotFoundError' });
      this.media.stream.addTrack(tr);
      await this.conn.replaceTrack(kind === 'audio' ? 'microphone' : 'camera', tr);
      this.deviceProblem(kind, null);
      announce(kind === 'audio' ? t('room.micOn') : t('room.cameraIsOn'));
      if (kind === 'audio') this.sendStatus();
    } catch (err) {
      this.deviceProblem(kind, err);
    }
    this.update(this.state);
  }

  /** deviceProblem shows (or, with err null, clears) why a device is not working. */
  deviceProblem(kind, err) {
    const id = 'device-problem-' + kind;
    const old = document.getElementById(id);
    if (old) old.remove();
    if (!err) return;
    const text = (kind === 'audio' ? t('device.micProblem') : t('device.cameraProblem')) + ' ' + mediaErrorText(err);
    this.deviceBox.append(h('div', { class: 'banner banner-warn', role: 'alert', id },
      h('span', null, text), ' ',
      h('button', { type: 'button', class: 'btn btn-small', id: 'retry-' + kind, onclick: () => this.retryDevice(kind) }, kind === 'audio' ? t('device.retryMic') : t('device.retryCamera'))));
  }

  /** reportMediaError shows a device refused before joining (from the join page). */
  reportMediaError(kind, err) { this.deviceProblem(kind, err); }

  async toggleShare() {
    if (this.screen) {
      await this.conn.stopScreen();
      this.screen = null;
      this.update(this.state);
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (err) {
      if (err && err.name !== 'NotAllowedError') toast(mediaErrorText(err), 'error');
      return;
    }
    const track = stream.getVideoTracks()[0];
    track.addEventListener('ended', () => {
      if (this.conn.screen && this.conn.screen.stream === stream) {
        this.conn.stopScreen();
        this.screen = null;
        this.update(this.state);
      }
    });
    await this.conn.shareScreen(stream);
    this.screen = track;
    announce(t('room.sharing'));
    this.update(this.state);
  }

  /** noteLayers follows which simulcast layer each received video comes in. */
  noteLayers(name, data) {
    if (name === 'track_published' && data.track && data.track.kind === 'video') {
      const old = this.layers.get(data.track.id) || {};
      this.layers.set(data.track.id, { rids: data.track.layers || [], current: old.current ?? -1 });
    } else if (name === 'layer' && data.track_id) {
      const info = this.layers.get(data.track_id) || { rids: [] };
      info.current = data.layer;
      this.layers.set(data.track_id, info);
      for (const f of this.layerWaits) f();
    }
  }

  /** topLayer waits (up to limit ms) until a video arrives in its highest simulcast layer. */
  topLayer(trackId, limit) {
    return new Promise((resolve) => {
      const check = () => {
        const info = this.layers.get(trackId);
        const top = info && info.rids.length ? info.rids.length - 1 : 0;
        if (!info || !info.rids.length || info.current === top) {
          done();
          return true;
        }
        return false;
      };
      const done = () => {
        clearTimeout(timer);
        this.layerWaits.delete(check);
        resolve();
      };
      const timer = setTimeout(done, limit);
      if (!check()) this.layerWaits.add(check);
    });
  }

  /**
   * captureStill draws a participant's camera, as received, at the largest
   * size the server sends: it lifts the layer cap for that video, waits
   * until the server says the top simulcast layer arrives (the tile on
   * screen may be a small filmstrip tile drawn from the lowest layer) and
   * its width has settled. It resolves to {blob (JPEG), width, height,
   * url (a thumbnail)}.
   */
  async captureStill(pid) {
    const rx = this.videos.get(pid + ':camera');
    if (!rx) throw new Error(t('identity.noVideo'));
    this.conn.setQuality(rx.id, { maxLayer: 2 });
    this.stage.quality.set(rx.id, '2');
    try {
      await this.topLayer(rx.id, 15000);
      return await drawTrack(rx.track, 6000);
    } finally {
      // The next layout states the caps the tiles need again.
      this.stage.forgetQuality();
      this.renderTiles();
    }
  }

  /** captureLocal draws this browser's own camera at its full size (a document held up to it). */
  captureLocal() {
    if (!this.media || !this.media.video) return Promise.reject(new Error(t('identity.noCamera')));
    return drawTrack(this.media.video, 0);
  }

  // ——— moderation (REST; the server checks every permission) ———

  async moderate(path, body, done) {
    try {
      const res = await this.api.post('/sessions/' + this.sid + path, body || {});
      if (done) toast(done);
      return res;
    } catch (err) {
      toast(errorText(err), 'error');
      throw err;
    }
  }

  async closeSession() {
    if (!await confirmDialog(t('session.closeTitle'), t('session.closeConfirm'), t('session.close'))) return;
    await this.moderate('/close', undefined).catch(() => {});
  }

  async setRecordingOn(on) {
    try {
      const rec = await this.api.post('/sessions/' + this.sid + '/recording', { action: on ? 'start' : 'stop' });
      this.dispatch({ type: 'message', msg: 'recording', data: rec });
    } catch (err) {
      toast(err instanceof ApiError && err.status === 404 ? t('recording.unavailable') : errorText(err), 'error');
    }
  }

  // ——— connection quality ———

  async pollStats() {
    if (!this.conn) return;
    let stats;
    try { stats = await this.conn.stats(); } catch { return; }
    if (!stats) return;
    let rtt = null;
    let lost = 0;
    let received = 0;
    for (const report of [stats.pub, stats.sub]) {
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && s.currentRoundTripTime !== undefined) {
          rtt = Math.max(rtt || 0, s.currentRoundTripTime);
        }
        if (s.type === 'inbound-rtp') {
          lost += s.packetsLost || 0;
          received += s.packetsReceived || 0;
        }
      });
    }
    const prev = this.lastCounts || { lost: 0, received: 0 };
    this.lastCounts = { lost, received };
    const dLost = Math.max(0, lost - prev.lost);
    const dRecv = Math.max(0, received - prev.received);
    const loss = dLost + dRecv > 0 ? dLost / (dLost + dRecv) : 0;
    let level = 3;
    if (rtt === null) level = 0;
    else if (rtt > 0.5 || loss > 0.1) level = 1;
    else if (rtt > 0.2 || loss > 0.03) level = 2;
    this.setQualityLevel(level, rtt, loss);
  }

  setQualityLevel(level, rtt, loss) {
    const names = ['quality.none', 'quality.poor', 'quality.fair', 'quality.good'];
    let text = t(names[level]);
    if (rtt !== null && rtt !== undefined) text += ' — ' + t('quality.details', { rtt: Math.round(rtt * 1000), loss: (loss * 100).toFixed(1) });
    this.qualityEl.dataset.level = String(level);
    this.qualityEl.setAttribute('aria-label', text);
    this.qualityEl.title = text;
  }
}

/**
 * drawTrack draws a video track's frame into a JPEG. With wait > 0 it
 * first waits (up to wait ms) for the width to stop growing.
 */
async function drawTrack(track, wait) {
  const video = h('video', { muted: true, playsinline: true, autoplay: true });
  video.muted = true;
  video.srcObject = new MediaStream([track]);
  try {
    await video.play().catch(() => {});
    const width = await largestWidth(video, wait || 3000, !wait);
    if (!width) throw new Error(t('identity.noVideo'));
    const c = document.createElement('canvas');
    c.width = video.videoWidth;
    c.height = video.videoHeight;
    c.getContext('2d').drawImage(video, 0, 0);
    const blob = await new Promise((res) => c.toBlob(res, 'image/jpeg', 0.92));
    if (!blob) throw new Error(t('identity.noVideo'));
    const thumb = document.createElement('canvas');
    thumb.width = 320;
    thumb.height = Math.round(320 * c.height / c.width);
    thumb.getContext('2d').drawImage(c, 0, 0, thumb.width, thumb.height);
    return { blob, width: c.width, height: c.height, url: thumb.toDataURL('image/jpeg', 0.8) };
  } finally {
    video.srcObject = null;
  }
}

/**
 * largestWidth waits (up to limit ms) until a received video's width has
 * stopped growing for a second — the server switches it up to the highest
 * simulcast layer once the cap is lifted — and returns it.
 */
function largestWidth(video, limit, first = false) {
  return new Promise((resolve) => {
    let best = 0;
    let since = Date.now();
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(guard);
      resolve(Math.max(best, video.videoWidth));
    };
    // Frames may stop altogether: the limit ends the wait regardless.
    const guard = setTimeout(finish, limit);
    const frame = () => {
      if (done) return;
      const w = video.videoWidth;
      if (w > best) {
        best = w;
        since = Date.now();
      }
      if (best && (first || Date.now() - since > 1000)) finish();
      else video.requestVideoFrameCallback(frame);
    };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(frame);
  });
}
