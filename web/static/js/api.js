// The REST client. A call carries the bearer token the Api was made with
// (a participant's invitation), or else the console's sign-in cookie,
// which the browser adds itself; every call also carries the header the
// server asks of cookie-authenticated requests (its CSRF defence). Errors
// come back as ApiError with the server's code, message and per-field
// problems ({"error":{"code","message","fields"}}).
import { t } from './i18n.js';

export class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message || code || ('HTTP ' + status));
    this.status = status;
    this.code = code || '';
    this.fields = fields || {};
  }
}

async function errorFrom(res) {
  let body = null;
  try { body = await res.json(); } catch { body = null; }
  const e = body && body.error ? body.error : {};
  return new ApiError(res.status, e.code, e.message || t('error.http', { status: res.status }), e.fields);
}

/** CSRF_HEADER goes with every request: the console's cookie is accepted only with it. */
export const CSRF_HEADER = 'X-Chamber-CSRF';

/**
 * REAUTH_CHANNEL is the BroadcastChannel on which the re-authentication
 * window (/reauthenticate) tells the page that opened it how it went:
 * {error: ''} when confirmed, else {error: code}. Not window.opener: the
 * identity provider's origin in between, under
 * Cross-Origin-Opener-Policy: same-origin, cuts the window off from it.
 */
export const REAUTH_CHANNEL = 'chamber-reauth';

/**
 * Api talks to /api/v1 with an invitation token, or — made without one —
 * with the console's sign-in cookie (staff) or nothing (public calls).
 */
export class Api {
  constructor(token) { this.token = token || ''; }

  headers(extra) {
    const h = Object.assign({ [CSRF_HEADER]: '1' }, extra);
    if (this.token) h.Authorization = 'Bearer ' + this.token;
    return h;
  }

  /** request returns the parsed JSON body (or null for 204). */
  async request(method, path, { json, body, headers, signal } = {}) {
    const init = {
      method, headers: this.headers(headers), signal, cache: 'no-store', referrerPolicy: 'no-referrer', credentials: 'same-origin',
    };
    if (json !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(json);
    } else if (body !== undefined) {
      init.body = body;
    }
    let res;
    try {
      res = await fetch('/api/v1' + path, init);
    } catch (err) {
      if (err && err.name === 'AbortError') throw err;
      throw new ApiError(0, 'network', t('error.network'));
    }
    if (!res.ok) throw await errorFrom(res);
    if (res.status === 204) return null;
    const ct = res.headers.get('Content-Type') || '';
    return ct.includes('json') ? res.json() : res;
  }

  get(path, opts) { return this.request('GET', path, opts); }
  post(path, json, opts) { return this.request('POST', path, Object.assign({ json }, opts)); }
  patch(path, json) { return this.request('PATCH', path, { json }); }
  put(path, json) { return this.request('PUT', path, { json }); }
  del(path) { return this.request('DELETE', path); }

  /** blob fetches a binary response (document content, bundle) as a Blob. */
  async blob(path) {
    const res = await this.request('GET', path);
    if (!(res instanceof Response)) throw new ApiError(0, 'unexpected', t('error.unexpected'));
    return res.blob();
  }

