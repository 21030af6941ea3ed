// Tiles: one for everyone in the room, camera or not (an initials avatar
// stands in for a video that is not there), and one per shared screen.
// Each tile names its person and role, shows a microphone that is off
// (turned off by the person, or muted by the presiding role) and a raised
// hand. Tiles are rendered from the store's state and the tracks the
// subscribe connection receives; nothing here talks to the server.
import { t, roleLabel } from './i18n.js';
import { h, replace } from './dom.js';
import { peopleHere, enforcedMute, nameOf } from './store.js';
import { initials } from './names.js';

const STALL_MS = 3000;

export class Tiles {
  constructor() {
    this.tiles = new Map(); // key (participant:source) → tile element
    this.timer = setInterval(() => this.checkStalls(), 1000);
    // A page in the background presents no frames: coming back starts
    // the stall clock afresh instead of calling every video paused.
    this.onVisible = () => { if (!document.hidden) for (const tile of this.tiles.values()) tile.lastFrameAt = Date.now(); };
    document.addEventListener('visibilitychange', this.onVisible);
  }

  stop() {
    clearInterval(this.timer);
    document.removeEventListener('visibilitychange', this.onVisible);
  }

  get(key) { return this.tiles.get(key); }

  values() { return this.tiles.values(); }

  /**
   * sync makes the tiles match the state: a camera tile for everyone in
   * the space, a screen tile for each screen received or shared here.
   * videos: key → {track, id} received (id: the server's track id);
   * local: {camera, screen} tracks of this browser.
   */
  sync(state, videos, local) {
    this.state = state;
    const want = new Set();
    for (const p of peopleHere(state)) {
      const key = p.id + ':camera';
      want.add(key);
      const self = p.id === state.you.id;
      const rx = videos.get(key);
      this.place(key, p.id, 'camera', self, self ? local.camera : rx && rx.track, rx && rx.id);
    }
    for (const [key, rx] of videos) {
      if (!key.endsWith(':screen')) continue;
      want.add(key);
      this.place(key, key.split(':')[0], 'screen', false, rx.track, rx.id);
    }
    if (local.screen) {
      const key = state.you.id + ':screen';
      want.add(key);
      this.place(key, state.you.id, 'screen', true, local.screen, '');
    }
    for (const [key, tile] of this.tiles) {
      if (!want.has(key)) {
        tile.video.srcObject = null;
        tile.remove();
        this.tiles.delete(key);
      }
    }
    for (const tile of this.tiles.values()) this.label(tile, state);
  }

  place(key, pid, source, self, track, trackId) {
    let tile = this.tiles.get(key);
    if (!tile) {
      tile = this.make(pid, source, self);
      this.tiles.set(key, tile);
    }
    const cur = tile.video.srcObject && tile.video.srcObject.getVideoTracks()[0];
    if (cur !== (track || undefined)) {
      tile.video.srcObject = track ? new MediaStream([track]) : null;
      tile.lastFrameAt = Date.now();
      if (track) {
        tile.video.play().catch(() => {});
        this.watchFrames(tile);
      }
    }
    if (track && trackId) tile.dataset.track = trackId;
    else delete tile.dataset.track;
    tile.classList.toggle('has-video', !!track);
    return tile;
  }

  make(pid, source, self) {
    const video = h('video', { autoplay: true, playsinline: true, muted: true, class: self && source === 'camera' ? 'mirror' : 'remote' });
    video.muted = true;
    const avatar = h('div', { class: 'avatar', 'aria-hidden': 'true' });
    const status = h('div', { class: 'tile-status', hidden: true });
    const label = h('figcaption', { class: 'tile-label' });
    const tile = h('figure', { class: 'tile' + (self ? ' self' : '') + (source === 'screen' ? ' screen' : ''), dataset: { participant: pid, source, testid: 'tile' } },
      video, avatar, status, label);
    tile.video = video;
    tile.avatar = avatar;
    tile.status = status;
    tile.labelEl = label;
    tile.lastFrameAt = Date.now();
    return tile;
  }

  /**
   * watchFrames follows the frames a video presents with
   * requestVideoFrameCallback: both engines call it for WebRTC video,
   * while Firefox leaves getVideoPlaybackQuality's counters at 0.
   */
  watchFrames(tile) {
    const v = tile.video;
    if (!v.requestVideoFrameCallback || v.__watching) return;
    v.__watching = true;
    const frame = () => {
      tile.lastFrameAt = Date.now();
      tile.frames = (tile.frames || 0) + 1;
      if (v.srcObject) v.requestVideoFrameCallback(frame);
      else v.__watching = false;
    };
    v.requestVideoFrameCallback(frame);
  }

