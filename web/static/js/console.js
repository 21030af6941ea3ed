// The staff console at /: sign in with a staff token (kept in this tab's
// sessionStorage only), see sessions as a list and on a calendar, create a
// hearing or a notarial act, invite people and copy their links, open a
// session's participants, documents and journal, enter its room.
import { t, chooseLanguage, roleLabel } from './i18n.js';
import { h, replace, toast, formatDateTime, field, confirmDialog, announce, brand } from './dom.js';
import { Api, ApiError, errorText, downloadBundle } from './api.js';
import { documentsView } from './documents.js';
import { ROLES, inviteForm, linkBox, invitedBox } from './invite.js';

chooseLanguage();

const TOKEN_KEY = 'chamber.staff';
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

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  api = null;
  me = null;
  location.hash = '#/';
  signIn();
}

function signIn(message) {
  document.title = t('console.signInTitle') + ' — ' + t('app.name');
  const input = h('input', { type: 'password', id: 'staff-token', autocomplete: 'current-password', required: true, spellcheck: 'false' });
  const f = field(t('console.token'), input, t('console.tokenHint'));
  const btn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'sign-in' }, t('console.signIn'));
  const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-h' },
    h('h1', { id: 'signin-h' }, t('console.signInTitle')),
    h('p', null, t('console.signInIntro')), f, btn);
  if (message) f.setError(message);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    btn.disabled = true;
    const err = await start(input.value.trim());
    btn.disabled = false;
    if (err) f.setError(err);
  });
  layout(form);
  input.focus();
}

async function start(token) {
  const a = new Api(token);
  try {
    const who = await a.get('/me');
    if (who.kind !== 'staff') return t('console.notStaff');
    api = a;
    me = who;
    sessionStorage.setItem(TOKEN_KEY, token);
    route();
    return '';
  } catch (err) {
    return errorText(err);
  }
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
      'aria-label': label, 'aria-pressed': String(k === selectedDay), onclick: () => { selectedDay = k; listView(); },
    }, String(d), n ? h('span', { class: 'count' }, String(n)) : null)));
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
      s.kind === 'hearing' && [h('dt', null, t('console.public')), h('dd', null, s.public ? t('common.yes') : t('common.no'))]),
    h('div', { class: 'actions' },
      !closed && h('button', { type: 'button', class: 'btn btn-primary', id: 'enter-room', onclick: () => enterRoom(s) }, t('console.enterRoom')),
      !closed && s.public && can('public_link') && h('button', { type: 'button', class: 'btn', id: 'public-link', onclick: () => publicLink(s, invites) }, t('console.publicLink')),
      can('bundle') && h('button', { type: 'button', class: 'btn', onclick: () => bundle(s) }, t('act.bundle')),
      can('see_recording') && h('a', { class: 'btn', href: '/playback/' + s.id, id: 'open-playback' }, t('pb.title')),
      !closed && can('close') && h('button', { type: 'button', class: 'btn btn-danger', onclick: () => closeSession(s) }, t('session.close'))));

  const invite = !closed && can('invite') ? inviteForm({
    api, session: s, onError: handleAuth,
    onInvited: (inv) => { invites.prepend(invitedBox(inv)); loadPeople(s, people); },
  }) : null;
  layout(head,
    h('div', { class: 'console-grid' },
      h('div', null,
        invite && h('section', { class: 'card', 'aria-labelledby': 'inv-h' }, h('h2', { id: 'inv-h' }, t('console.invite')), invite, invites),
        h('section', { class: 'card', 'aria-labelledby': 'people-h' }, h('h2', { id: 'people-h' }, t('panel.people')), people)),
      h('div', null,
        h('section', { class: 'card', 'aria-labelledby': 'docs-h' }, h('h2', { id: 'docs-h' }, t('panel.documents')), docs.el),
        can('see_journal') && h('section', { class: 'card', 'aria-labelledby': 'journal-h' },
          h('h2', { id: 'journal-h' }, t('console.journal')),
          h('button', { type: 'button', class: 'btn', id: 'open-journal', onclick: () => loadJournal(s, journal) }, t('console.openJournal')), journal))));
  loadPeople(s, people);
  docs.refresh();
}

async function loadPeople(s, box) {
  try {
    const list = await api.get('/sessions/' + s.id + '/participants');
    const can = me.permissions.includes('revoke') && s.state !== 'closed';
    replace(box, list.length ? h('table', { class: 'table' },
      h('thead', null, h('tr', null, [t('console.name'), t('console.role'), t('console.space'), t('console.status'), ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, list.map((p) => h('tr', { dataset: { participant: p.id } },
        h('td', null, p.name), h('td', null, roleLabel(p.role)), h('td', null, spaceLabel(p.space)),
        h('td', null, p.revoked ? t('console.revoked') : p.connected ? t('console.connected') : t('console.notConnected')),
        h('td', null, can && !p.revoked && h('button', { type: 'button', class: 'btn btn-small btn-quiet', onclick: () => revoke(s, p, box) }, t('console.revoke')))))))
      : h('p', { class: 'muted' }, t('console.nobodyInvited')));
  } catch (err) {
    replace(box, h('p', { class: 'field-error' }, errorText(err)));
  }
}

function spaceLabel(space) {
  if (space === 'main') return t('space.main');
  if (space === 'waiting') return t('space.waiting');
  return t('space.consultation');
}

async function revoke(s, p, box) {
  if (!await confirmDialog(t('console.revokeTitle'), t('console.revokeConfirm', { name: p.name }), t('console.revoke'))) return;
  try {
    await api.del('/sessions/' + s.id + '/invitations/' + p.id);
    toast(t('console.revokedDone', { name: p.name }));
  } catch (err) {
    toast(errorText(err), 'error');
  }
  loadPeople(s, box);
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

/** enterRoom joins through an invitation for the staff member's own role, made once per tab. */
async function enterRoom(s) {
  const key = 'chamber.self.' + s.id;
  let url = sessionStorage.getItem(key);
  if (!url) {
    if (!ROLES[s.kind].includes(me.staff.role)) {
      toast(t('console.cannotEnter'), 'error');
      return;
    }
    try {
      const inv = await api.post('/sessions/' + s.id + '/invitations', { name: me.staff.name, role: me.staff.role });
      url = inv.join_url;
      sessionStorage.setItem(key, url);
    } catch (err) {
      toast(errorText(err), 'error');
      return;
    }
  }
  // Same origin only: the path carries the token, the host is ours.
  const u = new URL(url, location.href);
  window.open(u.pathname, '_blank', 'noopener,noreferrer');
}

async function publicLink(s, out) {
  try {
    const link = await api.post('/sessions/' + s.id + '/public-link', {});
    out.prepend(linkBox(t('console.publicLinkMade'), link.url, 'public-link'));
  } catch (err) {
    toast(errorText(err), 'error');
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
    sessionStorage.removeItem(TOKEN_KEY);
    api = null;
    me = null;
    signIn(errorText(err));
    return true;
  }
  return false;
}

window.addEventListener('hashchange', route);
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  start(saved).then((err) => { if (err) signIn(err); });
} else {
  signIn();
}
