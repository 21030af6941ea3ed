// The documents panel: upload with a progress bar, the list with version,
// SHA-256 and signature state, viewing in the page, presenting a page to
// the room, labelling exhibits and signing. Used in the room and, without
// presenting, in the staff console.
import { t } from './i18n.js';
import { h, replace, toast, hashView, formatSize, formatDateTime, modal, field, announce } from './dom.js';
import { Api, errorText, errorWords, saveBlob, REAUTH_CHANNEL } from './api.js';
import { Viewer } from './viewer.js';

import vocab from './vocab.js';

const EXHIBIT_STATUSES = vocab.exhibit_statuses;

/**
 * documentsView renders a session's documents for one caller.
 * opts: {api, sessionId, kind, can(action), onPresent(doc)?, closed?}
 */
export function documentsView(opts) {
  const { api, sessionId, can } = opts;
  reauthOutcome();
  const list = h('ul', { class: 'doc-list', id: 'document-list', 'aria-live': 'polite' });
  const status = h('p', { class: 'muted', role: 'status' });
  const progress = h('progress', { max: 100, value: 0, hidden: true, id: 'upload-progress', 'aria-label': t('doc.uploadProgress') });
  const progressText = h('span', { class: 'progress-text', 'aria-hidden': 'true' });
  const viewerBox = h('div', { class: 'doc-viewer', hidden: true });
  let viewer = null;
  let uploading = null; // AbortController of the upload under way
  let cancelBtn = null;
  const el = h('div', { class: 'documents' });

  if (can('upload_document') && !opts.closed) {
    const input = h('input', { type: 'file', id: 'upload-input', class: 'file-input', accept: '.pdf,application/pdf,image/jpeg,image/png,video/webm,video/mp4,text/plain' });
    const label = h('label', { for: 'upload-input', class: 'btn' }, t('doc.upload'));
    cancelBtn = h('button', { type: 'button', class: 'btn btn-small', id: 'upload-cancel', hidden: true, onclick: () => { if (uploading) uploading.abort(); } }, t('doc.cancelUpload'));
    const drop = h('div', { class: 'drop-zone' }, label, input, h('span', { class: 'muted' }, t('doc.orDrop')), progress, progressText, cancelBtn);
    input.addEventListener('change', () => { if (input.files[0]) upload(input.files[0]).finally(() => { input.value = ''; }); });
    drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
    });
    el.append(drop);
  }
  el.append(status, list, viewerBox);

  async function upload(file) {
    if (uploading) return;
    uploading = new AbortController();
    progress.hidden = false;
    progress.value = 0;
    if (cancelBtn) cancelBtn.hidden = false;
    status.textContent = t('doc.uploading', { name: file.name });
    try {
      const res = await api.upload('/sessions/' + sessionId + '/documents?name=' + encodeURIComponent(file.name), file, (f) => {
        progress.value = Math.round(f * 100);
        progressText.textContent = Math.round(f * 100) + '%';
      }, file.type || guessType(file.name), uploading.signal);
      status.textContent = res.duplicate ? t('doc.duplicate', { name: res.name }) : t('doc.uploaded', { name: res.name, hash: res.sha256 });
      toast(res.duplicate ? t('doc.duplicate', { name: res.name }) : t('doc.uploadedShort', { name: res.name }));
      await refresh();
    } catch (err) {
      if (err.code === 'aborted') {
        status.textContent = t('doc.uploadCancelled', { name: file.name });
        announce(status.textContent);
      } else {
        status.textContent = t('doc.uploadFailed', { error: errorText(err) });
        toast(status.textContent, 'error');
      }
    } finally {
      uploading = null;
      progress.hidden = true;
      if (cancelBtn) cancelBtn.hidden = true;
      progressText.textContent = '';
    }
  }

  function row(d) {
    const isPDF = d.content_type === 'application/pdf';
    const sig = d.signatures > 0 ? t('doc.signed', { n: d.signatures }) : t('doc.unsigned');
    const actions = [
      h('button', { type: 'button', class: 'btn btn-small', onclick: () => view(d) }, t('doc.view')),
      h('button', { type: 'button', class: 'btn btn-small', onclick: () => download(d) }, t('doc.download')),
    ];
    if (isPDF && opts.onPresent && can('present')) {
      actions.push(h('button', { type: 'button', class: 'btn btn-small present', onclick: () => opts.onPresent(d, viewer && viewer.docId === d.id ? viewer.page : 1) }, t('doc.present')));
    }
    if (opts.kind === 'hearing' && can('label_exhibit') && !opts.closed) {
      actions.push(h('button', { type: 'button', class: 'btn btn-small', onclick: () => label(d) }, t('doc.label')));
    }
    if (isPDF && can('sign') && !opts.closed) {
      actions.push(h('button', { type: 'button', class: 'btn btn-small btn-primary sign', onclick: () => sign(d) }, t('doc.sign')));
    }
    // The hash and size shown are the newest version's (what is viewed,
    // presented and signed next); older versions are listed on request.
    const hash = newestHash(d);
    return h('li', { class: 'doc', dataset: { document: d.id, sha256: hash, signatures: String(d.signatures), version: String(d.version) } },
      h('div', { class: 'doc-main' },
        h('span', { class: 'doc-name' }, d.label ? h('strong', { class: 'exhibit-label' }, d.label + ' ') : null, d.name),
        h('div', { class: 'doc-meta' },
          h('span', { class: 'doc-version' }, d.version > 1 ? t('doc.versionOf', { n: d.version }) : t('doc.version', { n: d.version })), ' · ',
          h('span', { class: 'doc-size' }, formatSize(d.newest_size || d.size)), ' · ',
          h('span', null, t('doc.sha256'), ' ', hashView(hash)), ' · ',
          h('span', { class: d.signatures > 0 ? 'sig-yes' : 'sig-no' }, sig),
          d.status && [' · ', h('span', { class: 'exhibit-status status-' + d.status }, t('exhibit.' + d.status))]),
        h('div', { class: 'doc-meta muted' }, t('doc.uploadedAt', { when: formatDateTime(d.created_at) })),
        d.version > 1 && versionsList(d)),
      h('div', { class: 'doc-actions' }, actions));
  }

  /** versionsList is a disclosure listing every version with its own hash and size. */
  function versionsList(d) {
    const list = h('ol', { class: 'versions' });
    const details = h('details', { class: 'doc-versions' }, h('summary', null, t('doc.allVersions', { n: d.version })), list);
    details.addEventListener('toggle', async () => {
      if (!details.open || list.childNodes.length) return;
      try {
        const full = await api.get('/documents/' + d.id);
        replace(list, (full.versions || []).map((v) => h('li', { dataset: { version: String(v.version), sha256: v.sha256 } },
          t('doc.versionLine', { n: v.version, kind: t('doc.kind.' + v.kind), size: formatSize(v.size), who: v.signer || v.created_by }), ' ', hashView(v.sha256))));
      } catch (err) {
        replace(list, h('li', { class: 'field-error' }, errorText(err)));
      }
    });
    return details;
  }

  async function refresh() {
    try {
      const docs = await api.get('/sessions/' + sessionId + '/documents');
      replace(list, docs.length ? docs.map(row) : h('li', { class: 'muted' }, t('doc.none')));
      el.dataset.count = String(docs.length);
      return docs;
    } catch (err) {
      replace(list, h('li', { class: 'field-error' }, errorText(err)));
      return [];
    }
  }

  async function view(d) {
    if (!viewer) {
      viewer = new Viewer({ api, interactive: true });
      viewerBox.append(h('div', { class: 'doc-viewer-head' },
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => { viewer.close(); viewerBox.hidden = true; } }, t('common.close'))), viewer.el);
    }
    viewerBox.hidden = false;
    try {
      await viewer.show(d.id, 1);
      viewer.el.focus();
    } catch { /* the viewer shows why */ }
  }

  async function download(d) {
    try {
      saveBlob(await api.blob('/documents/' + d.id + '/content'), d.name);
    } catch (err) {
      toast(errorText(err), 'error');
    }
  }

  async function label(d) {
    const lab = h('input', { value: d.label || '', maxlength: 20, placeholder: 'P-1' });
    const st = h('select', null, EXHIBIT_STATUSES.map((s) => h('option', { value: s, selected: s === (d.status || 'submitted') }, t('exhibit.' + s))));
    const labField = field(t('doc.exhibitLabel'), lab, t('doc.exhibitHint'));
    const stField = field(t('doc.exhibitStatus'), st);
    const err = h('p', { class: 'field-error', role: 'alert' });
    await modal(t('doc.labelTitle', { name: d.name }), (close) => {
      const form = h('form', null, labField, stField, err, h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => close() }, t('common.cancel')),
        h('button', { type: 'submit', class: 'btn btn-primary' }, t('common.save'))));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        try {
          const change = { status: st.value };
          if (lab.value.trim()) change.label = lab.value.trim();
          await api.patch('/documents/' + d.id, change);
          close(true);
          await refresh();
        } catch (e2) {
          labField.setError(e2.fields && e2.fields.label);
          stField.setError(e2.fields && e2.fields.status);
          err.textContent = errorText(e2);
        }
      });
      return form;
    });
  }

  async function sign(d) {
    const reason = h('input', { id: 'sign-reason', required: true, maxlength: 200, value: opts.kind === 'notarisation' ? t('sign.defaultReasonAct') : '' });
    const location = h('input', { id: 'sign-location', required: true, maxlength: 200, autocomplete: 'address-level2' });
    const contact = h('input', { id: 'sign-contact', maxlength: 200, autocomplete: 'email' });
    // The token PIN is asked for only when the server says the signer's
    // identity needs it (a PKCS#11 key whose PIN is not stored).
    const pin = h('input', { id: 'sign-pin', type: 'password', maxlength: 128, autocomplete: 'off' });
    const fields = { reason: field(t('sign.reason'), reason), location: field(t('sign.location'), location, t('sign.locationHint')), contact: field(t('sign.contact'), contact, t('common.optional')), pin: field(t('sign.pin'), pin, t('sign.pinHint')) };
    fields.pin.hidden = true;
    const err = h('p', { class: 'field-error', role: 'alert' });
    // A signature with an identity the server holds is confirmed by a
    // recent sign-in at the provider: on reauthentication_required the
    // signer goes through the provider again in a window of its own, so
    // this page — a room, with its media — stays, and then presses Sign
    // again (nothing is signed by itself on return).
    let btn;
    let pending = null; // the channel of the re-authentication window last opened
    const reauthBtn = h('button', {
      type: 'button', class: 'btn', id: 'sign-reauth',
      onclick: () => {
        if (pending) pending.close();
        pending = reauthenticate(reauthBtn, err, confirmed);
      },
    }, t('sign.reauthButton'));
    const reauth = h('div', { class: 'notice', id: 'sign-reauth-box', hidden: true }, h('p', null, t('sign.reauth')), reauthBtn);
    const confirmed = (code) => {
      if (code) {
        err.textContent = reauthErrorText(code);
        return;
      }
      reauth.hidden = true;
      err.textContent = t('sign.reauthDone');
      btn.focus();
    };
    await modal(t('sign.title', { name: d.name }), (close) => {
      btn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'sign-submit' }, t('sign.submit'));
      const form = h('form', null, h('p', { id: 'sign-explain' }, t('sign.explain', { version: d.version, hash: newestHash(d).slice(0, 12) })), fields.reason, fields.location, fields.contact, fields.pin, err, reauth,
        h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', onclick: () => close() }, t('common.cancel')), btn));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        btn.disabled = true;
        err.textContent = t('sign.signing');
        for (const f of Object.values(fields)) f.setError('');
        try {
          const body = { reason: reason.value.trim(), location: location.value.trim() };
          if (contact.value.trim()) body.contact = contact.value.trim();
          if (!fields.pin.hidden && pin.value) body.pin = pin.value;
          const res = await api.post('/documents/' + d.id + '/signatures', body);
          close(true);
          toast(t('sign.done', { name: d.name, version: res.document.version }));
          await refresh();
        } catch (e2) {
          btn.disabled = false;
          for (const [k, v] of Object.entries(e2.fields || {})) if (fields[k]) fields[k].setError(v);
          err.textContent = errorText(e2);
          reauth.hidden = e2.code !== 'reauthentication_required';
          if (!reauth.hidden) reauthBtn.focus();
          if (PIN_CODES.includes(e2.code)) {
            fields.pin.hidden = false;
            fields.pin.setError(errorText(e2));
            pin.value = '';
            pin.focus();
          }
        }
      });
      setTimeout(() => (reason.value ? location : reason).focus(), 0);
      return form;
    });
    if (pending) pending.close();
  }

  return { el, refresh };
}

