// Inviting someone to a session: the form (name and role) and the box
// that shows a new link with a Copy button. The staff console and the
// room's people panel both use them.
import { t, roleLabel } from './i18n.js';
import { h, toast, copyText, field } from './dom.js';
import { errorText } from './api.js';

import vocab from './vocab.js';

/** ROLES are the participant roles of each session kind, from the server (js/vocab.js is generated). */
export const ROLES = vocab.roles;

/** OFFICIALS are the roles only staff hold, assigned and never invited (from the server). */
export const OFFICIALS = vocab.officials;

/**
 * inviteForm asks for a name and a role (one of roles, by default all of
 * the session's kind) and invites them to session; onInvited(inv)
 * receives each invitation made. onError(err), if given, may take an
 * error over by returning true; otherwise the form shows it.
 */
export function inviteForm({ api, session, roles = ROLES[session.kind], onInvited, onError, contact = false }) {
  const name = h('input', { id: 'inv-name', required: true, maxlength: 200, autocomplete: 'off' });
  const role = h('select', { id: 'inv-role' }, roles.map((r) => h('option', { value: r }, roleLabel(r))));
  // An e-mail contact, when given, receives the link (and later changes of time).
  const email = contact ? h('input', { id: 'inv-email', type: 'email', maxlength: 254, autocomplete: 'off' }) : null;
  const fName = field(t('console.inviteName'), name);
  const fRole = field(t('console.inviteRole'), role);
  const fEmail = email ? field(t('console.inviteEmail'), email, t('console.inviteEmailHint')) : null;
  const btn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'invite-send' }, t('console.inviteSend'));
  const form = h('form', { class: 'invite-form' }, fName, fRole, fEmail, btn);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    fName.setError('');
    fRole.setError('');
    if (fEmail) fEmail.setError('');
    btn.disabled = true;
    try {
      const body = { name: name.value.trim(), role: role.value };
      if (email && email.value.trim()) body.contact = { email: email.value.trim(), language: document.documentElement.lang || 'en' };
      const inv = await api.post('/sessions/' + session.id + '/invitations', body);
      onInvited(inv);
      name.value = '';
      if (email) email.value = '';
      name.focus();
    } catch (err) {
      if (onError && onError(err)) return;
      const fields = err.fields || {};
      const mailProblem = fields['contact.email'] || fields.contact || fields['contact.language'] || '';
      fName.setError(fields.name || '');
      if (fEmail) fEmail.setError(mailProblem);
      fRole.setError(fields.role || (fields.name || mailProblem ? '' : errorText(err)));
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
