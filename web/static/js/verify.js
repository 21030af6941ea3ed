// /verify: anyone drops a PDF and reads, in plain words, whether each
// signature holds — who signed, when, who certified the time, and whether
// the document changed since. The server checks (POST /api/v1/verify);
// the file goes nowhere else and is not stored.
import { t, chooseLanguage } from './i18n.js';
import { h, replace, announce, formatDateTime, hashView, formatSize, brand } from './dom.js';
import { Api, ApiError, errorText } from './api.js';

chooseLanguage();
const app = document.getElementById('app');
const api = new Api('');

const input = h('input', { type: 'file', id: 'verify-file', class: 'file-input', accept: '.pdf,application/pdf' });
const drop = h('div', { class: 'drop-zone drop-large', id: 'verify-drop' },
  h('p', { class: 'drop-title' }, t('verify.drop')),
  h('label', { for: 'verify-file', class: 'btn btn-primary' }, t('verify.choose')), input);
const result = h('div', { id: 'verify-result', 'aria-live': 'polite' });

document.title = t('verify.title') + ' — ' + t('app.name');
replace(app,
  h('header', { class: 'topbar' }, brand('/')),
  h('main', { id: 'main', class: 'page-narrow' },
    h('h1', null, t('verify.title')),
    h('p', null, t('verify.intro')),
    drop, result));

input.addEventListener('change', () => { if (input.files[0]) verify(input.files[0]); });
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  if (e.dataTransfer.files[0]) verify(e.dataTransfer.files[0]);
});

async function verify(file) {
  replace(result, h('p', { role: 'status' }, t('verify.checking', { name: file.name })));
  let report;
  try {
    report = await api.request('POST', '/verify', { body: file, headers: { 'Content-Type': 'application/pdf' } });
  } catch (err) {
    const text = err instanceof ApiError && err.status === 404 ? t('verify.unavailable') : errorText(err);
    replace(result, h('div', { class: 'verdict verdict-bad', role: 'alert' }, h('h2', null, t('verify.couldNot')), h('p', null, text)));
    return;
  }
  show(file, report);
}

/** statusWords says what a signature's status means. */
function statusWords(s) {
  return t('verify.status.' + s.status);
}

/** countWords says "2 signatures, 2 document timestamps". */
function countWords(signatures, stamps) {
  const sigs = signatures === 1 ? t('verify.signatures.one') : t('verify.signatures.other', { n: signatures });
  if (stamps === 0) return sigs;
  return sigs + ', ' + (stamps === 1 ? t('verify.timestamps.one') : t('verify.timestamps.other', { n: stamps }));
}

/** reasonList says why an entry is not valid, in words. */
function reasonList(s) {
  const texts = (s.reasons || []).map((r) => r.text);
  if (texts.length === 0) return null;
  return h('div', { class: 'problems' }, h('h4', null, t('verify.problems')), h('ul', null, texts.map((p) => h('li', null, p))));
}

function details(s) {
  return h('details', null, h('summary', null, t('verify.details')),
    h('dl', { class: 'doc-fields' },
      s.signer && [h('dt', null, t('verify.certificate')), h('dd', null, s.signer)],
      s.issuer && [h('dt', null, t('verify.issuer')), h('dd', null, s.issuer)],
      s.serial && [h('dt', null, t('verify.serial')), h('dd', null, s.serial)],
      h('dt', null, t('verify.revision')), h('dd', null, String(s.revision + 1)),
      s.certification && s.kind !== 'document timestamp' && [h('dt', null, t('verify.certification')), h('dd', null, s.certification)],
      s.revocation && [h('dt', null, t('verify.revocation')), h('dd', null, s.revocation)],
      (s.reasons || []).length > 0 && [h('dt', null, t('verify.codes')), h('dd', null, s.reasons.map((r) => r.code).join(', '))]));
}

function card(s, title, lines) {
  return h('article', { class: 'sig-card sig-' + s.status, dataset: { status: s.status, kind: s.kind } },
    h('h3', null, title, ' ', h('span', { class: 'badge badge-' + (s.valid ? 'verified' : 'refused') }, statusWords(s))),
    h('ul', null, lines.map((l) => h('li', null, l))),
    reasonList(s), details(s));
}

/** signatureCard shows one signature, titled with the name in its certificate. */
function signatureCard(s, n) {
  const ts = s.timestamp;
  const who = s.signer_name || s.name || t('verify.unknownSigner');
  const lines = [t('verify.signedBy', { who })];
  if (ts && ts.valid && ts.time) lines.push(t('verify.timestamped', { when: formatDateTime(ts.time), authority: ts.authority || t('verify.unknownAuthority') }));
  else if (s.claimed_time) lines.push(t('verify.claimedTime', { when: formatDateTime(s.claimed_time) }));
  else lines.push(t('verify.noTime'));
  if (s.reason) lines.push(t('verify.reason', { reason: s.reason }));
  if (s.location) lines.push(t('verify.location', { location: s.location }));
  lines.push(s.intact ? (s.modified_after_signing ? t('verify.changedAfter') : t('verify.unchanged')) : t('verify.bytesChanged'));
  lines.push(s.revoked ? t('verify.revoked') : s.trusted ? t('verify.trusted') : t('verify.untrusted'));
  if (s.development) lines.push(t('verify.developmentGrade', { what: s.development }));
  return card(s, t('verify.signatureN', { n, who }), lines);
}

/** timestampCard shows one document timestamp. */
function timestampCard(s, n) {
  const ts = s.timestamp;
  const lines = [];
  if (ts && ts.valid && ts.time) lines.push(t('verify.docTimestamp', { when: formatDateTime(ts.time), authority: ts.authority || t('verify.unknownAuthority') }));
  lines.push(s.intact ? (s.modified_after_signing ? t('verify.changedAfter') : t('verify.unchangedSinceStamp')) : t('verify.bytesChanged'));
  if (s.development) lines.push(t('verify.developmentGrade', { what: s.development }));
  return card(s, t('verify.timestampN', { n }), lines);
}

function heading(r) {
  if (r.valid && r.development) return t('verify.validDevelopment');
  if (r.valid) return t('verify.valid');
  return r.signature_count > 0 ? t('verify.notValid') : t('verify.noSignatures');
}

function show(file, r) {
  const good = r.valid;
  const entries = r.signatures || [];
  const signatures = entries.filter((s) => s.kind !== 'document timestamp');
  const stamps = entries.filter((s) => s.kind === 'document timestamp');
  const counts = countWords(signatures.length, stamps.length);
  replace(result,
    h('section', { class: 'verdict ' + (good ? 'verdict-good' : 'verdict-bad'), id: 'verdict', dataset: { valid: String(good), development: String(!!r.development) } },
      h('h2', { tabindex: '-1' }, heading(r)),
      h('p', { id: 'verify-counts' }, counts),
      r.development && h('p', { class: 'development' }, t('verify.developmentNote')),
      h('p', { class: 'muted' }, file.name, ' · ', formatSize(r.size), r.sha256 && [' · ', t('doc.sha256'), ' ', hashView(r.sha256)])),
    signatures.length > 0 && h('h2', null, t('verify.signaturesHeading')),
    signatures.map((s, i) => signatureCard(s, i + 1)),
    stamps.length > 0 && h('h2', null, t('verify.timestampsHeading')),
    stamps.map((s, i) => timestampCard(s, i + 1)));
  result.querySelector('h2').focus();
  announce(heading(r) + ' — ' + counts);
}
