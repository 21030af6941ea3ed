// Inviting someone to a session: the form (name and role) and the box
// that shows a new link with a Copy button. The staff console and the
// room's people panel both use them.
import { t, roleLabel } from './i18n.js';
import { h, toast, copyText, field } from './dom.js';
import { errorText } from './api.js';

import vocab from './vocab.js';

/** ROLES are the participant roles of each session kind, from the server (js/vocab.js is generated). */
export const ROLES = vocab.roles;

/**
 * inviteForm asks for a name and a role (one of roles, by default all of
 * the session's kind) and invites them to session; onInvited(inv)
 * receives each invitation made. onError(err), if given, may take an
 * error over by returning true; otherwise the form shows it.
 */
export function inviteForm({ api, session, roles = ROLES[session.kind], onInvited, onError }) {
  const name = h('input', { id: 'inv-name', required: true, maxlength: 200, autocomplete: 'off' });
  const role = h('select', { id: 'inv-role' }, roles.map((r) => h('option', { value: r }, roleLabel(r))));
  const fName = field(t('console.inviteName'), name);
  const fRole = field(t('console.inviteRole'), role);
  const btn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'invite-send' }, t('console.inviteSend'));
  const form = h('form', { class: 'invite-form' }, fName, fRole, btn);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    fName.setError('');
    fRole.setError('');
    btn.disabled = true;
    try {
      const inv = await api.post('/sessions/' + session.id + '/invitations', { name: name.value.trim(), role: role.value });
      onInvited(inv);
      name.value = '';
      name.focus();
    } catch (err) {
      if (onError && onError(err)) return;
      fName.setError((err.fields && err.fields.name) || '');
      fRole.setError((err.fields && err.fields.role) || (err.fields && err.fields.name ? '' : errorText(err)));
    }
    btn.disabled = false;
  });
  return form;
}

/** linkBox shows a link the server gives out only once, with a Copy button. */
export function linkBox(title, url, cls) {
  const input = h('input', { readonly: true, value: url, class: 'link-output ' + cls, 'aria-label': title, onfocus: (e) => e.target.select() });
  return h('div', { class: 'link-box' }, h('p', null, h('strong', null, title), ' ', h('span', { class: 'muted' }, t('console.linkOnce'))),
    h('div', { class: 'link-row' }, input, h('button', { type: 'button', class: 'btn btn-small', onclick: async () => toast(await copyText(url) ? t('common.copied') : t('common.copyFailed')) }, t('common.copy'))));
}

/** invitedBox is the link box for a new invitation. */
export function invitedBox(inv) {
  return linkBox(t('console.invited', { name: inv.name, role: roleLabel(inv.role) }), inv.join_url, 'join-link');
}
