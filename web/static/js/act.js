// The notarial act panel. The embassy officer checks the principal's
// identity document (the MRZ, typed or from a desk reader that types like
// a keyboard), captures a still of the principal's face from the live
// video and a photo of the document's data page, and records the outcome.
// The notary sees every check live, follows the act through its states
// and seals it; the evidence bundle downloads from here.
import { t, roleLabel } from './i18n.js';
import { h, replace, toast, hashView, formatDateTime } from './dom.js';
import { ApiError, errorText, downloadBundle } from './api.js';

import vocab from './vocab.js';
import { nameMismatch } from './names.js';

/** The act's states in order, from the server (js/vocab.js is generated). */
export const ACT_STATES = vocab.act_states;

const DOC_FIELDS = ['type', 'number', 'issuing_state', 'surname', 'given_names', 'nationality', 'birth_date', 'sex', 'expiry_date'];

/** normalizeMRZ turns what a person or a reader typed into MRZ lines joined by "\n". */
export function normalizeMRZ(text) {
  return String(text).toUpperCase().split(/\r?\n|\r/).map((l) => l.replace(/\s+/g, '')).filter(Boolean).join('\n');
}

export function createActPanel(room) {
  const api = room.api;
  const base = '/sessions/' + room.sid;
  const el = h('section', { class: 'panel act' }, h('h2', { class: 'panel-title' }, t('panel.act')));
  const stateBox = h('div', { class: 'act-state', id: 'act-state' });
  const checksBox = h('div', { class: 'checks-list', id: 'identity-checks', 'aria-live': 'polite' });
  const officerBox = h('div', { class: 'officer' });
  const actions = h('div', { class: 'actions act-actions' });
  const message = h('p', { class: 'act-message', role: 'alert' });
  el.append(stateBox, message, actions, officerBox, h('h3', null, t('identity.checks')), checksBox);
  const checks = new Map();
  let unavailable = false;

  function renderState() {
    const act = room.session.act;
    if (!act) {
      replace(stateBox, h('p', { class: 'muted' }, t('act.noState')));
      return;
    }
    const at = ACT_STATES.indexOf(act.state);
    replace(stateBox,
      act.number && h('p', { class: 'act-number' }, t('act.number', { number: act.number })),
      h('ol', { class: 'stepper', 'aria-label': t('act.progress') }, ACT_STATES.map((s, i) => h('li', {
        class: i < at ? 'done' : i === at ? 'current' : '', 'aria-current': i === at ? 'step' : null,
      }, t('act.state.' + s)))));
  }

  // The act's document: the one PDF the principals and then the notary
  // sign. The notary designates it here before anyone signs.
  const docPick = h('select', { id: 'act-document' });
  const docCurrent = h('p', { id: 'act-document-current', 'aria-live': 'polite' });
  const designateBtn = h('button', { type: 'button', class: 'btn', id: 'designate-document', onclick: designate }, t('act.designate'));
  let pdfs = [];

  function renderDesignation() {
    const act = room.session.act || {};
    const chosen = pdfs.find((d) => d.id === act.document_id);
    docCurrent.textContent = act.document_id ? t('act.documentIs', { name: chosen ? chosen.name : act.document_id }) : t('act.noDocument');
    replace(docPick, pdfs.length ? pdfs.map((d) => h('option', { value: d.id, selected: d.id === act.document_id }, d.name))
      : h('option', { value: '' }, t('act.noPDF')));
    // Fixed once anyone has signed (the server refuses a change then).
    designateBtn.disabled = docPick.disabled = pdfs.length === 0 || act.state === 'sealed';
  }

  async function loadDocuments() {
    if (!room.can('seal')) return;
    try {
      const docs = await api.get(base + '/documents');
      pdfs = (docs || []).filter((d) => d.content_type === 'application/pdf');
    } catch { /* the documents panel says why */ }
    renderDesignation();
  }

  async function designate() {
    designateBtn.disabled = true;
    message.textContent = '';
    try {
      room.session.act = await api.put(base + '/act/document', { document_id: docPick.value });
      toast(t('act.designated'));
      renderState();
    } catch (err) {
      message.textContent = errorText(err);
    }
    renderDesignation();
  }

  const fee = h('input', { id: 'seal-fee', maxlength: 100, autocomplete: 'off' });
  const description = h('textarea', { id: 'seal-description', rows: 2, maxlength: 2000 });

  function renderActions() {
    const items = [];
    if (room.can('seal')) {
      items.push(h('div', { class: 'designate-form' },
        h('div', { class: 'field' }, h('label', { for: 'act-document' }, t('act.document')), docPick), docCurrent, designateBtn));
      items.push(h('div', { class: 'seal-form' },
        h('div', { class: 'field' }, h('label', { for: 'seal-description' }, t('act.description')), description),
        h('div', { class: 'field' }, h('label', { for: 'seal-fee' }, t('act.fee')), fee),
        h('button', { type: 'button', class: 'btn btn-primary', id: 'seal-button', onclick: seal }, t('act.seal'))));
    }
    if (room.can('bundle')) {
      items.push(h('button', { type: 'button', class: 'btn', id: 'bundle-button', onclick: bundle }, t('act.bundle')));
    }
    replace(actions, items);
  }

  async function seal(e) {
    const btn = e.currentTarget;
    btn.disabled = true;
    message.textContent = '';
    try {
      const body = {};
      if (fee.value.trim()) body.fee = fee.value.trim();
      if (description.value.trim()) body.description = description.value.trim();
      const res = await api.post(base + '/seal', body);
      room.session.act = res.act;
      toast(t('act.sealed', { number: res.act.number || '' }));
      renderState();
    } catch (err) {
      // 409 names the step that is missing: say it as the server does.
      message.textContent = err instanceof ApiError && err.status === 404 ? t('act.unavailable') : errorText(err);
    }
    btn.disabled = false;
  }

  async function bundle(e) {
    const btn = e.currentTarget;
    btn.disabled = true;
    message.textContent = t('act.bundlePreparing');
    message.textContent = await downloadBundle(api, room.sid);
    btn.disabled = false;
  }

  function checkCard(c) {
    const who = room.nameOf(c.participant_id);
    const d = c.document || {};
    const stills = c.stills || [];
    return h('article', { class: 'check check-' + c.status, dataset: { check: c.id, status: c.status } },
      h('h4', null, t('identity.checkOf', { name: who.name }), ' ', h('span', { class: 'badge badge-' + c.status }, t('identity.status.' + c.status))),
      h('dl', { class: 'doc-fields' }, DOC_FIELDS.filter((f) => d[f]).map((f) => [h('dt', null, t('mrz.' + f)), h('dd', null, String(d[f]))])),
      stills.length > 0 && h('ul', { class: 'stills' }, stills.map((s) => h('li', null, t('identity.still.' + s.kind), ' ', hashView(s.sha256)))),
      c.reason && h('p', null, t('identity.reason', { reason: c.reason })),
      c.officer_name && h('p', { class: 'muted' }, t('identity.by', { name: c.officer_name, embassy: c.embassy || '' })),
      c.created_at && h('p', { class: 'muted' }, formatDateTime(c.created_at)));
  }

  function renderChecks() {
    const list = [...checks.values()];
    replace(checksBox, list.length ? list.map(checkCard) : h('p', { class: 'muted' }, unavailable ? t('act.unavailable') : t('identity.none')));
  }

  async function loadChecks() {
    try {
      const list = await api.get(base + '/identity-checks');
      checks.clear();
      for (const c of list || []) checks.set(c.id, c);
      unavailable = false;
    } catch (err) {
      unavailable = err instanceof ApiError && (err.status === 404 || err.status === 405);
    }
    renderChecks();
  }

  // ——— the embassy officer's identity check ———

  function officerPanel() {
    const who = h('select', { id: 'identity-participant' });
    const fillWho = () => {
      const people = [...room.participants.values()].filter((p) => !p.revoked && p.role === 'principal');
      const cur = who.value;
      replace(who, people.length ? people.map((p) => h('option', { value: p.id, selected: p.id === cur }, p.name + ' (' + roleLabel(p.role) + ')'))
        : h('option', { value: '' }, t('identity.noPrincipal')));
    };
    fillWho();
    room.addEventListener('participants', fillWho);
    const embassy = h('input', { id: 'identity-embassy', maxlength: 200, autocomplete: 'organization', value: localStorage.getItem('chamber.embassy') || '' });
    const mrz = h('textarea', { id: 'mrz-input', class: 'mono', rows: 3, spellcheck: 'false', autocomplete: 'off', autocapitalize: 'characters',
      'aria-describedby': 'mrz-hint mrz-errors', placeholder: 'P<EST…' });
    const errors = h('div', { id: 'mrz-errors', class: 'field-error', role: 'alert' });
    const result = h('div', { class: 'check-current', id: 'check-current' });
    const form = h('form', { class: 'identity-form', 'aria-labelledby': 'identity-h' },
      h('h3', { id: 'identity-h' }, t('identity.title')),
      h('div', { class: 'field' }, h('label', { for: 'identity-participant' }, t('identity.principal')), who),
      h('div', { class: 'field' }, h('label', { for: 'identity-embassy' }, t('identity.embassy')), embassy),
      h('div', { class: 'field' }, h('label', { for: 'mrz-input' }, t('identity.mrz')), mrz,
        h('div', { class: 'field-hint', id: 'mrz-hint' }, t('identity.mrzHint')), errors),
      h('button', { type: 'submit', class: 'btn btn-primary', id: 'mrz-check' }, t('identity.checkMRZ')),
      result);
    // A desk reader ends with Enter after the last line: two or three
    // lines typed means the zone is complete, so check it.
    mrz.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) {
        const lines = normalizeMRZ(mrz.value).split('\n').filter(Boolean);
        const long = lines.length && lines[0].length;
        if ((lines.length === 3 && long === 30) || (lines.length === 2 && (long === 36 || long === 44))) {
          e.preventDefault();
          form.requestSubmit();
        }
      }
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(errors);
      mrz.removeAttribute('aria-invalid');
      if (!who.value) {
        errors.textContent = t('identity.noPrincipal');
        return;
      }
      try {
        const body = { participant_id: who.value, mrz: normalizeMRZ(mrz.value) };
        if (embassy.value.trim()) {
          body.embassy = embassy.value.trim();
          localStorage.setItem('chamber.embassy', body.embassy);
        }
        const c = await api.post(base + '/identity-checks', body);
        checks.set(c.id, c);
        renderChecks();
        showCurrent(c, result);
      } catch (err) {
        mrz.setAttribute('aria-invalid', 'true');
        if (err instanceof ApiError && err.fields && Object.keys(err.fields).length) {
          replace(errors, h('p', null, t('identity.mrzInvalid')),
            h('ul', null, Object.entries(err.fields).map(([f, p]) => h('li', { dataset: { field: f } }, h('strong', null, fieldLabel(f)), ': ', p))));
        } else {
          errors.textContent = err instanceof ApiError && err.status === 404 ? t('act.unavailable') : errorText(err);
        }
      }
    });
    return form;
  }

  function fieldLabel(f) {
    const s = t('mrz.' + f);
    return s === 'mrz.' + f ? f.replace(/_/g, ' ') : s;
  }

  function showCurrent(c, box) {
    const status = h('p', { role: 'status', id: 'still-status' });
    const still = async (kind, blob) => {
      try {
        const res = await api.request('POST', base + '/identity-checks/' + c.id + '/stills?kind=' + kind, { body: blob, headers: { 'Content-Type': blob.type || 'image/jpeg' } });
        c.stills = (c.stills || []).filter((s) => s.kind !== kind).concat([res]);
        checks.set(c.id, c);
        renderChecks();
        status.textContent = t('identity.stillStored', { kind: t('identity.still.' + kind), hash: res.sha256 });
      } catch (err) {
        status.textContent = errorText(err);
      }
    };
    // A still is shown as a thumbnail first; it is stored only when the
    // officer accepts it.
    const preview = h('div', { class: 'still-preview', id: 'still-preview', hidden: true });
    const offer = (kind, shot, again) => {
      replace(preview,
        h('img', { src: shot.url, alt: t('identity.stillAlt', { kind: t('identity.still.' + kind) }), class: 'still-thumb' }),
        h('p', { class: 'muted', id: 'still-size' }, t('identity.stillSize', { width: shot.width, height: shot.height })),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'btn btn-primary', id: 'still-accept', onclick: async () => {
            preview.hidden = true;
            await still(kind, shot.blob);
          } }, t('identity.useStill')),
          h('button', { type: 'button', class: 'btn', id: 'still-again', onclick: again }, t('identity.takeAgain'))));
      preview.hidden = false;
    };
    const takeFace = async () => {
      status.textContent = t('identity.capturing');
      try {
        offer('face', await room.captureStill(c.participant_id), takeFace);
        status.textContent = '';
      } catch (err) { status.textContent = err.message; }
    };
    const takeDocument = async () => {
      try {
        offer('document', await room.captureLocal(), takeDocument);
      } catch (err) { status.textContent = err.message; }
    };
    const faceBtn = h('button', { type: 'button', class: 'btn', id: 'capture-face', onclick: takeFace }, t('identity.captureFace', { name: room.nameOf(c.participant_id).name }));
    const docBtn = h('button', { type: 'button', class: 'btn', id: 'capture-document', onclick: takeDocument }, t('identity.captureDocument'));
    const file = h('input', { type: 'file', accept: 'image/jpeg,image/png', id: 'document-photo', class: 'file-input' });
    file.addEventListener('change', () => { if (file.files[0]) still('document', file.files[0]); });
    const reason = h('textarea', { id: 'refuse-reason', rows: 2, maxlength: 500 });
    const address = h('input', { id: 'principal-address', maxlength: 500, autocomplete: 'off' });
    const outcome = async (verified) => {
      if (!verified && !reason.value.trim()) {
        status.textContent = t('identity.reasonNeeded');
        reason.focus();
        return;
      }
      try {
        const body = { verified };
        if (!verified) body.reason = reason.value.trim();
        if (verified && address.value.trim()) body.address = address.value.trim();
        const res = await api.post(base + '/identity-checks/' + c.id + '/outcome', body);
        checks.set(res.id || c.id, Object.assign(c, res));
        renderChecks();
        status.textContent = verified ? t('identity.verifiedDone') : t('identity.refusedDone');
      } catch (err) {
        status.textContent = errorText(err);
      }
    };
    const d = c.document || {};
    const invited = room.nameOf(c.participant_id).name;
    const mismatch = nameMismatch(invited, d);
    replace(box,
      h('h4', null, t('identity.parsed')),
      mismatch && h('p', { class: 'warning', role: 'alert', id: 'name-mismatch' },
        t('identity.nameMismatch', { invited, document: [d.given_names, d.surname].filter(Boolean).join(' ') })),
      h('dl', { class: 'doc-fields' }, DOC_FIELDS.filter((f) => d[f]).map((f) => [h('dt', null, t('mrz.' + f)), h('dd', null, String(d[f]))])),
      h('div', { class: 'actions' }, faceBtn, docBtn, h('label', { for: 'document-photo', class: 'btn' }, t('identity.documentFile')), file),
      preview,
      h('div', { class: 'field' }, h('label', { for: 'principal-address' }, t('identity.address')), address,
        h('div', { class: 'field-hint' }, t('identity.addressHint'))),
      h('div', { class: 'field' }, h('label', { for: 'refuse-reason' }, t('identity.refuseReason')), reason),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn btn-primary', id: 'identity-verified', onclick: () => outcome(true) }, t('identity.verified')),
        h('button', { type: 'button', class: 'btn btn-danger', id: 'identity-refused', onclick: () => outcome(false) }, t('identity.refuse'))),
      status);
  }

  if (room.can('identity_check')) officerBox.append(officerPanel());

  room.addEventListener('identity_check', (e) => {
    const c = e.detail;
    checks.set(c.id, Object.assign(checks.get(c.id) || {}, c));
    renderChecks();
    if (room.can('seal') && c.status !== 'pending') {
      toast(c.status === 'verified' ? t('identity.notaryVerified', { name: room.nameOf(c.participant_id).name }) : t('identity.notaryRefused', { name: room.nameOf(c.participant_id).name }));
    }
  });
  // The room keeps room.session.act: from the welcome, then from act_updated.
  room.addEventListener('session', renderState);
  room.addEventListener('act_updated', () => { renderState(); renderDesignation(); });
  renderState();
  renderActions();
  renderDesignation();
  renderChecks();
  return {
    el,
    shown: () => { loadDocuments(); return loadChecks(); },
  };
}
