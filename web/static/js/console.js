// The staff console at /: sign in — with the court's OpenID provider, or
// on a server without one the clearly labelled development sign-in; the
// server keeps the sign-in in an HttpOnly cookie the page never sees —, see
// sessions as a list and on a calendar, create a hearing or a notarial act,
// assign its officials and invite everyone else, open a session's
// participants, documents and journal, enter its room as yourself.
import { t, chooseLanguage, roleLabel } from './i18n.js';
import { h, replace, toast, formatDateTime, field, confirmDialog, modal, announce, brand } from './dom.js';
import { Api, ApiError, errorText, downloadBundle } from './api.js';
import { documentsView } from './documents.js';
import { ROLES, OFFICIALS, inviteForm, linkBox, invitedBox } from './invite.js';
import { invitableRoles } from './roles.js';
import { recordingState } from './store.js';

chooseLanguage();

const app = document.getElementById('app');
const ACT_TYPES = ['will', 'contract', 'power_of_attorney', 'property_sale', 'other'];

let api = null;
let me = null;
let month = startOfMonth(new Date());
let selectedDay = null;

function startOfMonth(d) { return new Date(d.getFullYear(), d.getMonth(), 1); }
function dayKey(d) { return d.getFullYear() + '-' + String(d.getMonth() + 1).padStart(2, '0') + '-' + String(d.getDate()).padStart(2, '0'); }

function layout(...children) {
  const nav = me ? h('nav', { class: 'topnav', 'aria-label': t('console.nav') },
    h('a', { href: '#/' }, t('console.sessions')),
    me.permissions.includes('create_session') && h('a', { href: '#/new' }, t('console.new')),
    h('a', { href: '/verify' }, t('verify.title'))) : null;
  const who = me ? h('div', { class: 'who' }, me.staff.name, ' · ', roleLabel(me.staff.role), ' ',
    h('button', { type: 'button', class: 'btn btn-small btn-quiet', id: 'sign-out', onclick: signOut }, t('console.signOut'))) : null;
  replace(app,
    h('a', { class: 'skip', href: '#main' }, t('common.skip')),
    h('header', { class: 'topbar' }, brand('#/'), nav, who),
    h('main', { id: 'main', class: 'page', tabindex: '-1' }, ...children));
}

async function signOut() {
  let out = null;
  try {
    out = await new Api().post('/auth/logout', {});
  } catch { /* signed out already */ }
  api = null;
  me = null;
  // The provider's own logout ends its single sign-on too, when it offers one.
  if (out && out.logout_url && /^https?:\/\//.test(out.logout_url)) {
    location.assign(out.logout_url);
    return;
  }
  location.hash = '#/';
  signIn();
}

/** SIGN_IN_ERRORS are the codes /auth/callback sends back instead of a sign-in. */
const SIGN_IN_ERRORS = ['state', 'expired', 'refused', 'denied', 'not_provisioned', 'no_role', 'disabled', 'unavailable', 'bootstrap_used', 'reauthentication_other_account'];

/** signInError reads, once, why a provider sign-in came back refused. */
function signInError() {
  const code = new URLSearchParams(location.search).get('sign_in_error');
  if (!code) return '';
  history.replaceState(null, '', location.pathname + location.hash);
  return t('signin.error.' + (SIGN_IN_ERRORS.includes(code) ? code : 'refused'));
}