  /**
   * upload sends a file as the raw request body with XMLHttpRequest, whose
   * upload events drive a progress bar: onProgress(fraction 0…1).
   * Resolves with the JSON answer; rejects with ApiError. An AbortSignal
   * cancels it (ApiError code 'aborted').
   */
  upload(path, file, onProgress, contentType, signal) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      if (signal) {
        if (signal.aborted) {
          reject(new ApiError(0, 'aborted', t('error.aborted')));
          return;
        }
        signal.addEventListener('abort', () => xhr.abort(), { once: true });
      }
      xhr.open('POST', '/api/v1' + path);
      for (const [k, v] of Object.entries(this.headers())) xhr.setRequestHeader(k, v);
      xhr.setRequestHeader('Content-Type', contentType || file.type || 'application/octet-stream');
      xhr.responseType = 'json';
      xhr.upload.onprogress = (e) => { if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total); };
      xhr.onload = () => {
        const body = xhr.response;
        if (xhr.status >= 200 && xhr.status < 300) {
          if (onProgress) onProgress(1);
          resolve(body);
          return;
        }
        const e = body && body.error ? body.error : {};
        reject(new ApiError(xhr.status, e.code, e.message || t('error.http', { status: xhr.status }), e.fields));
      };
      xhr.onerror = () => reject(new ApiError(0, 'network', t('error.network')));
      xhr.onabort = () => reject(new ApiError(0, 'aborted', t('error.aborted')));
      xhr.send(file);
    });
  }
}

/** Saves a Blob as a download named name. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noreferrer';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/**
 * downloadBundle fetches a session's evidence bundle and saves it as
 * chamber-{sid}.zip. It returns '' when it worked, else why not, in words.
 */
export async function downloadBundle(api, sid) {
  try {
    saveBlob(await api.blob('/sessions/' + sid + '/bundle'), 'chamber-' + sid + '.zip');
    return '';
  } catch (err) {
    return err instanceof ApiError && err.status === 404 ? t('act.unavailable') : errorText(err);
  }
}

// Error codes (docs/signaling.md, fault/fault.go) and the words people
// read for them. A server's own message is shown only for a conflict,
// whose text is written to say what is missing ("the notary signs last").
const ERROR_WORDS = {
  internal: 'error.internal',
  invalid: 'error.invalid',
  bad_request: 'error.badRequest',
  bad_body: 'error.badRequest',
  bad_query: 'error.badRequest',
  bad_multipart: 'error.badRequest',
  malformed_json: 'error.badRequest',
  unknown_field: 'error.badRequest',
  empty: 'error.empty',
  not_found: 'error.notFound',
  forbidden: 'error.forbidden',
  unauthenticated: 'error.unauthenticated',
  token_expired: 'error.tokenExpired',
  token_revoked: 'error.tokenRevoked',
  too_large: 'error.tooLarge',
  unsupported_media_type: 'error.unsupported',
  malformed_pdf: 'error.malformedPdf',
  pdf_too_complex: 'error.pdfTooComplex',
  encrypted_pdf: 'error.encryptedPdf',
  invalid_mrz: 'error.invalidMrz',
  certificate_refused: 'error.certificateRefused',
  no_signing_identity: 'error.noSigningIdentity',
  pin_required: 'error.pinRequired',
  wrong_pin: 'error.wrongPin',
  pin_locked: 'error.pinLocked',
  reauthentication_required: 'error.reauthRequired',
  confirmation_required: 'error.confirmationRequired',
  rate_limited: 'error.rateLimited',
  unavailable: 'error.unavailable',
  busy: 'error.unavailable',
  nothing_to_change: 'error.badRequest',
  insufficient_storage: 'error.storage',
  canceled: 'error.aborted',
  aborted: 'error.aborted',
  network: 'error.network',
  waiting_room: 'error.waitingRoom',
  not_ready: 'error.notReady',
  ice_failed: 'error.iceFailed',
  unsupported_version: 'error.oldPage',
  unknown_type: 'error.oldPage',
  unexpected: 'error.unexpected',
};

/** errorWords is the catalog key for an error code ('' when it has none). */
export function errorWords(code) { return ERROR_WORDS[code] || ''; }

/** A message for an error from the API, in words a person can act on. */
export function errorText(err) {
  if (err instanceof ApiError) {
    if (err.code === 'conflict' && err.message) return err.message;
    const key = ERROR_WORDS[err.code];
    if (key) return t(key);
    return err.status >= 500 ? t('error.internal') : t('error.generic');
  }
  // Errors of the browser's own (a media device, a missing video) carry
  // a message written by this client.
  return (err && err.message) || String(err);
}
