// Viewer shows a document in the page: PDFs with the vendored pdf.js
// (static/vendor/pdfjs, see web/vendor.lock), images as they are. The
// bytes are fetched with the viewer's own token, so the server decides
// whether this participant may see the document at all.
//
// A page is drawn to fit the surface (fit page), to its width (fit width),
// or at a zoom the reader chose; the choice is the reader's own and is
// kept while pages change.
import { t } from './i18n.js';
import { h, replace } from './dom.js';
import { ApiError, errorText } from './api.js';

const PDFJS = '/static/vendor/pdfjs/';
const ZOOMS = [0.5, 0.75, 1, 1.25, 1.5, 2, 3];
let pdfjs = null;

function loadPdfjs() {
  if (!pdfjs) {
    pdfjs = import(PDFJS + 'pdf.min.mjs').then((m) => {
      m.GlobalWorkerOptions.workerSrc = PDFJS + 'pdf.worker.min.mjs';
      return m;
    });
  }
  return pdfjs;
}

export class Viewer {
  /** interactive viewers have their own page buttons; every viewer zooms. */
  constructor({ api, interactive = true, idPrefix = 'viewer' }) {
    this.api = api;
    this.interactive = interactive;
    this.docId = null;
    this.meta = null;
    this.task = null; // pdf.js loading task: destroying it frees the document
    this.pdf = null;
    this.page = 1;
    this.pages = 0;
    this.fit = 'page'; // 'page', 'width', or a zoom factor
    this.opening = null;
    this.canvas = h('canvas', { class: 'viewer-canvas' });
    this.img = h('img', { class: 'viewer-img', alt: '', hidden: true });
    this.msg = h('p', { class: 'viewer-msg', role: 'status' });
    this.pageLabel = h('span', { class: 'viewer-page', 'aria-live': 'polite' });
    this.prevBtn = h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.go(this.page - 1) }, t('viewer.prev'));
    this.nextBtn = h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.go(this.page + 1) }, t('viewer.next'));
    const zoomBtn = (key, label, sign, fn) => h('button', { type: 'button', class: 'btn btn-small btn-zoom', dataset: { zoom: key }, 'aria-label': label, title: label, onclick: fn }, sign);
    this.zoomBar = h('div', { class: 'viewer-zoom', role: 'group', 'aria-label': t('viewer.zoom') },
      zoomBtn('out', t('viewer.zoomOut'), '−', () => this.zoom(-1)),
      zoomBtn('in', t('viewer.zoomIn'), '+', () => this.zoom(1)),
      h('button', { type: 'button', class: 'btn btn-small', dataset: { fit: 'width' }, 'aria-pressed': 'false', onclick: () => this.setFit('width') }, t('viewer.fitWidth')),
      h('button', { type: 'button', class: 'btn btn-small', dataset: { fit: 'page' }, 'aria-pressed': 'true', onclick: () => this.setFit('page') }, t('viewer.fitPage')));
    const bar = h('div', { class: 'viewer-bar' }, this.interactive && this.prevBtn, this.pageLabel, this.interactive && this.nextBtn, this.zoomBar);
    this.surface = h('div', { class: 'viewer-surface', id: idPrefix + '-surface', tabindex: '0', role: 'region', 'aria-label': t('viewer.surface') }, this.canvas, this.img, this.msg);
    this.el = h('div', { class: 'viewer', role: 'document' }, bar, this.surface);
    this.el.addEventListener('keydown', (e) => {
      if (!this.interactive) return;
      if (e.key === 'PageDown' || e.key === 'ArrowRight') { e.preventDefault(); this.go(this.page + 1); }
      if (e.key === 'PageUp' || e.key === 'ArrowLeft') { e.preventDefault(); this.go(this.page - 1); }
    });
    // A PDF page is drawn to fit: redraw it when the surface changes size.
    // The surface is observed while a document is open; close() stops it.
    this.resize = new ResizeObserver(() => { if (this.pdf) this.render().catch(() => {}); });
  }

  /** show opens a document (if not open yet) at page; the newest call wins. */
  async show(documentId, page = 1) {
    if (documentId !== this.docId) {
      this.opening = this.open(documentId);
    }
    const opening = this.opening;
    await opening;
    if (opening !== this.opening || documentId !== this.docId) return;
    if (this.pdf) await this.go(page);
  }

  async open(documentId) {
    this.close();
    this.resize.observe(this.surface);
    this.docId = documentId;
    this.msg.textContent = t('common.loading');
    this.canvas.hidden = true;
    this.img.hidden = true;
    let meta, blob;
    try {
      meta = await this.api.get('/documents/' + documentId);
      blob = await this.api.blob('/documents/' + documentId + '/content?inline=1');
    } catch (err) {
      if (documentId === this.docId) this.msg.textContent = err instanceof ApiError && (err.status === 404 || err.status === 403) ? t('viewer.notVisible') : t('viewer.failed', { error: errorText(err) });
      throw err;
    }
    if (documentId !== this.docId) return;
    this.meta = meta;
    this.el.setAttribute('aria-label', meta.name);
    if (meta.content_type === 'application/pdf') {
      const lib = await loadPdfjs();
      const task = lib.getDocument({
        data: new Uint8Array(await blob.arrayBuffer()),
        isEvalSupported: false,
        standardFontDataUrl: PDFJS + 'standard_fonts/',
        useWasm: false,
        enableXfa: false,
      });
      this.task = task;
      const pdf = await task.promise;
      if (task !== this.task) return; // closed or replaced meanwhile
      this.pdf = pdf;
      this.pages = pdf.numPages;
      this.canvas.hidden = false;
      this.msg.textContent = '';
      this.el.dataset.pages = String(this.pages);
    } else if (meta.content_type.startsWith('image/')) {
      this.url = URL.createObjectURL(blob);
      this.img.src = this.url;
      this.img.alt = meta.name;
      this.img.hidden = false;
      this.msg.textContent = '';
      this.pages = 1;
      this.pageLabel.textContent = meta.name;
    } else {
      this.msg.textContent = t('viewer.cannotShow');
    }
  }

  async go(page) {
    if (!this.pdf) return;
    page = Math.max(1, Math.min(this.pages, page));
    this.page = page;
    this.pageLabel.textContent = t('viewer.pageOf', { page, pages: this.pages });
    this.el.dataset.page = String(page);
    this.prevBtn.disabled = page <= 1;
    this.nextBtn.disabled = page >= this.pages;
    await this.render();
  }

  setFit(fit) {
    this.fit = fit;
    for (const b of this.zoomBar.querySelectorAll('[data-fit]')) b.setAttribute('aria-pressed', String(b.dataset.fit === fit));
    this.el.dataset.fit = String(fit);
    return this.render();
  }

  /** zoom steps the zoom up (1) or down (-1) from what is drawn now. */
  zoom(dir) {
    const now = this.scale || 1;
    const next = dir > 0 ? ZOOMS.find((z) => z > now + 0.01) : [...ZOOMS].reverse().find((z) => z < now - 0.01);
    return this.setFit(next || now);
  }

  /**
   * render draws the current page. Draws run one at a time: pdf.js refuses
   * a second render on a canvas until the first has finished or been
   * cancelled (a page change while a page was still drawing failed so).
   */
  render() {
    if (this.renderTask) this.renderTask.cancel();
    const run = () => this.draw();
    this.drawing = (this.drawing || Promise.resolve()).then(run, run);
    return this.drawing;
  }

  async draw() {
    if (!this.pdf) return;
    const pdf = this.pdf;
    const pageNo = this.page;
    const page = await pdf.getPage(pageNo);
    if (pdf !== this.pdf || pageNo !== this.page) return; // a newer draw follows
    const base = page.getViewport({ scale: 1 });
    const width = Math.max(200, this.surface.clientWidth - 8);
    const height = Math.max(200, this.surface.clientHeight - 8);
    let scale;
    if (this.fit === 'width') scale = width / base.width;
    else if (this.fit === 'page') scale = Math.min(width / base.width, height > 240 ? height / base.height : Infinity);
    else scale = this.fit;
    this.scale = scale;
    const dpr = window.devicePixelRatio || 1;
    const vp = page.getViewport({ scale: scale * dpr });
    this.canvas.width = Math.floor(vp.width);
    this.canvas.height = Math.floor(vp.height);
    this.canvas.style.setProperty('width', Math.floor(vp.width / dpr) + 'px');
    this.canvas.style.setProperty('height', Math.floor(vp.height / dpr) + 'px');
    this.canvas.setAttribute('aria-label', t('viewer.pageOf', { page: pageNo, pages: this.pages }));
    this.canvas.setAttribute('role', 'img');
    const task = page.render({ canvas: this.canvas, canvasContext: this.canvas.getContext('2d'), viewport: vp });
    this.renderTask = task;
    try {
      await task.promise;
      if (pageNo === this.page) this.el.dataset.rendered = String(pageNo);
    } catch (err) {
      if (!err || err.name !== 'RenderingCancelledException') throw err;
    } finally {
      if (this.renderTask === task) this.renderTask = null;
    }
  }

  /** close frees the document; safe to call at any time, more than once. */
  close() {
    this.resize.disconnect();
    if (this.renderTask) {
      try { this.renderTask.cancel(); } catch { /* finished */ }
    }
    // pdf.js frees a document through its loading task (PDFDocumentProxy
    // has no destroy in the vendored version).
    if (this.task) this.task.destroy().catch(() => {});
    if (this.url) URL.revokeObjectURL(this.url);
    this.task = null;
    this.renderTask = null;
    this.pdf = null;
    this.url = null;
    this.meta = null;
    this.docId = null;
    this.pages = 0;
    this.page = 1;
    delete this.el.dataset.rendered;
    delete this.el.dataset.page;
    replace(this.pageLabel);
  }
}