async function signIn(message) {
  document.title = t('console.signInTitle') + ' — ' + t('app.name');
  const boot = location.hash.match(/^#\/bootstrap\/([A-Za-z0-9_-]{20,100})$/);
  let cfg;
  try {
    cfg = await new Api().get('/auth/config');
  } catch (err) {
    layout(h('section', { class: 'card signin notice notice-error', role: 'alert' }, h('h1', null, t('console.signInTitle')), h('p', null, errorText(err))));
    return;
  }
  const problem = h('p', { class: 'field-error', role: 'alert', id: 'sign-in-error' }, message || signInError());
  const card = h('section', { class: 'card signin', 'aria-labelledby': 'signin-h' }, h('h1', { id: 'signin-h' }, t('console.signInTitle')), problem);
  if (boot) {
    card.append(bootstrapForm(cfg, boot[1], problem));
  } else if (cfg.provider) {
    const back = location.hash && location.hash !== '#/' ? '/' + location.hash : '/';
    card.append(h('p', null, t('signin.providerIntro')),
      h('a', { class: 'btn btn-primary btn-large', id: 'sign-in-provider', href: '/auth/login?return=' + encodeURIComponent(back) }, t('signin.provider')));
  } else if (cfg.development) {
    card.append(devSignIn(cfg, problem));
  } else {
    card.append(h('p', null, t('signin.none')));
  }
  layout(card);
  const first = card.querySelector('select, input, a.btn');
  if (first) first.focus();
}

/** devSignIn is the development sign-in: choose a staff member, or create one. */
function devSignIn(cfg, problem) {
  const staff = cfg.staff || [];
  const warn = h('div', { class: 'banner', role: 'note', id: 'dev-sign-in-warning' }, t('signin.devWarning'));
  const choose = h('select', { id: 'dev-staff' }, staff.map((s) => h('option', { value: s.id }, s.name + ' — ' + roleLabel(s.role))));
  const pick = h('form', null, field(t('signin.devAs'), choose),
    h('button', { type: 'submit', class: 'btn btn-primary', id: 'dev-sign-in' }, t('console.signIn')));
  pick.addEventListener('submit', (e) => {
    e.preventDefault();
    devStart({ staff_id: choose.value }, problem);
  });
  const name = h('input', { id: 'dev-name', required: true, maxlength: 200, autocomplete: 'off' });
  const role = h('select', { id: 'dev-role' }, ['clerk', 'judge', 'notary', 'embassy_officer', 'admin'].map((r) => h('option', { value: r }, roleLabel(r))));
  const create = h('form', null, h('h2', null, t('signin.devNew')), field(t('console.name'), name), field(t('console.role'), role),
    h('button', { type: 'submit', class: 'btn', id: 'dev-create' }, t('signin.devCreate')));
  create.addEventListener('submit', (e) => {
    e.preventDefault();
    devStart({ name: name.value.trim(), role: role.value }, problem);
  });
  return h('div', null, warn, staff.length ? pick : h('p', { class: 'muted' }, t('signin.devNobody')), create);
}

async function devStart(body, problem) {
  problem.textContent = '';
  try {
    await new Api().post('/auth/development', body);
  } catch (err) {
    problem.textContent = errorText(err);
    return;
  }
  const err = await start();
  if (err) problem.textContent = err;
}

/** bootstrapForm makes the first administrator, with the link the server logged. */
function bootstrapForm(cfg, token, problem) {
  if (cfg.provider) {
    return h('div', null, h('p', null, t('signin.bootstrapProvider')),
      h('a', { class: 'btn btn-primary', id: 'bootstrap-provider', href: '/auth/login?return=%2F&bootstrap=' + encodeURIComponent(token) }, t('signin.provider')));
  }
  const name = h('input', { id: 'bootstrap-name', required: true, maxlength: 200, autocomplete: 'name' });
  const form = h('form', null, h('p', null, t('signin.bootstrapIntro')), field(t('console.name'), name),
    h('button', { type: 'submit', class: 'btn btn-primary', id: 'bootstrap-submit' }, t('signin.bootstrapCreate')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    problem.textContent = '';
    try {
      await new Api().post('/auth/bootstrap', { token, name: name.value.trim() });
    } catch (err) {
      problem.textContent = errorText(err);
      return;
    }
    history.replaceState(null, '', '/#/');
    const err = await start();
    if (err) problem.textContent = err;
  });
  return form;
}

/** start asks whom the console's cookie signs in: '' when signed in, else why not. */
async function start() {
  const a = new Api();
  try {
    const who = await a.get('/me');
    if (who.kind !== 'staff') return t('console.notStaff');
    api = a;
    me = who;
    route();
    return '';
  } catch (err) {
    return signedOutText(err);
  }
}

/** signedOutText says why the console's sign-in no longer works ('' for never signed in). */
function signedOutText(err) {
  if (!(err instanceof ApiError) || err.status !== 401) return errorText(err);
  if (err.code === 'token_expired') return t('signin.expired');
  if (err.code === 'token_revoked') return t('signin.ended');
  return '';
}

async function route() {
  if (!api) return signIn();
  const hash = location.hash || '#/';
  let m;
  if (hash === '#/new') return createView();
  if ((m = hash.match(/^#\/session\/([0-9a-f-]{36})$/))) return sessionView(m[1]);
  return listView();
}

// ——— sessions list and calendar ———

async function listView() {
  document.title = t('console.sessions') + ' — ' + t('app.name');
  const listBox = h('div', { class: 'session-list', id: 'session-list' }, h('p', { role: 'status' }, t('common.loading')));
  const cal = h('div', { class: 'calendar' });
  const stateSel = h('select', { id: 'state-filter' },
    h('option', { value: '' }, t('console.allStates')),
    ['scheduled', 'open', 'closed'].map((s) => h('option', { value: s }, t('state.' + s))));
  layout(h('div', { class: 'console-head' }, h('h1', null, t('console.sessions')),
    me.permissions.includes('create_session') && h('a', { class: 'btn btn-primary', href: '#/new', id: 'new-session' }, t('console.new'))),
  h('div', { class: 'console-grid' },
    h('section', { 'aria-labelledby': 'cal-h', class: 'card' }, h('h2', { id: 'cal-h', class: 'sr-only' }, t('console.calendar')), cal),
    h('section', { 'aria-labelledby': 'list-h', class: 'card' },
      h('div', { class: 'list-head' }, h('h2', { id: 'list-h' }, selectedDay ? t('console.onDay', { day: new Date(selectedDay + 'T00:00').toLocaleDateString() }) : t('console.allSessions')),
        h('div', { class: 'field inline' }, h('label', { for: 'state-filter' }, t('console.state')), stateSel),
        selectedDay && h('button', { type: 'button', class: 'btn btn-small', onclick: () => { selectedDay = null; listView(); } }, t('console.showAll'))),
      listBox)));
  let sessions = [];
  try {
    sessions = await api.get('/sessions');
  } catch (err) {
    return handleAuth(err) || replace(listBox, h('p', { class: 'field-error' }, errorText(err)));
  }
  const draw = () => {
    const st = stateSel.value;
    let shown = sessions.filter((s) => !st || s.state === st);
    if (selectedDay) shown = shown.filter((s) => s.scheduled_at && dayKey(new Date(s.scheduled_at)) === selectedDay);
    shown.sort((a, b) => (a.scheduled_at || a.created_at).localeCompare(b.scheduled_at || b.created_at));
    replace(listBox, shown.length ? h('ul', { class: 'sessions' }, shown.map(sessionItem)) : h('p', { class: 'muted' }, t('console.noSessions')));
    drawCalendar(cal, sessions);
  };
  stateSel.addEventListener('change', draw);
  draw();
}

function sessionItem(s) {
  return h('li', { class: 'session-item state-' + s.state },
    h('a', { href: '#/session/' + s.id, class: 'session-link' }, s.title),
    h('div', { class: 'session-meta' },
      h('span', { class: 'badge badge-' + s.state }, t('state.' + s.state)), ' ',
      t('kind.' + s.kind),
      s.case_number && ' · ' + s.case_number,
      s.scheduled_at && ' · ' + formatDateTime(s.scheduled_at)));
}

function drawCalendar(box, sessions) {
  const byDay = new Map();
  for (const s of sessions) {
    if (!s.scheduled_at) continue;
    const k = dayKey(new Date(s.scheduled_at));
    if (!byDay.has(k)) byDay.set(k, []);
    byDay.get(k).push(s);
  }
  const first = startOfMonth(month);
  const title = first.toLocaleDateString(undefined, { month: 'long', year: 'numeric' });
  const weekdays = [];
  // Weeks start on Monday, as court calendars in Europe do.
  for (let i = 0; i < 7; i++) weekdays.push(new Date(2024, 0, 1 + i).toLocaleDateString(undefined, { weekday: 'short' }));
  const offset = (first.getDay() + 6) % 7;
  const days = new Date(first.getFullYear(), first.getMonth() + 1, 0).getDate();
  const cells = [];
  for (let i = 0; i < offset; i++) cells.push(h('td', { class: 'empty' }));
  const today = dayKey(new Date());
  for (let d = 1; d <= days; d++) {
    const date = new Date(first.getFullYear(), first.getMonth(), d);
    const k = dayKey(date);
    const n = (byDay.get(k) || []).length;
    const label = date.toLocaleDateString(undefined, { dateStyle: 'full' }) + (n ? ', ' + t('console.nSessions', { n }) : '');
    cells.push(h('td', null, h('button', {
      type: 'button', class: 'day' + (n ? ' has' : '') + (k === today ? ' today' : '') + (k === selectedDay ? ' selected' : ''),
      'aria-pressed': String(k === selectedDay), onclick: () => { selectedDay = k; listView(); },
    // The name is the full date and count, said in words; the figures shown
    // are hidden from it (an aria-label without them fails WCAG 2.5.3).
    }, h('span', { 'aria-hidden': 'true' }, String(d)), n ? h('span', { class: 'count', 'aria-hidden': 'true' }, String(n)) : null,
    h('span', { class: 'sr-only' }, label))));
  }
  const rows = [];
  for (let i = 0; i < cells.length; i += 7) rows.push(h('tr', null, cells.slice(i, i + 7)));
  replace(box,
    h('div', { class: 'cal-head' },
      h('button', { type: 'button', class: 'btn btn-small', 'aria-label': t('console.prevMonth'), onclick: () => { month = new Date(month.getFullYear(), month.getMonth() - 1, 1); drawCalendar(box, sessions); } }, '‹'),
      h('h3', { 'aria-live': 'polite' }, title),
      h('button', { type: 'button', class: 'btn btn-small', 'aria-label': t('console.nextMonth'), onclick: () => { month = new Date(month.getFullYear(), month.getMonth() + 1, 1); drawCalendar(box, sessions); } }, '›')),
    h('table', { class: 'cal', role: 'grid', 'aria-label': title },
      h('thead', null, h('tr', null, weekdays.map((w) => h('th', { scope: 'col' }, w)))),
      h('tbody', null, rows)));
}

// ——— create ———

function kindsFor(role) {
  if (role === 'admin') return ['hearing', 'notarisation'];
  if (role === 'notary') return ['notarisation'];
  return ['hearing'];
}

function createView() {
  document.title = t('console.new') + ' — ' + t('app.name');
  const kinds = kindsFor(me.staff.role);
  const kind = h('select', { id: 'new-kind' }, kinds.map((k) => h('option', { value: k }, t('kind.' + k))));
  const title = h('input', { id: 'new-title', required: true, maxlength: 300 });
  const caseNo = h('input', { id: 'new-case', maxlength: 100 });
  const actType = h('select', { id: 'new-act-type' }, ACT_TYPES.map((a) => h('option', { value: a }, t('actType.' + a))));
  const when = h('input', { id: 'new-when', type: 'datetime-local' });
  const pub = h('input', { id: 'new-public', type: 'checkbox' });
  const fields = {
    kind: field(t('console.kind'), kind), title: field(t('console.title'), title), case_number: field(t('console.caseNumber'), caseNo, t('common.optional')),
    act_type: field(t('console.actType'), actType), scheduled_at: field(t('console.when'), when, t('console.whenHint')),
  };
  const pubField = h('div', { class: 'field check' }, h('label', { for: 'new-public' }, pub, ' ', t('console.public')), h('div', { class: 'field-hint' }, t('console.publicHint')));
  const err = h('p', { class: 'field-error', role: 'alert' });
  const sync = () => {
    const act = kind.value === 'notarisation';
    fields.act_type.hidden = !act;
    pubField.hidden = act;
  };
  kind.addEventListener('change', sync);
  const btn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'create-session' }, t('console.create'));
  const form = h('form', { class: 'card form-wide' }, h('h1', null, t('console.new')), Object.values(fields), pubField, err,
    h('div', { class: 'actions' }, h('a', { class: 'btn', href: '#/' }, t('common.cancel')), btn));
  sync();
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const f of Object.values(fields)) f.setError('');
    err.textContent = '';
    const body = { kind: kind.value, title: title.value.trim() };
    if (caseNo.value.trim()) body.case_number = caseNo.value.trim();
    if (kind.value === 'notarisation') body.act_type = actType.value;
    else if (pub.checked) body.public = true;
    if (when.value) body.scheduled_at = new Date(when.value).toISOString();
    btn.disabled = true;
    try {
      const s = await api.post('/sessions', body);
      toast(t('console.created', { title: s.title }));
      location.hash = '#/session/' + s.id;
    } catch (e2) {
      btn.disabled = false;
      if (handleAuth(e2)) return;
      for (const [k, v] of Object.entries(e2.fields || {})) if (fields[k]) fields[k].setError(v);
      err.textContent = errorText(e2);
    }
  });
  layout(form);
  title.focus();
}

