// The join page (/join/{token}), the public watch page (/watch/{token})
// and a staff member's room (/room/{session}, opened from the console):
// device preview, name, the Join button, the waiting room, then the room.
//
// The token leaves the address bar at once (history.replaceState) and is
// kept in sessionStorage, so a reload or a reconnect still has it, while
// it never appears in history, bookmarks or screenshots of the address
// bar. Every page is served with Referrer-Policy: no-referrer.
import { t, chooseLanguage, roleLabel } from './i18n.js';
import { h, replace, announce, brand, languageSwitch } from './dom.js';
import { Api, ApiError, errorText } from './api.js';
import { getMedia, devices, LevelMeter, mediaErrorText } from './media.js';
import { Room } from './room.js';

chooseLanguage();

const app = document.getElementById('app');

/** takeToken moves the token from the path into sessionStorage. */
export function takeToken(loc = location, storage = sessionStorage, hist = history) {
  const m = loc.pathname.match(/^\/(join|watch)\/([^/]*)$/);
  if (!m) return { mode: 'join', token: '' };
  const mode = m[1];
  const fromURL = decodeURIComponent(m[2] || '');
  const key = 'chamber.' + mode;
  if (fromURL) {
    if (storage.getItem(key) !== fromURL) storage.removeItem(key + '.invitation');
    storage.setItem(key, fromURL);
    hist.replaceState(null, '', '/' + mode + '/');
  }
  return { mode, token: storage.getItem(key) || '' };
}

function shell(...children) {
  return replace(app,
    h('header', { class: 'topbar' }, brand(), h('div', { class: 'topbar-end' }, languageSwitch())),
    h('main', { id: 'main', class: 'page-narrow', tabindex: '-1' }, ...children));
}

function showError(title, text) {
  document.title = title + ' — ' + t('app.name');
  shell(h('section', { class: 'card notice notice-error', role: 'alert' }, h('h1', null, title), h('p', null, text)));
}

function showLoading() {
  shell(h('p', { class: 'loading', role: 'status' }, t('common.loading')));
}

function linkError(err) {
  if (err instanceof ApiError) {
    if (err.code === 'token_expired') return showError(t('join.expiredTitle'), t('join.expired'));
    if (err.code === 'token_revoked') return showError(t('join.revokedTitle'), t('join.revoked'));
    if (err.status === 401) return showError(t('join.invalidTitle'), t('join.invalid'));
  }
  showError(t('join.failedTitle'), errorText(err));
}

async function main() {
  const staff = location.pathname.match(/^\/room\/([0-9a-f-]{36})$/);
  if (staff) return enterAsStaff(staff[1]);
  const { mode, token } = takeToken();
  showLoading();
  if (!token) return showError(t('join.invalidTitle'), t('join.noToken'));
  if (mode === 'watch') return watch(token);
  return join(token);
}

// ——— invitation links ———

async function join(token) {
  const api = new Api(token);
  let me, session;
  try {
    me = await api.get('/me');
    if (me.kind !== 'participant') return showError(t('join.invalidTitle'), t('join.staffToken'));
    session = await api.get('/sessions/' + me.participant.session_id);
  } catch (err) {
    return linkError(err);
  }
  if (session.state === 'closed') return showError(t('join.closedTitle'), t('join.closed'));
  const perms = new Set(me.permissions);
  if (!perms.has('publish')) return enter({ api, token, me, session, media: null });
  preview({ api, token, me, session });
}

function sessionHeading(session) {
  return [
    h('h1', null, session.title),
    h('p', { class: 'muted' }, [session.case_number, t('kind.' + session.kind)].filter(Boolean).join(' · ')),
  ];
}

