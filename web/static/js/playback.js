// The playback page at /playback/{session}: a session's recordings played
// in sync — every participant's files at their offsets on one clock —
// beside the journal as a timeline (who joined, spoke, was muted, which
// page was shown). Choosing an entry goes to its moment; playing marks the
// current entry. The composite, when the server made one, plays below.
//
// The page signs in with a staff token (the console's, in this tab's
// sessionStorage, or typed here). The files are fetched by the <video>
// elements with the playback grant, an HttpOnly cookie the page renews
// while it is open (docs/recording.md, "Playback").
import { t, chooseLanguage } from './i18n.js';
import { h, replace, announce, brand, languageSwitch, formatDateTime, hashView, formatSize, field } from './dom.js';
import { Api, ApiError, errorText } from './api.js';
import { Clock, placement, needsSeek, timeline, current, clockText, msBetween, people } from './playback-model.js';

chooseLanguage();

const STAFF_KEY = 'chamber.staff';
const app = document.getElementById('app');
const sid = (location.pathname.match(/^\/playback\/([0-9a-f-]{36})$/) || [])[1] || '';

let api = null;
let grantTimer = null;
let player = null; // the recording on show: {clock, stop()}

// HOLD_MS is the longest the clock waits for a video's data.
const HOLD_MS = 3000;

function shell(...children) {
  return replace(app,
    h('a', { class: 'skip', href: '#main' }, t('common.skip')),
    h('header', { class: 'topbar' }, brand('/'), h('div', { class: 'topbar-end' }, languageSwitch())),
    h('main', { id: 'main', class: 'page', tabindex: '-1' }, ...children));
}

function showError(text) {
  document.title = t('pb.title') + ' — ' + t('app.name');
  shell(h('section', { class: 'card notice notice-error', role: 'alert' }, h('h1', null, t('pb.title')), h('p', null, text)));
}

function signIn(message) {
  document.title = t('console.signInTitle') + ' — ' + t('app.name');
  const input = h('input', { type: 'password', id: 'staff-token', autocomplete: 'current-password', required: true, spellcheck: 'false' });
  const f = field(t('console.token'), input, t('console.tokenHint'));
  const btn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'sign-in' }, t('console.signIn'));
  const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-h' },
    h('h1', { id: 'signin-h' }, t('console.signInTitle')), h('p', null, t('pb.signInIntro')), f, btn);
  if (message) f.setError(message);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    btn.disabled = true;
    const err = await start(input.value.trim());
    btn.disabled = false;
    if (err) f.setError(err);
  });
  shell(form);
  input.focus();
}

/** start opens the session's recordings with a token; it returns why not, in words. */
async function start(token) {
  const a = new Api(token);
  let session;
  let list;
  try {
    session = await a.get('/sessions/' + sid);
    list = await a.get('/sessions/' + sid + '/recordings');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      sessionStorage.removeItem(STAFF_KEY);
      return errorText(err);
    }
    if (!api) showError(errorText(err));
    return '';
  }
  api = a;
  sessionStorage.setItem(STAFF_KEY, token);
  try {
    await renewGrant();
  } catch (err) {
    showError(errorText(err));
    return '';
  }
  const [entries, docs] = await Promise.all([
    a.get('/sessions/' + sid + '/journal').catch(() => null),
    a.get('/sessions/' + sid + '/documents').catch(() => []),
  ]);
  page(session, list, entries, docs);
  return '';
}

/** renewGrant asks for the playback cookie and again before it expires. */
async function renewGrant() {
  clearTimeout(grantTimer);
  const g = await api.post('/sessions/' + sid + '/playback', {});
  const wait = Math.max(30000, new Date(g.renew_after).getTime() - Date.now());
  grantTimer = setTimeout(() => renewGrant().catch(() => {
    grantTimer = setTimeout(() => renewGrant().catch(() => {}), 30000);
  }), wait);
}

