// The stage: the grid of tiles, or a presented document or shared screen
// shown large with the tiles in a strip. It names the exhibit being shown
// ("P-1 — Lease agreement, page 3 of 12") and gives the presenter page
// buttons; every viewer zooms on their own. It also caps the simulcast
// layer each video is sent in by how large it is drawn.
import { t } from './i18n.js';
import { h, replace, toast } from './dom.js';
import { errorText } from './api.js';
import { Viewer } from './viewer.js';
import { nameOf } from './store.js';

export class Stage {
  /** actions: {present(docId, page), stopPresenting(), setQuality(trackId, maxLayer)} */
  constructor({ api, actions }) {
    this.actions = actions;
    this.grid = h('div', { class: 'grid', id: 'video-grid', 'aria-label': t('room.videos'), role: 'region' });
    this.featured = h('div', { class: 'featured', hidden: true, role: 'region', 'aria-label': t('room.stage'), dataset: { testid: 'stage' } });
    this.viewer = new Viewer({ api, interactive: false, idPrefix: 'stage-viewer' });
    this.caption = h('h2', { class: 'present-title', id: 'present-title' });
    this.presentBar = h('div', { class: 'present-bar' });
    this.featured.append(this.presentBar);
    this.emptyNote = h('p', { class: 'empty-stage' }, t('room.nobodyYet'));
    this.quality = new Map(); // track id → the cap last asked for
    this.shown = null; // {document_id, page} the viewer shows
  }

  /** forgetQuality makes the next layout restate every cap (a new connection). */
  forgetQuality() { this.quality.clear(); }

  /** layout puts tiles in the grid, or the document or a screen on the stage. */
  layout(state, tiles) {
    const all = [...tiles.values()];
    const screens = all.filter((x) => x.dataset.source === 'screen');
    const feature = state.presenting ? 'document' : screens.length ? 'screen' : '';
    this.featured.hidden = !feature;
    this.grid.parentNode && (this.grid.parentNode.dataset.layout = feature ? 'featured' : 'grid');
    const inFeature = new Set();
    if (feature === 'document') {
      if (!this.featured.contains(this.viewer.el)) this.featured.insertBefore(this.viewer.el, this.presentBar);
      if (!this.featured.contains(this.caption)) this.featured.prepend(this.caption);
    } else {
      this.viewer.el.remove();
      this.caption.remove();
      for (const s of this.featured.querySelectorAll('figure.tile')) if (!screens.includes(s)) s.remove();
      if (feature === 'screen') {
        const s = screens[screens.length - 1];
        inFeature.add(s);
        if (s.parentNode !== this.featured) this.featured.insertBefore(s, this.presentBar);
      }
    }
    const gridTiles = all.filter((x) => !inFeature.has(x));
    gridTiles.sort((a, b) => order(state, a) - order(state, b) || nameFor(state, a).localeCompare(nameFor(state, b)));
    gridTiles.forEach((tile, i) => { if (this.grid.children[i] !== tile) this.grid.insertBefore(tile, this.grid.children[i] || null); });
    const n = Math.max(1, gridTiles.length);
    const cols = feature ? n : n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : 4;
    this.grid.style.setProperty('--cols', String(cols));
    this.grid.style.setProperty('--rows', String(feature ? 1 : Math.ceil(n / cols)));
    this.grid.dataset.count = String(n);
    if (!gridTiles.length && !feature) this.grid.append(this.emptyNote);
    else this.emptyNote.remove();
    this.applyQuality(tiles, feature, n);
    this.showPresentation(state);
  }

  /** applyQuality caps the simulcast layer by how large each video is drawn. */
  applyQuality(tiles, feature, n) {
    for (const tile of tiles.values()) {
      const id = tile.dataset.track;
      if (!id) continue;
      // No cap on the stage or in a small grid; beside a featured item the
      // lowest layer; in a grid of more than four the middle one.
      const max = tile.parentNode === this.featured ? null : feature ? 0 : n > 4 ? 1 : null;
      const key = String(max);
      if (this.quality.get(id) === key) continue;
      this.quality.set(id, key);
      this.actions.setQuality(id, max);
    }
  }

  /** showPresentation follows the presented document and page. */
  showPresentation(state) {
    const pr = state.presenting;
    if (!pr) {
      if (this.shown) this.viewer.close();
      this.shown = null;
      replace(this.presentBar);
      return;
    }
    if (this.shown && this.shown.document_id === pr.document_id && this.shown.page === pr.page && this.shown.by === pr.by) return;
    this.shown = { document_id: pr.document_id, page: pr.page, by: pr.by };
    const canPresent = state.perms.has('present');
    const who = nameOf(state, pr.by);
    replace(this.presentBar,
      h('span', { class: 'present-by' }, t('present.by', { name: who ? who.name : t('room.someone') })),
      canPresent && [
        h('button', { type: 'button', class: 'btn btn-small', id: 'present-prev', onclick: () => this.actions.present(pr.document_id, pr.page - 1), disabled: pr.page <= 1 }, t('viewer.prev')),
        h('button', { type: 'button', class: 'btn btn-small', id: 'present-next', onclick: () => this.actions.present(pr.document_id, pr.page + 1), disabled: !!this.viewer.pages && pr.page >= this.viewer.pages }, t('viewer.next')),
        h('button', { type: 'button', class: 'btn btn-small', id: 'present-stop', onclick: () => this.actions.stopPresenting() }, t('present.stop')),
      ]);
    this.caption.textContent = t('common.loading');
    const shown = this.shown;
    this.viewer.show(pr.document_id, pr.page).then(() => {
      if (shown !== this.shown) return;
      this.caption.textContent = exhibitTitle(this.viewer.meta, pr.page, this.viewer.pages);
      const next = this.presentBar.querySelector('#present-next');
      if (next && this.viewer.pages) next.disabled = pr.page >= this.viewer.pages;
    }).catch((err) => {
      if (shown !== this.shown) return;
      this.caption.textContent = t('present.notShown');
      toast(t('viewer.failed', { error: errorText(err) }), 'error');
    });
  }

  /** pages is the presented document's page count, once open (0 before). */
  get pages() { return this.viewer.pages; }

  close() {
    this.viewer.close();
    this.shown = null;
  }
}

/** exhibitTitle names what is shown: "P-1 — Lease agreement, page 3 of 12". */
export function exhibitTitle(meta, page, pages) {
  if (!meta) return '';
  const name = meta.label ? t('present.exhibit', { label: meta.label, name: meta.name }) : meta.name;
  return pages > 1 || meta.content_type === 'application/pdf' ? t('present.titlePage', { name, page, pages }) : name;
}

function nameFor(state, tile) {
  const p = nameOf(state, tile.dataset.participant);
  return p ? p.name : '';
}

// Self view last; the presiding role first; then by name.
function order(state, tile) {
  const pid = tile.dataset.participant;
  if (pid === state.you.id) return 3;
  const p = nameOf(state, pid);
  const role = p ? p.role : '';
  return role === 'judge' || role === 'notary' ? 0 : 1;
}
