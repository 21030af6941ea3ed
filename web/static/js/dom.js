// Small DOM helpers. Text always goes in as text nodes, never as HTML, so
// names, chat and file names from other people cannot inject markup.
import { t, language, LANGUAGES, setLanguage } from './i18n.js';

/**
 * h builds an element: h('button', {class: 'x', onclick: fn, 'aria-label': …}, child, …).
 * Children may be strings, nodes, arrays, or null/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') {
        el.addEventListener(k.slice(2), v);
      } else if (k === 'class') {
        el.className = v;
      } else if (k === 'text') {
        el.textContent = v;
      } else if (k === 'dataset') {
        Object.assign(el.dataset, v);
      } else if (k in el && typeof v !== 'string') {
        el[k] = v;
      } else if (v === true) {
        el.setAttribute(k, '');
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces el's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let liveRegion;
let alertRegion;

/** Says msg to screen readers without moving focus. */
export function announce(msg, assertive = false) {
  if (!liveRegion) {
    liveRegion = h('div', { class: 'sr-only', 'aria-live': 'polite', role: 'status' });
    alertRegion = h('div', { class: 'sr-only', 'aria-live': 'assertive', role: 'alert' });
    document.body.append(liveRegion, alertRegion);
  }
  const region = assertive ? alertRegion : liveRegion;
  region.textContent = '';
  // A new text node after a tick is re-read even when the text repeats.
  setTimeout(() => { region.textContent = msg; }, 30);
}

let toastBox;

/** Shows a short message for a few seconds and announces it. */
export function toast(msg, kind = 'info') {
  if (!toastBox) {
    toastBox = h('div', { class: 'toasts' });
    document.body.append(toastBox);
  }
  const el = h('div', { class: 'toast toast-' + kind }, msg);
  toastBox.append(el);
  announce(msg, kind === 'error');
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}

/** brand is the header's icon and name: a link to href, or plain text without one. */
export function brand(href) {
  return h(href ? 'a' : 'span', { class: 'brand', href }, h('img', { src: '/static/img/icon.svg', alt: '', width: 28, height: 28 }), t('app.name'));
}

/**
 * languageSwitch is a labelled list of the languages; choosing one keeps
 * it for this browser and reloads the page in it.
 */
export function languageSwitch(id = 'language') {
  if (LANGUAGES.length < 2) return null;
  const sel = h('select', { id, class: 'lang-select', 'aria-label': t('lang.choose') },
    LANGUAGES.map(([code, name]) => h('option', { value: code, lang: code, selected: code === language() }, name)));
  sel.addEventListener('change', () => {
    setLanguage(sel.value);
    location.reload();
  });
  return h('div', { class: 'lang' }, sel);
}

/** First 12 hex digits of a SHA-256, the rest on hover. */
export function shortHash(hex) {
  if (!hex) return '';
  return hex.slice(0, 12) + '…';
}

/** An element showing a short hash with the full one in its title and for screen readers. */
export function hashView(hex) {
  return h('code', { class: 'hash', title: hex, 'aria-label': t('doc.sha256Full', { hash: hex }), dataset: { sha256: hex } }, shortHash(hex));
}

const dateFmt = () => new Intl.DateTimeFormat(language(), { dateStyle: 'medium', timeStyle: 'short' });
const timeFmt = () => new Intl.DateTimeFormat(language(), { timeStyle: 'short' });

/** Local date and time of an ISO timestamp. */
export function formatDateTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateFmt().format(d);
}

/** Local time of an ISO timestamp. */
export function formatTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : timeFmt().format(d);
}

/** Human size: 1.2 MB. */
export function formatSize(n) {
  if (!(n >= 0)) return '';
  const units = ['B', 'kB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}

/** Copies text to the clipboard; true when it worked. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = h('textarea', { class: 'sr-only', readonly: true });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    ta.remove();
    return ok;
  }
}

/**
 * A labelled form field: label, control and an error slot that the
 * control names in aria-describedby.
 */
let fieldSeq = 0;
export function field(label, control, hint) {
  const id = control.id || ('f' + (++fieldSeq));
  control.id = id;
  const err = h('div', { class: 'field-error', id: id + '-err', role: 'alert' });
  const described = [id + '-err'];
  let hintEl = null;
  if (hint) {
    hintEl = h('div', { class: 'field-hint', id: id + '-hint' }, hint);
    described.push(id + '-hint');
  }
  control.setAttribute('aria-describedby', described.join(' '));
  const wrap = h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl, err);
  wrap.setError = (msg) => {
    err.textContent = msg || '';
    if (msg) control.setAttribute('aria-invalid', 'true');
    else control.removeAttribute('aria-invalid');
  };
  wrap.control = control;
  return wrap;
}

/**
 * A modal dialog built on <dialog>: focus is trapped by the browser and
 * Escape closes it. Resolves with the value passed to close(), or null.
 */
export function modal(title, build) {
  return new Promise((resolve) => {
    const heading = h('h2', { id: 'dlg-title-' + (++fieldSeq) }, title);
    const dlg = h('dialog', { class: 'modal', 'aria-labelledby': heading.id });
    let result = null;
    const close = (v) => { result = v ?? null; dlg.close(); };
    const body = build(close);
    dlg.append(heading, body);
    dlg.addEventListener('close', () => { dlg.remove(); resolve(result); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** Asks a yes/no question in a modal dialog. */
export function confirmDialog(title, text, okLabel) {
  return modal(title, (close) => h('div', null,
    h('p', null, text),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'btn', onclick: () => close(false) }, t('common.cancel')),
      h('button', { type: 'button', class: 'btn btn-danger', onclick: () => close(true) }, okLabel || t('common.ok')))));
}