function page(session, list, entries, docs) {
  document.title = t('pb.titleOf', { title: session.title }) + ' — ' + t('app.name');
  const stage = h('div', { id: 'player' });
  const head = h('section', { class: 'card' },
    h('p', null, h('a', { href: '/#/session/' + sid }, '‹ ', t('console.back'))),
    h('h1', null, t('pb.titleOf', { title: session.title })));
  if (list.length === 0) {
    shell(head, h('p', { class: 'card muted', id: 'no-recordings' }, t('pb.none')));
    return;
  }
  const sel = h('select', { id: 'recording-select' }, list.map((r) => h('option', { value: r.id },
    t('pb.recordingOf', { start: formatDateTime(r.started_at), length: clockText(msBetween(r.started_at, r.stopped_at)) }))));
  sel.value = list[list.length - 1].id;
  sel.addEventListener('change', () => open(sel.value, stage, entries, docs));
  if (list.length > 1) head.append(h('div', { class: 'field inline' }, h('label', { for: 'recording-select' }, t('pb.choose')), sel));
  shell(head, stage);
  open(sel.value, stage, entries, docs);
}

async function open(id, stage, entries, docs) {
  if (player) player.stop();
  replace(stage, h('p', { role: 'status' }, t('common.loading')));
  let rec;
  try {
    rec = await api.get('/sessions/' + sid + '/recordings/' + id);
  } catch (err) {
    replace(stage, h('p', { class: 'field-error', role: 'alert' }, errorText(err)));
    return;
  }
  player = build(rec, stage, entries, docs);
}

/** fileURL is where a recording's file is served. */
function fileURL(rec, name) {
  return '/api/v1/sessions/' + sid + '/recordings/' + rec.id + '/files/' + encodeURIComponent(name);
}