/**
 * reauthenticate sends the signer through the identity provider again in
 * the re-authentication window (/reauthenticate), and calls done with its
 * outcome ('' when confirmed, else a sign-in error code). Where no window
 * may open (a blocker), this page goes through the provider itself and
 * comes back (reauthOutcome). The button stays usable: a window closed
 * half-way cannot be seen from here, and pressing again reuses it.
 */
function reauthenticate(btn, err, done) {
  const channel = new BroadcastChannel(REAUTH_CHANNEL);
  const w = window.open('/reauthenticate', 'chamber-reauth', 'popup,width=560,height=720');
  if (!w) {
    channel.close();
    reauthenticateHere(btn, err);
    return null;
  }
  channel.onmessage = (e) => {
    channel.close();
    done((e.data && e.data.error) || '');
  };
  return channel;
}

/** reauthenticateHere sends this page through the provider and back (POST /auth/reauthenticate answers its address). */
async function reauthenticateHere(btn, err) {
  btn.disabled = true;
  try {
    const here = window.location.pathname + window.location.hash;
    const res = await new Api().post('/auth/reauthenticate', { return: here });
    window.location.assign(res.url);
  } catch (e) {
    btn.disabled = false;
    err.textContent = errorText(e);
  }
}

/** REAUTH_ERRORS are the refusals of a re-authentication the page comes back with. */
const REAUTH_ERRORS = ['reauthentication_not_done', 'denied', 'refused', 'unavailable', 'state', 'expired'];