// ——— one session ———

async function sessionView(id) {
  layout(h('p', { role: 'status' }, t('common.loading')));
  let s;
  try {
    s = await api.get('/sessions/' + id);
  } catch (err) {
    if (handleAuth(err)) return;
    return layout(h('p', { class: 'field-error' }, errorText(err)), h('a', { href: '#/' }, t('console.back')));
  }
  document.title = s.title + ' — ' + t('app.name');
  const can = (a) => me.permissions.includes(a);
  const closed = s.state === 'closed';
  const people = h('div', { id: 'participants' });
  const journal = h('div', { id: 'journal' });
  const invites = h('div', { class: 'invites', id: 'invitations', 'aria-live': 'polite' });
  const docs = documentsView({ api, sessionId: s.id, kind: s.kind, can, closed });

  const head = h('section', { class: 'card session-head' },
    h('p', null, h('a', { href: '#/' }, '‹ ', t('console.back'))),
    h('h1', null, s.title),
    h('dl', { class: 'facts' },
      h('dt', null, t('console.kind')), h('dd', null, t('kind.' + s.kind) + (s.act_type ? ' — ' + t('actType.' + s.act_type) : '')),
      s.case_number && [h('dt', null, t('console.caseNumber')), h('dd', null, s.case_number)],
      h('dt', null, t('console.state')), h('dd', null, h('span', { class: 'badge badge-' + s.state, id: 'session-state' }, t('state.' + s.state))),
      s.scheduled_at && [h('dt', null, t('console.when')), h('dd', null, formatDateTime(s.scheduled_at))],
      s.act && [h('dt', null, t('panel.act')), h('dd', null, t('act.state.' + s.act.state) + (s.act.number ? ' · ' + s.act.number : ''))],
      s.kind === 'hearing' && [h('dt', null, t('console.public')), h('dd', null, s.public ? t('common.yes') : t('common.no'))],
      s.recording && recordingState(s.recording) !== 'off' && [h('dt', null, t('console.recording')),
        h('dd', { id: 'recording-state', dataset: { state: recordingState(s.recording) } },
          recordingState(s.recording) === 'recording' ? t('room.recording') : t('recording.storagePending'))]),
    h('div', { class: 'actions' },
      !closed && ROLES[s.kind].includes(me.staff.role) && h('button', { type: 'button', class: 'btn btn-primary', id: 'enter-room', onclick: () => enterRoom(s) }, t('console.enterRoom')),
      !closed && can('reschedule') && h('button', { type: 'button', class: 'btn', id: 'reschedule', onclick: () => reschedule(s) }, t('console.reschedule')),
      !closed && s.public && can('public_link') && h('button', { type: 'button', class: 'btn', id: 'public-link', onclick: () => publicLink(s, invites) }, t('console.publicLink')),
      !closed && s.public && can('public_link') && h('button', { type: 'button', class: 'btn', id: 'public-link-rotate', onclick: () => rotatePublicLink(s, invites) }, t('console.publicLinkRotate')),
      !closed && s.public && can('public_link') && h('button', { type: 'button', class: 'btn btn-danger', id: 'public-link-revoke', onclick: () => revokePublicLink(s) }, t('console.publicLinkRevoke')),
      can('bundle') && h('button', { type: 'button', class: 'btn', onclick: () => bundle(s) }, t('act.bundle')),
      can('see_recording') && h('a', { class: 'btn', href: '/playback/' + s.id, id: 'open-playback' }, t('pb.title')),
      !closed && can('close') && h('button', { type: 'button', class: 'btn btn-danger', onclick: () => closeSession(s) }, t('session.close'))));

  // Only the roles this staff member may invite: never an official, who is assigned.
  const invitable = invitableRoles(ROLES[s.kind], OFFICIALS, me.may_invite);
  const invite = !closed && can('invite') && invitable.length ? inviteForm({
    api, session: s, roles: invitable, onError: handleAuth, contact: true,
    onInvited: (inv) => { invites.prepend(invitedBox(inv)); loadPeople(s, people, invites); },
  }) : null;
  const officials = !closed && can('assign_staff') && ROLES[s.kind].some((r) => me.may_assign.includes(r))
    ? assignForm(s, () => loadPeople(s, people, invites)) : null;
  layout(head,
    h('div', { class: 'console-grid' },
      h('div', null,
        officials && h('section', { class: 'card', 'aria-labelledby': 'assign-h' }, h('h2', { id: 'assign-h' }, t('console.assign')),
          h('p', { class: 'muted' }, t('console.assignIntro')), officials),
        invite && h('section', { class: 'card', 'aria-labelledby': 'inv-h' }, h('h2', { id: 'inv-h' }, t('console.invite')), invite, invites),
        h('section', { class: 'card', 'aria-labelledby': 'people-h' }, h('h2', { id: 'people-h' }, t('panel.people')), people)),
      h('div', null,
        h('section', { class: 'card', 'aria-labelledby': 'docs-h' }, h('h2', { id: 'docs-h' }, t('panel.documents')), docs.el),
        can('see_journal') && h('section', { class: 'card', 'aria-labelledby': 'journal-h' },
          h('h2', { id: 'journal-h' }, t('console.journal')),
          h('button', { type: 'button', class: 'btn', id: 'open-journal', onclick: () => loadJournal(s, journal) }, t('console.openJournal')), journal))));
  loadPeople(s, people, invites);
  docs.refresh();
}