function build(rec, stage, entries, docs) {
  const m = rec.manifest;
  const duration = msBetween(m.started_at, m.stopped_at);
  const clock = new Clock(duration);
  const names = people(m);
  const docNames = {};
  for (const d of docs || []) docNames[d.id] = d.label ? d.label + ' — ' + d.name : d.name;

  const tiles = m.files.map((f, i) => {
    const screen = f.stream_id.endsWith('-screen');
    const video = h('video', { preload: 'auto', playsInline: true, src: fileURL(rec, m.names[i]), dataset: { file: String(i) } });
    video.addEventListener('error', () => recover(video, fileURL(rec, m.names[i])));
    const el = h('figure', { class: 'pb-tile', dataset: { participant: f.participant_id, file: String(i), absent: t('pb.absent') } },
      video, h('figcaption', null, screen ? t('pb.screen', { name: f.participant_name }) : f.participant_name));
    return { f, el, video };
  });
  const list = timeline(entries || [], m);
  const items = list.map((e) => {
    const li = h('li', { class: e.kind === 'speaker' ? 'speaker' : null, dataset: { atMs: String(e.atMs), action: e.action } },
      h('button', { type: 'button', onclick: () => seek(e.atMs) }, h('span', { class: 'pb-at' }, clockText(e.atMs)), h('span', null, words(e, names, docNames))));
    return li;
  });

  const playBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'play' }, t('pb.play'));
  const slider = h('input', { type: 'range', id: 'seek', min: '0', max: String(duration), step: '100', value: '0', 'aria-label': t('pb.seek') });
  const time = h('span', { class: 'pb-time', id: 'time', 'aria-live': 'off' });
  playBtn.addEventListener('click', () => (clock.playing ? pause() : play()));
  slider.addEventListener('input', () => seek(Number(slider.value)));

  replace(stage, h('div', { class: 'playback-grid' },
    h('section', { 'aria-labelledby': 'people-h' },
      h('h2', { id: 'people-h', class: 'sr-only' }, t('pb.participants')),
      h('div', { class: 'pb-stage', id: 'stage' }, tiles.map((x) => x.el)),
      h('div', { class: 'pb-controls' }, playBtn, slider, time),
      rec.recovered && h('p', { class: 'muted' }, t('pb.recovered')),
      composite(rec),
      integrity(rec)),
    h('section', { class: 'card', 'aria-labelledby': 'journal-h' },
      h('h2', { id: 'journal-h' }, t('pb.journal')),
      entries === null ? h('p', { class: 'muted' }, t('pb.noJournal')) : h('p', { class: 'muted' }, t('pb.journalHint')),
      h('ol', { class: 'pb-timeline', id: 'timeline' }, items))));

  let shown = -2;
  let heldSince = 0;
  function tick() {
    const pos = clock.position();
    const places = tiles.map((x) => placement(x.f, pos));
    // The clock waits for a video that has no data yet (after a seek, on a
    // slow line), a few seconds at most; a video near its end never holds it.
    const starved = clock.playing && tiles.some((x, i) => places[i].active && places[i].local < x.f.duration_ms - 500 &&
      x.video.readyState < 3 && !x.video.ended);
    if (!starved) heldSince = 0;
    else if (!heldSince) heldSince = performance.now();
    const wait = starved && performance.now() - heldSince < HOLD_MS;
    if (clock.playing) {
      if (wait) clock.hold();
      else clock.resume();
    }
    const run = clock.playing && !wait;
    tiles.forEach((x, i) => {
      const p = places[i];
      x.el.classList.toggle('absent', !p.active);
      if (!p.active) {
        if (!x.video.paused) x.video.pause();
        return;
      }
      if (needsSeek(x.video.currentTime, p.local)) x.video.currentTime = p.local / 1000;
      if (run && x.video.paused && !x.video.ended) x.video.play().catch(() => {});
      if (!run && !x.video.paused) x.video.pause();
    });
    if (clock.playing && clock.ended()) pause();
    slider.value = String(Math.round(pos));
    time.textContent = t('pb.time', { pos: clockText(pos), length: clockText(duration) });
    stage.dataset.position = String(Math.round(pos));
    mark(pos);
  }
  function mark(pos) {
    const i = current(list, pos);
    if (i !== shown) {
      if (shown >= 0) { items[shown].classList.remove('current'); items[shown].removeAttribute('aria-current'); }
      if (i >= 0) {
        items[i].classList.add('current');
        items[i].setAttribute('aria-current', 'true');
        if (clock.playing) items[i].scrollIntoView({ block: 'nearest' });
      }
      shown = i;
    }
    const speaker = (m.speakers || []).filter((s) => s.at_ms <= pos).pop();
    for (const x of tiles) x.el.classList.toggle('speaking', !!speaker && speaker.participant_id === x.f.participant_id);
  }
  function play() {
    clock.play();
    playBtn.textContent = t('pb.pause');
    stage.dataset.playing = '1';
    tick();
  }
  function pause() {
    clock.pause();
    playBtn.textContent = t('pb.play');
    stage.dataset.playing = '0';
    tick();
  }
  function seek(ms) {
    clock.seek(ms);
    tick();
    announce(t('pb.time', { pos: clockText(ms), length: clockText(duration) }));
  }
  const timer = setInterval(tick, 100);
  tick();
  return { clock, stop() { clearInterval(timer); for (const x of tiles) { x.video.pause(); x.video.removeAttribute('src'); x.video.load(); } } };
}

/** recover reloads a video whose file failed (an expired grant), once a grant is renewed. */
async function recover(video, url) {
  if (video.dataset.retried) return;
  video.dataset.retried = '1';
  try {
    await renewGrant();
    const at = video.currentTime;
    video.src = url;
    video.currentTime = at;
  } catch { /* the page shows the video as it is */ }
}

