// Viewer shows a document in the page: PDFs with the vendored pdf.js
// (static/vendor/pdfjs, see web/vendor.lock), images as they are. The
// bytes are fetched with the viewer's own token, so the server decides
// whether this participant may see the document at all.
import { t } from './i18n.js';
import { h, replace } from './dom.js';
import { ApiError, errorText } from './api.js';

const PDFJS = '/static/vendor/pdfjs/';
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
  /** interactive viewers have their own page buttons. */
  constructor({ api, interactive = true }) {
    this.api = api;
    this.interactive = interactive;
    this.docId = null;
    this.pdf = null;
    this.page = 1;
    this.pages = 0;
    this.canvas = h('canvas', { class: 'viewer-canvas' });
    this.img = h('img', { class: 'viewer-img', alt: '', hidden: true });
    this.msg = h('p', { class: 'viewer-msg', role: 'status' });
    this.pageLabel = h('span', { class: 'viewer-page', 'aria-live': 'polite' });
    this.prevBtn = h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.go(this.page - 1) }, t('viewer.prev'));
    this.nextBtn = h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.go(this.page + 1) }, t('viewer.next'));
    const bar = h('div', { class: 'viewer-bar' }, this.interactive && this.prevBtn, this.pageLabel, this.interactive && this.nextBtn);
    this.surface = h('div', { class: 'viewer-surface' }, this.canvas, this.img, this.msg);
    this.el = h('div', { class: 'viewer', role: 'document' }, bar, this.surface);
    this.el.addEventListener('keydown', (e) => {
      if (!this.interactive) return;
      if (e.key === 'PageDown' || e.key === 'ArrowRight') { e.preventDefault(); this.go(this.page + 1); }
      if (e.key === 'PageUp' || e.key === 'ArrowLeft') { e.preventDefault(); this.go(this.page - 1); }
    });
    this.el.tabIndex = 0;
    // A PDF page is drawn to fit: redraw it when the surface changes size.
    // The surface is observed while a document is open; close() stops it.
    this.resize = new ResizeObserver(() => { if (this.pdf) this.render(); });
  }

  /** show opens a document (if not open yet) at page. */
  async show(documentId, page = 1) {
    if (documentId !== this.docId) await this.open(documentId);
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
      this.msg.textContent = err instanceof ApiError && err.status === 404 ? t('viewer.notVisible') : t('viewer.failed', { error: errorText(err) });
      throw err;
    }
    if (documentId !== this.docId) return;
    this.el.setAttribute('aria-label', meta.name);
    if (meta.content_type === 'application/pdf') {
      const lib = await loadPdfjs();
      this.pdf = await lib.getDocument({
        data: new Uint8Array(await blob.arrayBuffer()),
        isEvalSupported: false,
        standardFontDataUrl: PDFJS + 'standard_fonts/',
        useWasm: false,
        enableXfa: false,
      }).promise;
      this.pages = this.pdf.numPages;
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

  async render() {
    if (!this.pdf) return;
    const page = await this.pdf.getPage(this.page);
    const base = page.getViewport({ scale: 1 });
    const width = Math.max(200, this.surface.clientWidth - 8);
    const height = Math.max(200, this.surface.clientHeight - 8);
    const scale = Math.min(width / base.width, height > 240 ? height / base.height : Infinity);
    const dpr = window.devicePixelRatio || 1;
    const vp = page.getViewport({ scale: scale * dpr });
    if (this.renderTask) this.renderTask.cancel();
    this.canvas.width = Math.floor(vp.width);
    this.canvas.height = Math.floor(vp.height);
    this.canvas.style.setProperty('width', Math.floor(vp.width / dpr) + 'px');
    this.canvas.style.setProperty('height', Math.floor(vp.height / dpr) + 'px');
    this.canvas.setAttribute('aria-label', t('viewer.pageOf', { page: this.page, pages: this.pages }));
    this.canvas.setAttribute('role', 'img');
    const task = page.render({ canvas: this.canvas, canvasContext: this.canvas.getContext('2d'), viewport: vp });
    this.renderTask = task;
    try {
      await task.promise;
      this.el.dataset.rendered = String(this.page);
    } catch (err) {
      if (!err || err.name !== 'RenderingCancelledException') throw err;
    }
  }

  close() {
    this.resize.disconnect();
    if (this.renderTask) this.renderTask.cancel();
    if (this.pdf) this.pdf.destroy();
    if (this.url) URL.revokeObjectURL(this.url);
    this.pdf = null;
    this.url = null;
    this.docId = null;
    this.pages = 0;
    this.page = 1;
    replace(this.pageLabel);
  }
}