/**
 * assignForm lets the clerk pick the judge (the notary the embassy officer)
 * from the staff list: officials take part as themselves, never by link.
 */
function assignForm(s, onAssigned) {
  const pick = h('select', { id: 'assign-staff' });
  const btn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'assign-send' }, t('console.assignSend'));
  const f = field(t('console.assignWho'), pick);
  const form = h('form', { class: 'invite-form' }, f, btn);
  const load = async () => {
    try {
      const list = await api.get('/sessions/' + s.id + '/assignable-staff');
      replace(pick, list.length ? list.map((m) => h('option', { value: m.id, dataset: { role: m.role } }, m.name + ' — ' + roleLabel(m.role)))
        : h('option', { value: '' }, t('console.assignNobody')));
      pick.disabled = btn.disabled = list.length === 0;
    } catch (err) {
      if (!handleAuth(err)) f.setError(errorText(err));
    }
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    f.setError('');
    btn.disabled = true;
    try {
      const p = await api.post('/sessions/' + s.id + '/assignments', { staff_id: pick.value });
      toast(t('console.assigned', { name: p.name, role: roleLabel(p.role) }));
      onAssigned();
    } catch (err) {
      if (!handleAuth(err)) f.setError(errorText(err));
    }
    load();
  });
  load();
  return form;
}

