// The room: video grid, stage, toolbar, side panels, and the waiting room.
// Room owns the state (who is here, where, muted or not, what is
// presented, whether recording runs) and re-renders from it; panels listen
// to its events. The server enforces every rule; the controls shown here
// only follow the permissions it lists.
import { t, roleLabel } from './i18n.js';
import { h, replace, announce, toast, confirmDialog } from './dom.js';
import { ApiError, errorText } from './api.js';
import { getMedia } from './media.js';
import { RoomConnection } from './signal.js';
import { createPeoplePanel } from './people.js';
import { createChatPanel } from './chat.js';
import { createDocumentsPanel } from './documents.js';
import { createActPanel } from './act.js';
import { Viewer } from './viewer.js';

const STALL_MS = 3000;

export class Room extends EventTarget {
  constructor({ app, api, token, me, session, media, onEnd, videoId }) {
    super();
    this.app = app;
    this.api = api;
    this.token = token;
    this.you = me.participant;
    this.perms = new Set(me.permissions);
    this.session = session;
    this.media = media;
    this.videoId = videoId;
    this.onEnd = onEnd;
    this.participants = new Map();
    this.peers = new Map(); // participant id → {name, role} from the signalling layer
    this.consultations = new Map();
    this.tiles = new Map(); // key (participant:source) → tile
    this.audioEls = new Map(); // track id → <audio>
    this.recording = { recording: false };
    this.presenting = null;
    this.speaker = '';
    this.quality = new Map(); // track id → sent quality key
    this.serverMuted = { audio: false, video: false };
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  can(action) { return this.perms.has(action); }

  get sid() { return this.session.id; }

  /** nameOf returns a participant's name and role, from whatever source knows it. */
  nameOf(id) {
    const p = this.participants.get(id) || this.peers.get(id);
    if (p) return p;
    if (id === this.you.id) return this.you;
    return { name: t('room.someone'), role: '' };
  }

  start() {
    this.render();
    const conn = new RoomConnection({ sessionId: this.sid, token: this.token, media: this.media });
    this.conn = conn;
    if (this.media && this.media.startMuted) this.setMicMuted(true);
    conn.addEventListener('state', (e) => this.onState(e.detail));
    conn.addEventListener('joined', (e) => this.onJoined(e.detail));
    conn.addEventListener('message', (e) => this.onMessage(e.detail));
    conn.addEventListener('tracks', (e) => this.onTracks(e.detail.tracks));
    conn.addEventListener('closed', (e) => this.onClosed(e.detail));
    conn.start();
    this.statsTimer = setInterval(() => this.pollStats(), 2000);
    window.addEventListener('beforeunload', () => conn.leave());
  }

  // ——— rendering ———

  render() {
    document.title = this.session.title + ' — ' + t('app.name');
    this.recBadge = h('div', { class: 'rec-badge', role: 'status', hidden: true, id: 'recording-indicator' },
      h('span', { class: 'rec-dot', 'aria-hidden': 'true' }), t('room.recording'));
    this.qualityEl = h('div', { class: 'quality', id: 'connection-quality', role: 'img', 'aria-label': t('quality.unknown'), title: t('quality.unknown') },
      h('span', { class: 'bar b1' }), h('span', { class: 'bar b2' }), h('span', { class: 'bar b3' }));
    this.banner = h('div', { class: 'banner', role: 'alert', hidden: true, id: 'connection-banner' });
    this.spaceBanner = h('div', { class: 'banner banner-info', role: 'status', hidden: true });
    this.grid = h('div', { class: 'grid', id: 'video-grid', 'aria-label': t('room.videos'), role: 'region' });
    this.featured = h('div', { class: 'featured', hidden: true, role: 'region', 'aria-label': t('room.stage') });
    this.viewer = new Viewer({ api: this.api, interactive: false });
    this.presentBar = h('div', { class: 'present-bar' });
    this.featured.append(this.presentBar);
    this.audioBox = h('div', { class: 'sr-only', 'aria-hidden': 'true' });
    this.stage = h('main', { class: 'stage', id: 'main', tabindex: '-1' }, this.featured, this.grid, this.audioBox);

    this.waiting = h('section', { class: 'waiting card', hidden: true, id: 'waiting-room', 'aria-labelledby': 'waiting-heading' },
      h('div', { class: 'spinner', 'aria-hidden': 'true' }),
      h('h1', { id: 'waiting-heading', tabindex: '-1' }, t('waiting.title')),
      h('p', null, t('waiting.text')),
      h('p', { class: 'muted' }, t('waiting.hint')));

    const panels = [];
    if (this.can('see_participants')) panels.push(['people', t('panel.people'), createPeoplePanel(this)]);
    panels.push(['chat', t('panel.chat'), createChatPanel(this)]);
    if (this.can('see_documents')) panels.push(['documents', t('panel.documents'), createDocumentsPanel(this)]);
    if (this.session.kind === 'notarisation' && (this.can('identity_check') || this.can('seal') || this.you.role === 'principal')) {
      panels.push(['act', t('panel.act'), createActPanel(this)]);
    }
    this.panels = panels;
    const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': t('panel.label') });
    const side = h('aside', { class: 'side', id: 'side-panel', 'aria-label': t('panel.label') }, tablist);
    this.tabButtons = new Map();
    for (const [key, label, panel] of panels) {
      const tab = h('button', { type: 'button', role: 'tab', id: 'tab-' + key, 'aria-controls': 'panel-' + key, 'aria-selected': 'false', tabindex: '-1' }, label,
        h('span', { class: 'tab-badge', hidden: true }));
      tab.addEventListener('click', () => this.showPanel(key));
      tab.addEventListener('keydown', (e) => this.tabKey(e, key));
      tablist.append(tab);
      panel.el.id = 'panel-' + key;
      panel.el.setAttribute('role', 'tabpanel');
      panel.el.setAttribute('aria-labelledby', 'tab-' + key);
      panel.el.hidden = true;
      side.append(panel.el);
      this.tabButtons.set(key, tab);
    }
    this.side = side;

    this.toolbar = this.renderToolbar();
    const who = h('div', { class: 'who' }, h('span', { class: 'who-name' }, this.you.name), ' · ', h('span', { class: 'who-role' }, roleLabel(this.you.role)));
    this.header = h('header', { class: 'room-header' },
      h('div', { class: 'room-title' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }),
        h('div', null, h('h1', { class: 'title' }, this.session.title),
          h('div', { class: 'subtitle' }, [this.session.case_number, t('kind.' + this.session.kind)].filter(Boolean).join(' · ')))),
      h('div', { class: 'room-status' }, this.recBadge, this.qualityEl, who));
    this.body = h('div', { class: 'room-body' }, this.stage, side);
    this.root = h('div', { class: 'room', dataset: { view: 'connecting' } }, this.header, this.banner, this.spaceBanner, this.waiting, this.body, this.toolbar);
    replace(this.app, this.root);
    if (panels.length) this.showPanel(panels[0][0], false);
    this.selfTile();
    this.layout();
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
    if (open) this.root.classList.add('side-open');
    for (const b of this.toolbar.querySelectorAll('[data-panel]')) b.setAttribute('aria-pressed', String(b.dataset.panel === key && this.root.classList.contains('side-open')));
  }