/** preview shows the camera and a level meter, device choice and the Join button. */
function preview(ctx) {
  const { me, session } = ctx;
  document.title = t('join.title', { title: session.title });
  const video = h('video', { class: 'preview-video mirror', autoplay: true, playsinline: true, muted: true, 'aria-label': t('join.previewLabel') });
  video.muted = true;
  const meterFill = h('div', { class: 'meter-fill' });
  const meter = h('div', { class: 'meter', role: 'meter', 'aria-label': t('join.micLevel'), 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0' }, meterFill);
  const meterStart = h('button', { type: 'button', class: 'btn btn-small', id: 'meter-start', hidden: true, onclick: () => level && level.resume() }, t('join.testMic'));
  const camSelect = h('select', { id: 'camera-select' });
  const micSelect = h('select', { id: 'mic-select' });
  const status = h('p', { class: 'media-status', role: 'status' });
  const joinBtn = h('button', { type: 'submit', class: 'btn btn-primary btn-large', id: 'join-button' }, t('join.join'));
  const camOn = h('input', { type: 'checkbox', id: 'cam-on', checked: true });
  const micOn = h('input', { type: 'checkbox', id: 'mic-on', checked: true });
  let stream = null;
  let level = null;
  let opening = null;
  let mediaError = null;

  function open(audioId, videoId) {
    opening = openDevices(audioId, videoId);
    return opening;
  }

  async function openDevices(audioId, videoId) {
    if (level) level.stop();
    if (stream) for (const tr of stream.getTracks()) tr.stop();
    stream = null;
    status.textContent = '';
    mediaError = null;
    try {
      stream = await getMedia({ audioId, videoId });
    } catch (err) {
      mediaError = err;
      status.textContent = mediaErrorText(err) + ' ' + t('join.canJoinWithout');
      return;
    }
    video.srcObject = stream;
    const a = stream.getAudioTracks()[0];
    if (a) {
      level = new LevelMeter(a, (v) => {
        meterFill.style.setProperty('width', Math.round(v * 100) + '%');
        meter.setAttribute('aria-valuenow', String(Math.round(v * 100)));
      });
      level.onResume = () => { meterStart.hidden = true; };
      meterStart.hidden = !level.suspended();
    }
    // The device lists are filled when the browser gives them; Join does
    // not wait for them (Firefox has been seen never to answer).
    const opened = stream;
    devices().then((list) => {
      if (stream !== opened) return;
      fillSelect(camSelect, list.video, opened.getVideoTracks()[0], t('join.noCamera'));
      fillSelect(micSelect, list.audio, a, t('join.noMic'));
    }).catch(() => {});
  }

  camSelect.addEventListener('change', () => open(micSelect.value || undefined, camSelect.value || undefined));
  micSelect.addEventListener('change', () => open(micSelect.value || undefined, camSelect.value || undefined));

  const form = h('form', { class: 'card join-card', 'aria-labelledby': 'join-heading' },
    h('div', { class: 'preview' }, video, h('div', { class: 'preview-label' }, me.participant.name)),
    h('div', { class: 'join-side' },
      h('h2', { id: 'join-heading' }, t('join.ready')),
      h('p', null, t('join.as', { name: me.participant.name, role: roleLabel(me.participant.role) })),
      h('div', { class: 'field' }, h('label', { for: 'camera-select' }, t('join.camera')), camSelect),
      h('div', { class: 'field' }, h('label', { for: 'mic-select' }, t('join.microphone')), micSelect),
      h('div', { class: 'field' }, h('span', { class: 'label', id: 'meter-label' }, t('join.micLevel')), meter, meterStart),
      h('div', { class: 'checks' },
        h('label', { for: 'cam-on' }, camOn, ' ', t('join.startCamera')),
        h('label', { for: 'mic-on' }, micOn, ' ', t('join.startMic'))),
      status,
      joinBtn));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    joinBtn.disabled = true;
    // Someone quick may click Join before the camera has started.
    if (opening) await opening.catch(() => {});
    if (level) level.stop();
    const media = stream ? { stream, audio: stream.getAudioTracks()[0] || null, video: stream.getVideoTracks()[0] || null } : null;
    if (media && !camOn.checked && media.video) { media.video.stop(); media.video = null; }
    if (media && !micOn.checked && media.audio) { media.audio.enabled = false; media.startMuted = true; }
    // A device that is missing or refused: the room says so, with a retry.
    const missing = [];
    if (camOn.checked && !(stream && stream.getVideoTracks().length)) missing.push('video');
    if (!(stream && stream.getAudioTracks().length)) missing.push('audio');
    enter(Object.assign({}, ctx, { media, videoId: camSelect.value, audioId: micSelect.value, missing, mediaError }));
  });
  shell(h('div', { class: 'join-head' }, sessionHeading(session)), form);
  open();
  joinBtn.focus();
}

function fillSelect(sel, list, track, none) {
  const current = track ? track.getSettings().deviceId : '';
  replace(sel, list.length ? list.map((d, i) => h('option', { value: d.deviceId, selected: d.deviceId === current }, d.label || (none + ' ' + (i + 1)))) : h('option', { value: '' }, none));
  sel.disabled = list.length === 0;
}