/**
 * loadPeople lists everyone in the session; an invitation shows its
 * e-mail contact and how the letter fared, with Re-send (a new link
 * replaces the old one at once, and is e-mailed when there is a contact).
 */
async function loadPeople(s, box, invites) {
  try {
    const list = await api.get('/sessions/' + s.id + '/participants');
    const open = s.state !== 'closed';
    const mayInvite = open && me.permissions.includes('invite');
    // Contacts are personal data the server shows only to those who invite.
    const mails = new Map();
    if (mayInvite) {
      try {
        for (const m of await api.get('/sessions/' + s.id + '/invitations')) mails.set(m.participant_id, m);
      } catch { /* the contacts stay unknown */ }
    }
    const may = (p) => open && !p.revoked && (p.staff_id ? me.may_assign.includes(p.role) : me.permissions.includes('revoke'));
    const contact = (p) => {
      const m = mails.get(p.id);
      if (!m) return '';
      return h('span', { class: 'contact' }, m.email, m.status && h('span', { class: 'muted mail-status', dataset: { status: m.status } }, ' · ' + t('mail.status.' + m.status)));
    };
    replace(box, list.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', null, h('tr', null, [t('console.name'), t('console.role'), t('console.contact'), t('console.space'), t('console.status'), ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, list.map((p) => h('tr', { dataset: { participant: p.id, staff: p.staff_id || '' } },
        h('td', null, p.name), h('td', null, roleLabel(p.role) + (p.staff_id ? ' · ' + t('console.staff') : '')), h('td', null, contact(p)), h('td', null, spaceLabel(p.space)),
        h('td', null, p.revoked ? t('console.revoked') : p.connected ? t('console.connected') : t('console.notConnected')),
        h('td', { class: 'row-actions' },
          mayInvite && !p.staff_id && !p.revoked && !p.public_join && h('button', { type: 'button', class: 'btn btn-small resend', onclick: () => resend(s, p, box, invites) }, t('console.resend')),
          may(p) && h('button', { type: 'button', class: 'btn btn-small btn-quiet', onclick: () => revoke(s, p, box, invites) },
            p.staff_id ? t('console.unassign') : t('console.revoke'))))))))
      : h('p', { class: 'muted' }, t('console.nobodyInvited')));
  } catch (err) {
    replace(box, h('p', { class: 'field-error' }, errorText(err)));
  }
}