  label(tile, state) {
    const pid = tile.dataset.participant;
    const self = pid === state.you.id;
    const p = nameOf(state, pid) || { name: t('room.someone'), role: '' };
    const src = tile.dataset.source;
    const name = self ? t('room.you', { name: p.name }) : p.name;
    const text = src === 'screen' ? t('room.screenOf', { name }) : name;
    const part = self ? state.you : state.participants.get(pid);
    const forced = part ? enforcedMute(part).audio : false;
    const st = state.statuses.get(pid) || {};
    const micOff = src === 'camera' && (forced || !!st.mic_off);
    const hand = src === 'camera' && !!st.hand;
    const speaking = pid === state.speaker && src === 'camera';
    tile.classList.toggle('speaking', speaking);
    tile.classList.toggle('hand-up', hand);
    replace(tile.avatar, h('span', null, initials(p.name)));
    const key = [text, p.role, micOff, forced, hand].join('|');
    if (tile.labelKey !== key) {
      tile.labelKey = key;
      replace(tile.labelEl,
        hand && h('span', { class: 'tile-hand', title: t('hand.raised') }, '✋', h('span', { class: 'sr-only' }, t('hand.raised'))),
        h('span', { class: 'tile-name' }, text),
        src === 'camera' && p.role && h('span', { class: 'tile-role' }, roleLabel(p.role)),
        micOff && h('span', { class: 'tile-muted' + (forced ? ' forced' : ''), title: forced ? t('room.mutedByPresiding') : t('room.micIsOff') },
          h('span', { class: 'mic-off-icon', 'aria-hidden': 'true' }), forced ? t('room.muted') : t('room.micOffShort')));
    }
    const aria = text + (p.role ? ', ' + roleLabel(p.role) : '') + (micOff ? ', ' + t('room.micIsOff') : '') + (hand ? ', ' + t('hand.raised') : '') + (speaking ? ', ' + t('room.speaking') : '');
    if (tile.getAttribute('aria-label') !== aria) tile.setAttribute('aria-label', aria);
    this.showVideo(tile, state);
  }

  /** showVideo shows the video, or the avatar and why there is none. */
  showVideo(tile, state) {
    const pid = tile.dataset.participant;
    const hasTrack = !!(tile.video.srcObject && tile.video.srcObject.getVideoTracks()[0]);
    const stalled = hasTrack && !tile.classList.contains('self') && this.stalled(tile);
    const part = pid === state.you.id ? state.you : state.participants.get(pid);
    const forced = part ? enforcedMute(part).video : false;
    const off = !hasTrack || stalled;
    tile.classList.toggle('no-video', off);
    let why = '';
    if (off && tile.dataset.source === 'camera') {
      if (forced) why = t('room.videoStoppedByPresiding');
      else if (stalled) why = t('room.videoPaused');
      else if (pid === state.you.id) why = t('room.cameraIsOff');
    }
    tile.status.hidden = !why;
    tile.status.textContent = why;
    tile.dataset.stalled = stalled ? 'true' : 'false';
  }

  /**
   * stalled reports whether a remote video has shown no new frame for
   * STALL_MS. Frames are counted by requestVideoFrameCallback (the one
   * counter Firefox keeps for WebRTC video) and, where the browser keeps
   * it, getVideoPlaybackQuality (Chromium counts there in background tabs
   * too, where no frame is presented).
   */
  stalled(tile) {
    const q = tile.video.getVideoPlaybackQuality ? tile.video.getVideoPlaybackQuality() : null;
    const n = q ? q.totalVideoFrames : 0;
    if (n && n !== tile.decoded) {
      tile.decoded = n;
      tile.lastFrameAt = Date.now();
    }
    if (document.hidden) return tile.classList.contains('no-video') && tile.dataset.stalled === 'true';
    return Date.now() - tile.lastFrameAt > STALL_MS;
  }

  /** checkStalls marks remote videos whose frames stopped (camera off, paused, or a bad link). */
  checkStalls() {
    if (!this.state) return;
    for (const tile of this.tiles.values()) this.showVideo(tile, this.state);
  }
}