// ——— staff, as themselves ———

/**
 * enterAsStaff joins a session with the console's sign-in: the server
 * answers the staff member's one participant and a join ticket, which the
 * signalling connection presents instead of an invitation token.
 */
async function enterAsStaff(sid) {
  showLoading();
  const api = new Api();
  let entry, session;
  try {
    entry = await api.post('/sessions/' + sid + '/enter', {});
    session = await api.get('/sessions/' + sid);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return showError(t('room.signInTitle'), t('room.signIn'));
    return linkError(err);
  }
  if (session.state === 'closed') return showError(t('join.closedTitle'), t('join.closed'));
  // A hearing in progress is activity: keep the sign-in from idling out.
  setInterval(() => api.get('/me').catch(() => {}), 5 * 60 * 1000);
  const ctx = { api, token: entry.ticket, me: { kind: 'participant', participant: entry.participant, permissions: entry.permissions }, session };
  if (!entry.permissions.includes('publish')) return enter(Object.assign(ctx, { media: null }));
  preview(ctx);
}

// ——— public links ———

async function watch(publicToken) {
  const stored = sessionStorage.getItem('chamber.watch.invitation');
  if (stored) {
    const api = new Api(stored);
    try {
      const me = await api.get('/me');
      const session = await api.get('/sessions/' + me.participant.session_id);
      if (session.state !== 'closed') return enter({ api, token: stored, me, session, media: null });
    } catch { /* a stale viewer token: ask for the name again */ }
    sessionStorage.removeItem('chamber.watch.invitation');
  }
  const pub = new Api('');
  let desc;
  try {
    desc = await pub.get('/public/' + encodeURIComponent(publicToken));
  } catch (err) {
    return linkError(err);
  }
  if (desc.state === 'closed') return showError(t('join.closedTitle'), t('join.closed'));
  document.title = t('watch.title', { title: desc.title });
  const name = h('input', { id: 'watch-name', name: 'name', autocomplete: 'name', required: true, maxlength: 100 });
  const err = h('p', { class: 'field-error', role: 'alert' });
  const btn = h('button', { type: 'submit', class: 'btn btn-primary btn-large', id: 'join-button' }, t('join.join'));
  const form = h('form', { class: 'card' },
    h('p', null, t('watch.intro')),
    h('div', { class: 'field' }, h('label', { for: 'watch-name' }, t('watch.name')), name),
    err, btn);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    btn.disabled = true;
    err.textContent = '';
    try {
      const inv = await pub.post('/public/' + encodeURIComponent(publicToken) + '/join', { name: name.value.trim() });
      sessionStorage.setItem('chamber.watch.invitation', inv.token);
      const api = new Api(inv.token);
      const me = await api.get('/me');
      const session = await api.get('/sessions/' + me.participant.session_id);
      enter({ api, token: inv.token, me, session, media: null });
    } catch (e2) {
      btn.disabled = false;
      err.textContent = e2 instanceof ApiError && e2.fields && e2.fields.name ? e2.fields.name : errorText(e2);
    }
  });
  shell(h('div', { class: 'join-head' }, h('h1', null, desc.title), desc.case_number && h('p', { class: 'muted' }, desc.case_number)), form);
  name.focus();
}

// ——— the room ———

function enter(ctx) {
  const room = new Room(Object.assign({ app, onEnd: ended }, ctx));
  room.start();
  for (const kind of ctx.missing || []) room.reportMediaError(kind, ctx.mediaError || Object.assign(new Error(''), { name: 'NotFoundError' }));
  announce(t('room.connecting'));
}

function ended({ reason, kind, rejoin }) {
  const titles = {
    left: t('end.leftTitle'), removed: t('end.removedTitle'), closed: t('end.closedTitle'), refused: t('join.failedTitle'),
  };
  const texts = {
    left: t('end.left'), removed: t('end.removed'), closed: t('end.closed'), refused: reason || '',
  };
  document.title = titles[kind] + ' — ' + t('app.name');
  shell(h('section', { class: 'card notice', role: 'status' },
    h('h1', { tabindex: '-1', id: 'end-heading' }, titles[kind]),
    h('p', null, texts[kind]),
    rejoin && h('button', { type: 'button', class: 'btn btn-primary', onclick: () => location.reload() }, t('end.rejoin'))));
  document.getElementById('end-heading').focus();
}

main().catch((err) => showError(t('join.failedTitle'), errorText(err)));
