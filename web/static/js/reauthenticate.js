// /reauthenticate: the window a signer confirms it is them in, opened by
// the Sign dialog (documents.js) so that the page it came from — a room,
// with its media — stays as it is. Opened plainly, it sends itself through
// the identity provider (POST /auth/reauthenticate answers the address);
// back here with ?done, it tells the dialog how it went on REAUTH_CHANNEL
// and closes.
import { t, chooseLanguage } from './i18n.js';
import { h, replace, brand } from './dom.js';
import { Api, REAUTH_CHANNEL } from './api.js';

chooseLanguage();
document.title = t('reauth.title') + ' — ' + t('app.name');
const status = h('p', { id: 'reauth-status', role: 'status' }, t('reauth.going'));
replace(document.getElementById('app'),
  h('header', { class: 'topbar' }, brand('/')),
  h('main', { id: 'main', class: 'page-narrow' }, h('h1', null, t('reauth.title')), status));

const query = new URLSearchParams(window.location.search);
if (query.has('done')) finish(query.get('sign_in_error') || '');
else start();

/**
 * start goes to the provider, to come back to this window — only when a
 * Chamber page opened it: another site that links or opens here has no
 * opener (Cross-Origin-Opener-Policy cuts it off), and cannot start a
 * re-authentication in the signer's name.
 */
async function start() {
  if (!window.opener) {
    status.textContent = t('reauth.failed');
    return;
  }
  try {
    const res = await new Api().post('/auth/reauthenticate', { return: '/reauthenticate?done=1' });
    window.location.assign(res.url);
  } catch (e) {
    finish(e.code || 'unexpected');
  }
}

/** finish tells the dialog the outcome ('' when confirmed) and closes the window. */
function finish(code) {
  const channel = new BroadcastChannel(REAUTH_CHANNEL);
  channel.postMessage({ error: code });
  channel.close();
  status.textContent = t(code ? 'reauth.failed' : 'reauth.done');
  // Scripts may close a window a script opened; one opened otherwise
  // keeps the words above.
  window.close();
}