  /** badge marks a panel that has news while another is shown. */
  badge(key) {
    if (this.current === key && getComputedStyle(this.side).display !== 'none') return;
    const tab = this.tabButtons.get(key);
    if (tab) tab.querySelector('.tab-badge').hidden = false;
  }

  renderToolbar() {
    const bar = h('footer', { class: 'toolbar', role: 'toolbar', 'aria-label': t('room.controls') });
    if (this.can('publish')) {
      this.micBtn = h('button', { type: 'button', class: 'tool', id: 'mic-button', 'aria-pressed': 'false', onclick: () => this.toggleMic() });
      this.camBtn = h('button', { type: 'button', class: 'tool', id: 'camera-button', 'aria-pressed': 'false', onclick: () => this.toggleCamera() });
      bar.append(this.micBtn, this.camBtn);
      if (navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia) {
        this.shareBtn = h('button', { type: 'button', class: 'tool', id: 'share-button', 'aria-pressed': 'false', onclick: () => this.toggleShare() });
        bar.append(this.shareBtn);
      }
    }
    // Narrow screens show one thing at a time: these open the side panel.
    const panelBtns = h('div', { class: 'panel-buttons' });
    for (const [key, label] of this.panels) {
      panelBtns.append(h('button', { type: 'button', class: 'tool tool-panel', dataset: { panel: key }, 'aria-pressed': 'false', 'aria-controls': 'side-panel',
        onclick: () => this.togglePanel(key) }, label));
    }
    bar.append(panelBtns);
    this.leaveBtn = h('button', { type: 'button', class: 'tool tool-leave', id: 'leave-button', onclick: () => this.leave() }, t('room.leave'));
    bar.append(this.leaveBtn);
    this.updateToolbar(bar);
    return bar;
  }