/** resend replaces an invitation's link; the new one is shown once (and e-mailed to its contact). */
async function resend(s, p, box, invites) {
  if (!await confirmDialog(t('console.resendTitle'), t('console.resendConfirm', { name: p.name }), t('console.resend'))) return;
  try {
    const inv = await api.post('/sessions/' + s.id + '/invitations/' + p.id + '/reissue', {});
    invites.prepend(linkBox(t('console.resent', { name: inv.name }), inv.join_url, 'join-link'));
    toast(inv.mail ? t('console.resentMail', { name: inv.name }) : t('console.resent', { name: inv.name }));
  } catch (err) {
    if (!handleAuth(err)) toast(errorText(err), 'error');
  }
  loadPeople(s, box, invites);
}

/** reschedule sets the session's time; everyone with an e-mail contact is told. */
async function reschedule(s) {
  const when = h('input', { id: 'reschedule-when', type: 'datetime-local', required: true });
  if (s.scheduled_at) when.value = localInput(new Date(s.scheduled_at));
  const f = field(t('console.when'), when, t('console.rescheduleHint'));
  const ok = await modal(t('console.rescheduleTitle'), (close) => {
    const form = h('form', null, f, h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'btn', onclick: () => close(false) }, t('common.cancel')),
      h('button', { type: 'submit', class: 'btn btn-primary', id: 'reschedule-send' }, t('console.rescheduleSend'))));
    form.addEventListener('submit', (e) => { e.preventDefault(); close(true); });
    return form;
  });
  if (!ok) return;
  if (!when.value) return toast(t('console.rescheduleNoTime'), 'error');
  try {
    await api.patch('/sessions/' + s.id, { scheduled_at: new Date(when.value).toISOString() });
    toast(t('console.rescheduled'));
    sessionView(s.id);
  } catch (err) {
    if (!handleAuth(err)) toast(errorText(err), 'error');
  }
}