/** reauthErrorText says why a re-authentication was refused: a sign-in's code, or the API's. */
function reauthErrorText(code) {
  if (REAUTH_ERRORS.includes(code)) return t('signin.error.' + code);
  const key = errorWords(code);
  return t(key || 'signin.error.refused');
}

/** reauthOutcome tells, once, why a re-authentication came back refused. */
function reauthOutcome() {
  const code = new URLSearchParams(window.location.search).get('sign_in_error');
  if (!code) return;
  history.replaceState(null, '', window.location.pathname + window.location.hash);
  toast(reauthErrorText(code), 'error');
}

/** PIN_CODES are the answers that ask the signer for their token's PIN. */
const PIN_CODES = ['pin_required', 'wrong_pin', 'pin_locked'];

/** newestHash is the newest version's SHA-256 (older servers sent only the original's). */
function newestHash(d) { return d.newest_sha256 || d.sha256; }

function guessType(name) {
  const ext = name.toLowerCase().split('.').pop();
  return { pdf: 'application/pdf', jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', webm: 'video/webm', mp4: 'video/mp4', txt: 'text/plain' }[ext] || 'application/octet-stream';
}

/** createDocumentsPanel is the room's documents panel; it refreshes while shown. */
export function createDocumentsPanel(room) {
  const view = documentsView({
    api: room.api, sessionId: room.sid, kind: room.session.kind, can: (a) => room.can(a),
    onPresent: (d, page) => room.present(d.id, page),
  });
  const el = h('section', { class: 'panel' }, h('h2', { class: 'panel-title' }, t('panel.documents')), view.el);
  // The server announces every upload, label and signature; the event
  // names the document only, and the list is fetched again through the API.
  room.addEventListener('documents_changed', () => { if (!el.hidden) view.refresh(); });
  const shown = () => view.refresh();
  return { el, shown, refresh: view.refresh };
}