  togglePanel(key) {
    if (this.current === key && this.root.classList.contains('side-open')) {
      this.root.classList.remove('side-open');
      for (const b of this.toolbar.querySelectorAll('[data-panel]')) b.setAttribute('aria-pressed', 'false');
      return;
    }
    this.showPanel(key);
  }

  updateToolbar() {
    if (this.micBtn) {
      const muted = !this.media || !this.media.audio || !this.media.audio.enabled || this.serverMuted.audio;
      this.micBtn.setAttribute('aria-pressed', String(muted));
      this.micBtn.textContent = muted ? t('room.unmute') : t('room.mute');
      this.micBtn.classList.toggle('off', muted);
      this.micBtn.disabled = this.serverMuted.audio || !this.media || !this.media.stream.getAudioTracks().length;
      this.micBtn.title = this.serverMuted.audio ? t('room.mutedByPresiding') : '';
    }
    if (this.camBtn) {
      const off = !this.media || !this.media.video;
      this.camBtn.setAttribute('aria-pressed', String(off));
      this.camBtn.textContent = off ? t('room.cameraOn') : t('room.cameraOff');
      this.camBtn.classList.toggle('off', off);
      this.camBtn.disabled = this.serverMuted.video;
      this.camBtn.title = this.serverMuted.video ? t('room.videoStoppedByPresiding') : '';
    }
    if (this.shareBtn) {
      const sharing = !!(this.conn && this.conn.screen);
      this.shareBtn.setAttribute('aria-pressed', String(sharing));
      this.shareBtn.textContent = sharing ? t('room.stopShare') : t('room.share');
      this.shareBtn.disabled = this.serverMuted.video;
    }
  }

  // ——— tiles and layout ———

  makeTile(key, pid, source, isSelf) {
    const video = h('video', { autoplay: true, playsinline: true, muted: true, class: isSelf ? 'mirror' : 'remote' });
    video.muted = true;
    const label = h('div', { class: 'tile-label' });
    const status = h('div', { class: 'tile-status', hidden: true });
    const tile = h('figure', { class: 'tile' + (isSelf ? ' self' : '') + (source === 'screen' ? ' screen' : ''), dataset: { participant: pid, source } }, video, status, label);
    tile.video = video;
    tile.label = label;
    tile.status = status;
    tile.frames = 0;
    tile.lastFrameAt = Date.now();
    this.tiles.set(key, tile);
    this.labelTile(tile);
    return tile;
  }

  labelTile(tile) {
    const pid = tile.dataset.participant;
    const isSelf = pid === this.you.id;
    const p = isSelf ? this.you : this.nameOf(pid);
    const src = tile.dataset.source;
    const name = isSelf ? t('room.you', { name: p.name }) : p.name;
    const text = src === 'screen' ? t('room.screenOf', { name }) : name;
    const part = this.participants.get(pid);
    const muted = part && part.audio_muted;
    replace(tile.label, h('span', { class: 'tile-name' }, text), p.role && h('span', { class: 'tile-role' }, roleLabel(p.role)),
      muted && h('span', { class: 'tile-muted', title: t('room.mutedByPresiding') }, t('room.muted')));
    tile.setAttribute('aria-label', text + (p.role ? ', ' + roleLabel(p.role) : '') + (pid === this.speaker ? ', ' + t('room.speaking') : ''));
  }

  selfTile() {
    if (!this.can('publish')) return;
    const key = this.you.id + ':camera';
    let tile = this.tiles.get(key);
    if (!tile) tile = this.makeTile(key, this.you.id, 'camera', true);
    const v = this.media && this.media.video;
    tile.video.srcObject = v ? new MediaStream([v]) : null;
    tile.status.hidden = !!v;
    tile.status.textContent = v ? '' : t('room.cameraIsOff');
    tile.classList.toggle('no-video', !v);
  }