/** localInput formats a time for a datetime-local input, in the browser's zone. */
function localInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes());
}

function spaceLabel(space) {
  if (space === 'main') return t('space.main');
  if (space === 'waiting') return t('space.waiting');
  return t('space.consultation');
}

async function revoke(s, p, box, invites) {
  if (p.staff_id) {
    if (!await confirmDialog(t('console.unassignTitle'), t('console.unassignConfirm', { name: p.name }), t('console.unassign'))) return;
  } else if (!await confirmDialog(t('console.revokeTitle'), t('console.revokeConfirm', { name: p.name }), t('console.revoke'))) return;
  try {
    if (p.staff_id) await api.del('/sessions/' + s.id + '/assignments/' + p.staff_id);
    else await api.del('/sessions/' + s.id + '/invitations/' + p.id);
    toast(t(p.staff_id ? 'console.unassignedDone' : 'console.revokedDone', { name: p.name }));
  } catch (err) {
    toast(errorText(err), 'error');
  }
  loadPeople(s, box, invites);
}

async function loadJournal(s, box) {
  replace(box, h('p', { role: 'status' }, t('common.loading')));
  try {
    const entries = await api.get('/sessions/' + s.id + '/journal');
    replace(box, h('p', { class: 'muted' }, t('console.journalNote', { n: entries.length })),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table journal-table' },
        h('thead', null, h('tr', null, [t('console.seq'), t('console.time'), t('console.actor'), t('console.action'), t('console.details'), t('console.hash')].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, entries.map((e) => h('tr', null,
          h('td', null, String(e.seq)), h('td', null, formatDateTime(e.at)), h('td', null, e.actor), h('td', null, h('code', null, e.action)),
          h('td', { class: 'details' }, summarize(e.details)), h('td', null, h('code', { class: 'hash', title: e.hash }, e.hash.slice(0, 10) + '…'))))))));
    announce(t('console.journalLoaded', { n: entries.length }));
  } catch (err) {
    replace(box, h('p', { class: 'field-error' }, errorText(err)));
  }
}