function composite(rec) {
  const c = rec.composite || { state: 'none' };
  const box = h('section', { class: 'card pb-composite', id: 'composite', dataset: { state: c.state } }, h('h2', null, t('pb.composite')));
  switch (c.state) {
    case 'stored': {
      const url = fileURL(rec, c.name);
      const slot = h('div');
      box.append(h('p', null, t('pb.compositeStored')),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'btn', id: 'composite-play', onclick: () => replace(slot, h('video', { controls: true, src: url, id: 'composite-video' })) }, t('pb.compositePlay')),
          h('a', { class: 'btn', href: url, download: c.name }, t('pb.compositeDownload'))),
        h('p', { class: 'muted' }, formatSize(c.size), ' · SHA-256 ', hashView(c.sha256)), slot);
      break;
    }
    case 'pending': box.append(h('p', null, t('pb.compositePending'))); break;
    case 'failed': box.append(h('p', null, t('pb.compositeFailed'))); break;
    case 'unavailable': box.append(h('p', null, t('pb.compositeUnavailable'))); break;
    default: box.append(h('p', null, t('pb.compositeNone')));
  }
  return box;
}

function integrity(rec) {
  const m = rec.manifest;
  return h('details', { class: 'card pb-files' }, h('summary', null, t('pb.integrity')),
    h('ul', null,
      h('li', null, h('a', { href: fileURL(rec, 'manifest.json'), download: 'manifest.json' }, t('pb.manifest')), ' · ', hashView(rec.manifest_sha256)),
      m.files.map((f, i) => h('li', null, h('a', { href: fileURL(rec, m.names[i]), download: m.names[i] }, f.participant_name + ' — ' + m.names[i]),
        ' · ', formatSize(f.size), ' · ', hashView(f.sha256)))));
}

/** words says what a timeline entry means. */
function words(e, names, docNames) {
  const d = e.details || {};
  const name = d.name || names[d.participant_id] || t('pb.someone');
  switch (e.action) {
    case 'speaker': return d.participant_id ? t('pb.speaks', { name: names[d.participant_id] || t('pb.someone') }) : t('pb.nobodySpeaks');
    case 'participant.joined': return t('pb.joined', { name });
    case 'participant.left': return t('pb.left', { name });
    case 'participant.admitted': return t('pb.admitted', { name });
    case 'participant.moved': return t('pb.moved', { name });
    case 'participant.removed': return t('pb.removed', { name });
    case 'participant.muted':
      if (d.audio_muted && d.video_muted) return t('pb.mutedBoth', { name });
      if (d.audio_muted) return t('pb.mutedAudio', { name });
      if (d.video_muted) return t('pb.mutedVideo', { name });
      return t('pb.unmuted', { name });
    case 'participant.hand_raised': return t('pb.handRaised', { name });
    case 'participant.hand_lowered': return t('pb.handLowered', { name });
    case 'document.presented':
      if (!d.document_id) return t('pb.presentEnded');
      return t('pb.presented', { document: docNames[d.document_id] || t('pb.aDocument'), page: d.page });
    case 'chat.message': return t('pb.chat', { name, text: d.text || '' });
    case 'chat.consultation': return t('pb.chatConsultation', { name });
    case 'recording.started': return t('pb.recordingStarted');
    case 'recording.stopped': return t('pb.recordingStopped');
    case 'recording.recovered': return t('pb.recordingStopped');
    case 'consultation.opened': return t('pb.consultationOpened');
    case 'consultation.closed': return t('pb.consultationClosed');
    case 'interpreter.linked': return t('pb.interpreter', { name });
    case 'identity.decided': return t('pb.identity');
    case 'document.signed': return t('pb.signed');
    case 'session.closed': return t('pb.closed');
    default: return e.action;
  }
}

if (!sid) {
  showError(t('pb.noSession'));
} else {
  const saved = sessionStorage.getItem(STAFF_KEY);
  if (saved) {
    shell(h('p', { role: 'status' }, t('common.loading')));
    start(saved).then((err) => { if (err) signIn(err); });
  } else {
    signIn();
  }
}