  onTracks(tracks) {
    const want = new Set();
    for (const { line, track } of tracks) {
      if (line.kind === 'audio' || track.kind === 'audio') {
        want.add('audio:' + line.track_id);
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
      const key = line.participant_id + ':' + line.source;
      want.add(key);
      let tile = this.tiles.get(key);
      if (!tile) tile = this.makeTile(key, line.participant_id, line.source, false);
      tile.dataset.track = line.track_id;
      if (!tile.video.srcObject || tile.video.srcObject.getTracks()[0] !== track) {
        tile.video.srcObject = new MediaStream([track]);
        tile.video.play().catch(() => {});
      }
    }
    for (const [id, el] of this.audioEls) {
      if (!want.has('audio:' + id)) {
        el.srcObject = null;
        el.remove();
        this.audioEls.delete(id);
      }
    }
    for (const [key, tile] of this.tiles) {
      if (tile.dataset.participant === this.you.id) continue;
      if (!want.has(key)) {
        tile.remove();
        this.tiles.delete(key);
      }
    }
    this.layout();
  }

  needSoundUnlock() {
    if (this.soundBtn) return;
    this.soundBtn = h('button', { type: 'button', class: 'btn btn-primary sound-unlock', onclick: () => {
      for (const el of this.audioEls.values()) el.play().catch(() => {});
      this.soundBtn.remove();
      this.soundBtn = null;
    } }, t('room.enableSound'));
    this.stage.append(this.soundBtn);
  }

  /** layout puts tiles in the grid, or a shared screen or presented document on the stage. */
  layout() {
    const tiles = [...this.tiles.values()];
    const screens = tiles.filter((x) => x.dataset.source === 'screen');
    const feature = this.presenting ? 'document' : screens.length ? 'screen' : '';
    this.featured.hidden = !feature;
    this.stage.dataset.layout = feature ? 'featured' : 'grid';
    const inFeature = new Set();
    if (feature === 'document') {
      if (!this.featured.contains(this.viewer.el)) this.featured.insertBefore(this.viewer.el, this.presentBar);
      for (const s of screens) s.remove();
    } else {
      this.viewer.el.remove();
      if (feature === 'screen') {
        const s = screens[screens.length - 1];
        inFeature.add(s);
        if (s.parentNode !== this.featured) this.featured.insertBefore(s, this.presentBar);
      }
    }
    const gridTiles = tiles.filter((x) => !inFeature.has(x) && !(feature === 'document' && x.dataset.source === 'screen'));
    // Self view last; the presiding role first; then by name.
    gridTiles.sort((a, b) => this.tileOrder(a) - this.tileOrder(b) || this.nameOf(a.dataset.participant).name.localeCompare(this.nameOf(b.dataset.participant).name));
    for (const tile of gridTiles) if (tile.parentNode !== this.grid || tile !== this.grid.children[gridTiles.indexOf(tile)]) this.grid.append(tile);
    const n = Math.max(1, gridTiles.length);
    const cols = feature ? n : n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : 4;
    this.grid.style.setProperty('--cols', String(cols));
    this.grid.style.setProperty('--rows', String(feature ? 1 : Math.ceil(n / cols)));
    this.grid.dataset.count = String(n);
    if (!gridTiles.length && !feature) {
      if (!this.emptyNote) this.emptyNote = h('p', { class: 'empty-stage' }, t('room.nobodyYet'));
      this.grid.append(this.emptyNote);
    } else if (this.emptyNote) {
      this.emptyNote.remove();
    }
    this.applyQuality(feature, n);
  }

  tileOrder(tile) {
    const pid = tile.dataset.participant;
    if (pid === this.you.id) return 3;
    const role = this.nameOf(pid).role;
    return role === 'judge' || role === 'notary' ? 0 : 1;
  }

  /** applyQuality caps the simulcast layer by how large each video is drawn. */
  applyQuality(feature, n) {
    if (!this.conn) return;
    for (const tile of this.tiles.values()) {
      const id = tile.dataset.track;
      if (!id) continue;
      // No cap on the stage or in a small grid; beside a featured item the
      // lowest layer; in a grid of more than four the middle one.
      const max = tile.parentNode === this.featured ? null : feature ? 0 : n > 4 ? 1 : null;
      const key = String(max);
      if (this.quality.get(id) === key) continue;
      this.quality.set(id, key);
      this.conn.setQuality(id, { maxLayer: max });
    }
  }

  setSpeaker(pid) {
    if (pid === this.speaker) return;
    this.speaker = pid;
    for (const tile of this.tiles.values()) {
      const on = tile.dataset.participant === pid && tile.dataset.source === 'camera';
      tile.classList.toggle('speaking', on);
      this.labelTile(tile);
    }
  }

  // ——— connection events ———

  onState({ state, attempt }) {
    if (state === 'reconnecting') {
      this.banner.hidden = false;
      this.banner.textContent = t('room.reconnecting', { attempt });
      this.root.dataset.connection = 'reconnecting';
      this.setQualityLevel(0);
    } else if (state === 'connected') {
      if (!this.banner.hidden) announce(t('room.reconnected'));
      this.banner.hidden = true;
      this.root.dataset.connection = 'connected';
    }
  }

  onJoined({ joined, welcome, rejoin }) {
    for (const p of joined.peers || []) this.peers.set(p.participant.id, p.participant);
    if (welcome) {
      Object.assign(this.session, welcome.session, { act: welcome.act });
      if (welcome.you) this.you = welcome.you;
      if (welcome.permissions) this.perms = new Set(welcome.permissions);
      if (welcome.participants) {
        this.participants.clear();
        for (const p of welcome.participants) this.participants.set(p.id, p);
      }
      this.setRecording(welcome.recording);
      // Someone who joins mid-presentation sees the page being shown.
      if (welcome.presenting && welcome.presenting.document_id && this.you.space === 'main') this.onPresent(welcome.presenting);
    }
    this.applyYou(true);
    // A new connection has new down-tracks: state every preference again.
    this.quality.clear();
    if (rejoin) announce(t('room.reconnected'));
    this.emit('participants');
    this.emit('session');
    for (const tile of this.tiles.values()) this.labelTile(tile);
  }

  /** applyYou shows the waiting room or the room for the participant's space. */
  applyYou(initial) {
    const space = this.you.space || 'main';
    const view = space === 'waiting' ? 'waiting' : 'room';
    const before = this.root.dataset.view;
    this.root.dataset.view = view;
    this.waiting.hidden = view !== 'waiting';
    this.body.hidden = view === 'waiting';
    if (view === 'waiting' && before !== 'waiting') {
      document.title = t('waiting.title') + ' — ' + t('app.name');
      this.waiting.querySelector('h1').focus();
      announce(t('waiting.title'));
    } else if (view === 'room' && before !== 'room') {
      document.title = this.session.title + ' — ' + t('app.name');
      if (!initial || before === 'waiting') announce(t('room.admitted'));
      this.stage.focus({ preventScroll: true });
    }
    const consult = space !== 'main' && space !== 'waiting';
    this.spaceBanner.hidden = !consult;
    this.spaceBanner.textContent = consult ? t('room.inConsultation') : '';
    const was = this.serverMuted;
    this.serverMuted = { audio: !!this.you.audio_muted, video: !!this.you.video_muted };
    if (this.serverMuted.audio && !was.audio) toast(t('room.youWereMuted'));
    if (this.serverMuted.video && !was.video) toast(t('room.yourVideoStopped'));
    if (!this.serverMuted.audio && was.audio) toast(t('room.youMayUnmute'));
    this.updateToolbar();
  }

  onMessage({ type, data }) {
    switch (type) {
      case 'participant_added':
      case 'participant_updated': {
        this.participants.set(data.id, Object.assign(this.participants.get(data.id) || {}, data));
        if (data.id === this.you.id) {
          this.you = Object.assign({}, this.you, data);
          this.applyYou(false);
        }
        for (const tile of this.tiles.values()) if (tile.dataset.participant === data.id) this.labelTile(tile);
        if (type === 'participant_updated' && data.space === 'waiting' && data.connected && this.can('admit') && data.id !== this.you.id) {
          this.badge('people');
          toast(t('people.isWaiting', { name: data.name }));
        }
        this.emit('participants');
        return;
      }
      case 'participants':
        // Whom this participant may know of now that their space changed
        // (admitted, moved): the whole list, replacing the one they had.
        this.participants.clear();
        for (const p of data.participants || []) this.participants.set(p.id, p);
        for (const tile of this.tiles.values()) this.labelTile(tile);
        this.emit('participants');
        return;
      case 'participant_removed':
        this.participants.delete(data.participant_id);
        if (data.participant_id === this.you.id) return this.end('removed');
        this.emit('participants');
        return;
      case 'session_updated':
        this.session = Object.assign(this.session, data);
        this.emit('session');
        return;
      case 'session_closed':
        this.session = Object.assign(this.session, data);
        return this.end('closed');
      case 'consultation_opened':
        this.consultations.set(data.id, data);
        this.emit('participants');
        return;
      case 'consultation_closed':
        this.consultations.delete(data.consultation_id);
        this.emit('participants');
        return;
      case 'peer_joined':
        this.peers.set(data.participant.id, data.participant);
        this.emit('participants');
        return;
      case 'peer_left':
        return;
      case 'chat':
        this.emit('chat', data);
        this.badge('chat');
        return;
      case 'present':
        return this.onPresent(data);
      case 'recording':
        return this.setRecording(data);
      case 'active_speaker':
        return this.setSpeaker(data.participant_id);
      case 'identity_check':
        this.emit('identity_check', data);
        this.badge('act');
        return;
      case 'act_updated':
        this.session.act = data;
        this.emit('act_updated', data);
        this.badge('act');
        return;
      case 'error':
        if (data.code === 'rate_limited') return;
        toast(data.message || data.code, 'error');
        return;
      default:
        this.emit(type, data);
    }
  }

  setRecording(rec) {
    const on = !!(rec && rec.recording);
    const was = this.recording.recording;
    this.recording = rec || { recording: false };
    this.recBadge.hidden = !on;
    if (on !== was) announce(on ? t('room.recordingStarted') : t('room.recordingStopped'), true);
    this.emit('recording', this.recording);
  }

  async onPresent(data) {
    if (!data.document_id) {
      this.presenting = null;
      this.layout();
      announce(t('present.stopped'));
      this.emit('present', null);
      return;
    }
    const first = !this.presenting || this.presenting.document_id !== data.document_id;
    this.presenting = data;
    this.layout();
    replace(this.presentBar,
      h('span', { class: 'present-by' }, t('present.by', { name: this.nameOf(data.by).name })),
      this.can('present') && [
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.present(data.document_id, data.page - 1), disabled: data.page <= 1 }, t('viewer.prev')),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.present(data.document_id, data.page + 1), disabled: this.viewer.pages && data.page >= this.viewer.pages }, t('viewer.next')),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.stopPresenting() }, t('present.stop')),
      ]);
    try {
      await this.viewer.show(data.document_id, data.page);
    } catch (err) {
      toast(t('viewer.failed', { error: errorText(err) }), 'error');
    }
    if (first) announce(t('present.started', { name: this.nameOf(data.by).name }));
    this.emit('present', data);
    // The page count is known only once the document is open.
    const next = this.presentBar.querySelectorAll('button')[1];
    if (next && this.viewer.pages) next.disabled = data.page >= this.viewer.pages;
  }

  /** present shows a document page to everyone in the main room. */
  present(documentId, page) {
    if (page < 1) return;
    if (this.viewer.pages && this.presenting && this.presenting.document_id === documentId && page > this.viewer.pages) return;
    this.conn.send('present', { document_id: documentId, page });
  }

  stopPresenting() { this.conn.send('present', { document_id: null, page: 0 }); }

  async onClosed({ reason, code }) {
    if (code === 'left' || reason === 'left') return;
    if (code === 'session_closed') return this.end('closed');
    if (code === 'removed' || code === 'token_revoked') return this.end('removed');
    if (['unauthenticated', 'token_expired', 'token_revoked', 'forbidden'].includes(code)) {
      // Ask the API why: it names expiry and revocation.
      try {
        await this.api.get('/me');
        const s = await this.api.get('/sessions/' + this.sid);
        if (s.state === 'closed') return this.end('closed');
      } catch (err) {
        if (err instanceof ApiError && err.code === 'token_revoked') return this.end('removed');
        return this.end('refused', errorText(err));
      }
    }
    this.end('refused', reason);
  }

  end(kind, reason) {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.statsTimer);
    if (this.conn && !this.conn.ended) this.conn.leave();
    if (this.conn) this.conn.stopScreen();
    if (this.media && this.media.stream) for (const tr of this.media.stream.getTracks()) tr.stop();
    this.viewer.close();
    this.onEnd({ kind, reason, rejoin: kind === 'left' });
  }

  leave() { this.end('left'); }

  // ——— local media controls ———

  setMicMuted(muted) {
    if (!this.media || !this.media.audio) return;
    this.media.audio.enabled = !muted;
    this.updateToolbar();
  }

  toggleMic() {
    if (!this.media || !this.media.audio) return;
    const muted = this.media.audio.enabled;
    this.setMicMuted(muted);
    announce(muted ? t('room.micOff') : t('room.micOn'));
  }

  async toggleCamera() {
    if (!this.media) this.media = { stream: new MediaStream(), audio: null, video: null };
    if (this.media.video) {
      const tr = this.media.video;
      await this.conn.replaceTrack('camera', null);
      tr.stop();
      this.media.stream.removeTrack(tr);
      this.media.video = null;
      announce(t('room.cameraIsOff'));
    } else {
      try {
        const s = await getMedia({ audio: false, videoId: this.videoId });
        const tr = s.getVideoTracks()[0];
        this.media.stream.addTrack(tr);
        await this.conn.replaceTrack('camera', tr);
        announce(t('room.cameraIsOn'));
      } catch (err) {
        toast(errorText(err), 'error');
      }
    }
    this.selfTile();
    this.updateToolbar();
    this.layout();
  }

  async toggleShare() {
    if (this.conn.screen) {
      await this.conn.stopScreen();
      this.removeSelfScreen();
      this.updateToolbar();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (err) {
      if (err && err.name !== 'NotAllowedError') toast(errorText(err), 'error');
      return;
    }
    const track = stream.getVideoTracks()[0];
    track.addEventListener('ended', () => {
      if (this.conn.screen && this.conn.screen.stream === stream) {
        this.conn.stopScreen();
        this.removeSelfScreen();
        this.updateToolbar();
      }
    });
    await this.conn.shareScreen(stream);
    const key = this.you.id + ':screen';
    const tile = this.tiles.get(key) || this.makeTile(key, this.you.id, 'screen', false);
    tile.video.srcObject = stream;
    announce(t('room.sharing'));
    this.updateToolbar();
    this.layout();
  }

  removeSelfScreen() {
    const key = this.you.id + ':screen';
    const tile = this.tiles.get(key);
    if (tile) {
      tile.remove();
      this.tiles.delete(key);
    }
    this.layout();
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
    await this.moderate('/close', undefined);
  }

  async setRecordingOn(on) {
    try {
      const rec = await this.api.post('/sessions/' + this.sid + '/recording', { action: on ? 'start' : 'stop' });
      this.setRecording(rec);
    } catch (err) {
      toast(err instanceof ApiError && err.status === 404 ? t('recording.unavailable') : errorText(err), 'error');
    }
  }

  // ——— connection quality ———

  async pollStats() {
    if (!this.conn) return;
    let stats;
    try { stats = await this.conn.stats(); } catch { return; }
    this.checkStalls();
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

  /** checkStalls marks remote videos whose frames stopped (camera off, paused, or a bad link). */
  checkStalls() {
    const now = Date.now();
    for (const tile of this.tiles.values()) {
      if (tile.classList.contains('self') || !tile.video.srcObject) continue;
      const q = tile.video.getVideoPlaybackQuality ? tile.video.getVideoPlaybackQuality() : null;
      const frames = q ? q.totalVideoFrames : 0;
      if (frames !== tile.frames) {
        tile.frames = frames;
        tile.lastFrameAt = now;
      }
      const stalled = now - tile.lastFrameAt > STALL_MS;
      const part = this.participants.get(tile.dataset.participant);
      // Nothing is asked of the server here: it requests keyframes until
      // each subscriber has one, and the browser asks by itself (PLI) when
      // it cannot decode what arrives. A stalled tile says so, that is all.
      tile.classList.toggle('no-video', stalled);
      tile.status.hidden = !stalled;
      tile.status.textContent = stalled ? (part && part.video_muted ? t('room.videoStoppedByPresiding') : t('room.videoPaused')) : '';
    }
  }
}