function summarize(details) {
  if (!details || typeof details !== 'object') return details === undefined || details === null ? '' : String(details);
  return Object.entries(details).filter(([, v]) => v !== null && v !== '' && typeof v !== 'object').map(([k, v]) => k + ': ' + v).join(', ');
}

/**
 * enterRoom opens the room as yourself: every tab and device of yours is
 * the same participant, so the same session's tab is reused.
 */
function enterRoom(s) {
  window.open('/room/' + encodeURIComponent(s.id), 'chamber-room-' + s.id);
}

async function publicLink(s, out) {
  try {
    const link = await api.post('/sessions/' + s.id + '/public-link', {});
    out.prepend(linkBox(t('console.publicLinkMade'), link.url, 'public-link'));
  } catch (err) {
    toast(errorText(err), 'error');
  }
}

/** rotatePublicLink revokes every public link of the hearing and shows the new one. */
async function rotatePublicLink(s, out) {
  if (!await confirmDialog(t('console.publicLinkRotate'), t('console.publicLinkRotateConfirm'), t('console.publicLinkRotate'))) return;
  try {
    const link = await api.post('/sessions/' + s.id + '/public-link/rotate', {});
    for (const old of out.querySelectorAll('.public-link')) old.closest('.link-box').remove();
    out.prepend(linkBox(t('console.publicLinkRotated'), link.url, 'public-link'));
  } catch (err) {
    if (!handleAuth(err)) toast(errorText(err), 'error');
  }
}

/** revokePublicLink ends every public link: nobody joins through them any more. */
async function revokePublicLink(s) {
  if (!await confirmDialog(t('console.publicLinkRevoke'), t('console.publicLinkRevokeConfirm'), t('console.publicLinkRevoke'))) return;
  try {
    await api.del('/sessions/' + s.id + '/public-link');
    for (const old of document.querySelectorAll('.public-link')) old.closest('.link-box').remove();
    toast(t('console.publicLinkRevoked'));
  } catch (err) {
    if (!handleAuth(err)) toast(errorText(err), 'error');
  }
}

async function bundle(s) {
  const problem = await downloadBundle(api, s.id);
  if (problem) toast(problem, 'error');
}

async function closeSession(s) {
  if (!await confirmDialog(t('session.closeTitle'), t('session.closeConfirm'), t('session.close'))) return;
  try {
    await api.post('/sessions/' + s.id + '/close', {});
    toast(t('session.closed'));
    sessionView(s.id);
  } catch (err) {
    toast(errorText(err), 'error');
  }
}

function handleAuth(err) {
  if (err instanceof ApiError && err.status === 401) {
    api = null;
    me = null;
    signIn(signedOutText(err) || errorText(err));
    return true;
  }
  return false;
}

window.addEventListener('hashchange', () => {
  if (api || location.hash.startsWith('#/bootstrap/')) route();
});
start().then((err) => { if (!api) signIn(err); });
