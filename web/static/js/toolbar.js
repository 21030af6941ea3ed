// The toolbar: microphone, camera, screen, raised hand, the side panels
// (on narrow screens) and Leave. Keyboard shortcuts: M for the
// microphone, V for the camera, H for the hand — plain keys, taken only
// when focus is not in a text field, and announced to screen readers
// with aria-keyshortcuts.
import { t } from './i18n.js';
import { h } from './dom.js';
import { enforcedMute, viewOf } from './store.js';

const SHORTCUTS = { m: 'mic', v: 'camera', h: 'hand' };

export class Toolbar {
  constructor({ room, panels }) {
    this.room = room;
    this.el = h('footer', { class: 'toolbar', role: 'toolbar', 'aria-label': t('room.controls') });
    const publish = room.can('publish');
    if (publish) {
      this.micBtn = h('button', { type: 'button', class: 'tool', id: 'mic-button', 'aria-pressed': 'false', 'aria-keyshortcuts': 'M', onclick: () => room.toggleMic() });
      this.camBtn = h('button', { type: 'button', class: 'tool', id: 'camera-button', 'aria-pressed': 'false', 'aria-keyshortcuts': 'V', onclick: () => room.toggleCamera() });
      this.el.append(this.micBtn, this.camBtn);
      if (navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia) {
        this.shareBtn = h('button', { type: 'button', class: 'tool', id: 'share-button', 'aria-pressed': 'false', onclick: () => room.toggleShare() });
        this.el.append(this.shareBtn);
      }
      this.handBtn = h('button', { type: 'button', class: 'tool', id: 'hand-button', 'aria-pressed': 'false', 'aria-keyshortcuts': 'H', onclick: () => room.toggleHand() });
      this.el.append(this.handBtn);
    }
    // Narrow screens show one thing at a time: these open the side panel.
    const panelBtns = h('div', { class: 'panel-buttons' });
    for (const [key, label] of panels) {
      panelBtns.append(h('button', { type: 'button', class: 'tool tool-panel', dataset: { panel: key }, 'aria-pressed': 'false', 'aria-controls': 'side-panel',
        onclick: () => room.togglePanel(key) }, label, h('span', { class: 'tab-badge', hidden: true }, h('span', { class: 'sr-only' }, t('panel.news')))));
    }
    this.el.append(panelBtns);
    this.leaveBtn = h('button', { type: 'button', class: 'tool tool-leave', id: 'leave-button', onclick: () => room.leave() }, t('room.leave'));
    this.el.append(this.leaveBtn);
    this.onKey = (e) => this.key(e);
    if (publish) document.addEventListener('keydown', this.onKey);
  }

  stop() { document.removeEventListener('keydown', this.onKey); }

  key(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const what = SHORTCUTS[e.key.toLowerCase()];
    if (!what) return;
    const el = e.target;
    if (el && (el.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName))) return;
    if (document.querySelector('dialog[open]')) return;
    if (viewOf(this.room.state) === 'waiting') return;
    e.preventDefault();
    if (what === 'mic' && !this.micBtn.disabled) this.room.toggleMic();
    if (what === 'camera' && !this.camBtn.disabled) this.room.toggleCamera();
    if (what === 'hand') this.room.toggleHand();
  }

  panelButton(key) { return this.el.querySelector(`[data-panel="${key}"]`); }

  badge(key) {
    const b = this.panelButton(key);
    if (b) b.querySelector('.tab-badge').hidden = false;
  }

  panelsChanged(current, open) {
    for (const b of this.el.querySelectorAll('[data-panel]')) {
      const on = b.dataset.panel === current && open;
      b.setAttribute('aria-pressed', String(on));
      if (on) b.querySelector('.tab-badge').hidden = true;
    }
  }

  /** update follows the state and this browser's media. */
  update(state, { media, sharing }) {
    const forced = enforcedMute(state.you);
    if (this.micBtn) {
      const hasMic = !!(media && media.audio);
      const muted = !hasMic || !media.audio.enabled || forced.audio;
      this.micBtn.setAttribute('aria-pressed', String(muted));
      this.micBtn.textContent = !hasMic ? t('device.retryMic') : muted ? t('room.unmute') : t('room.mute');
      this.micBtn.classList.toggle('off', muted);
      this.micBtn.disabled = forced.audio;
      this.micBtn.title = forced.audio ? t('room.mutedByPresiding') : t('room.shortcut', { key: 'M' });
      this.micBtn.dataset.forced = String(forced.audio);
    }
    if (this.camBtn) {
      const off = !media || !media.video;
      this.camBtn.setAttribute('aria-pressed', String(off));
      this.camBtn.textContent = off ? t('room.cameraOn') : t('room.cameraOff');
      this.camBtn.classList.toggle('off', off);
      this.camBtn.disabled = forced.video;
      this.camBtn.title = forced.video ? t('room.videoStoppedByPresiding') : t('room.shortcut', { key: 'V' });
    }
    if (this.shareBtn) {
      this.shareBtn.setAttribute('aria-pressed', String(sharing));
      this.shareBtn.textContent = sharing ? t('room.stopShare') : t('room.share');
      this.shareBtn.disabled = forced.video;
    }
    if (this.handBtn) {
      const up = !!this.room.handUp;
      this.handBtn.setAttribute('aria-pressed', String(up));
      this.handBtn.textContent = up ? t('hand.lower') : t('hand.raise');
      this.handBtn.title = t('room.shortcut', { key: 'H' });
      this.handBtn.hidden = viewOf(state) === 'waiting';
    }
  }
}
