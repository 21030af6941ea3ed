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

function signatureCard(s, i) {
  const ts = s.timestamp;
  const who = s.signer_name || s.name || s.signer || t('verify.unknownSigner');
  const lines = [];
  if (s.kind === 'document timestamp') {
    lines.push(t('verify.docTimestamp', { when: ts && ts.time ? formatDateTime(ts.time) : '?', authority: (ts && ts.authority) || t('verify.unknownAuthority') }));
  } else {
    lines.push(t('verify.signedBy', { who }));
    if (ts && ts.time) lines.push(t('verify.timestamped', { when: formatDateTime(ts.time), authority: ts.authority || t('verify.unknownAuthority') }));
    else if (s.claimed_time) lines.push(t('verify.claimedTime', { when: formatDateTime(s.claimed_time) }));
    else lines.push(t('verify.noTime'));
    if (s.reason) lines.push(t('verify.reason', { reason: s.reason }));
    if (s.location) lines.push(t('verify.location', { location: s.location }));
  }
  lines.push(s.intact ? (s.modified_after_signing ? t('verify.changedAfter') : t('verify.unchanged')) : t('verify.bytesChanged'));
  if (s.kind !== 'document timestamp') lines.push(s.revoked ? t('verify.revoked') : s.trusted ? t('verify.trusted') : t('verify.untrusted'));
  return h('article', { class: 'sig-card sig-' + s.status, dataset: { status: s.status } },
    h('h3', null, t('verify.signatureN', { n: i + 1 }), ' ', h('span', { class: 'badge badge-' + (s.valid ? 'verified' : 'refused') }, statusWords(s))),
    h('ul', null, lines.map((l) => h('li', null, l))),
    s.problems && s.problems.length > 0 && h('div', { class: 'problems' }, h('h4', null, t('verify.problems')), h('ul', null, s.problems.map((p) => h('li', null, p)))),
    h('details', null, h('summary', null, t('verify.details')),
      h('dl', { class: 'doc-fields' },
        s.signer && [h('dt', null, t('verify.certificate')), h('dd', null, s.signer)],
        s.issuer && [h('dt', null, t('verify.issuer')), h('dd', null, s.issuer)],
        s.serial && [h('dt', null, t('verify.serial')), h('dd', null, s.serial)],
        h('dt', null, t('verify.revision')), h('dd', null, String(s.revision + 1)),
        s.certification && [h('dt', null, t('verify.certification')), h('dd', null, s.certification)])));
}

function show(file, r) {
  const good = r.valid;
  const sigs = r.signatures || [];
  replace(result,
    h('section', { class: 'verdict ' + (good ? 'verdict-good' : 'verdict-bad'), id: 'verdict', dataset: { valid: String(good) } },
      h('h2', { tabindex: '-1' }, good ? t('verify.valid') : sigs.length ? t('verify.notValid') : t('verify.noSignatures')),
      h('p', null, r.summary),
      h('p', { class: 'muted' }, file.name, ' · ', formatSize(r.size), r.sha256 && [' · ', t('doc.sha256'), ' ', hashView(r.sha256)])),
    sigs.map(signatureCard));
  result.querySelector('h2').focus();
  announce(good ? t('verify.valid') : t('verify.notValid'));
}
