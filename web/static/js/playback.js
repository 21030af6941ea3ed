// The playback page at /playback/{session}: a session's recordings played
// in sync — every participant's files at their offsets on one clock —
// beside the journal as a timeline (who joined, spoke, was muted, which
// page was shown). Choosing an entry goes to its moment; playing marks the
// current entry. The composite, when the server made one, plays below.
//
// The page works with the console's sign-in: its cookie goes with every
// API call and with the <video> elements' range requests for the files,
// each checked for see_recording (docs/recording.md, "Playback"). Signed
// out, the page says to sign in on the console and come back.
import { t, chooseLanguage } from './i18n.js';
import { h, replace, announce, brand, languageSwitch, formatDateTime, hashView, formatSize } from './dom.js';
import { Api, ApiError, errorText } from './api.js';
import { Clock, placement, needsSeek, timeline, current, clockText, msBetween, people } from './playback-model.js';

chooseLanguage();

const app = document.getElementById('app');
const sid = (location.pathname.match(/^\/playback\/([0-9a-f-]{36})$/) || [])[1] || '';

let api = null;
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

/** signIn sends a signed-out visitor to the console, and back here after. */
function signIn(message) {
  document.title = t('room.signInTitle') + ' — ' + t('app.name');
  shell(h('section', { class: 'card signin', role: 'alert', 'aria-labelledby': 'signin-h' },
    h('h1', { id: 'signin-h' }, t('room.signInTitle')),
    message && h('p', { class: 'field-error' }, message),
    h('p', null, t('pb.signIn')),
    h('a', { class: 'btn btn-primary', id: 'to-console', href: '/#/session/' + sid }, t('pb.toConsole'))));
}

/** start opens the session's recordings with the console's sign-in. */
async function start() {
  const a = new Api();
  let session;
  let list;
  try {
    session = await a.get('/sessions/' + sid);
    list = await a.get('/sessions/' + sid + '/recordings');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signIn(err.code === 'token_expired' ? t('signin.expired') : err.code === 'token_revoked' ? t('signin.ended') : '');
      return;
    }
    showError(errorText(err));
    return;
  }
  api = a;
  const [entries, docs] = await Promise.all([
    a.get('/sessions/' + sid + '/journal').catch(() => null),
    a.get('/sessions/' + sid + '/documents').catch(() => []),
  ]);
  page(session, list, entries, docs);
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

  // grid carries the clock's position and state for tests (data-position, data-playing).
  const grid = h('div', { class: 'pb-stage', id: 'stage' }, tiles.map((x) => x.el));
  replace(stage, h('div', { class: 'playback-grid' },
    h('section', { 'aria-labelledby': 'people-h' },
      h('h2', { id: 'people-h', class: 'sr-only' }, t('pb.participants')),
      grid,
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
    grid.dataset.position = String(Math.round(pos));
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
    grid.dataset.playing = '1';
    tick();
  }
  function pause() {
    clock.pause();
    playBtn.textContent = t('pb.play');
    grid.dataset.playing = '0';
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

/**
 * recover reloads a video whose file failed once (a dropped connection);
 * a sign-in that ended shows as the sign-in page.
 */
async function recover(video, url) {
  if (video.dataset.retried) return;
  video.dataset.retried = '1';
  try {
    await api.get('/me');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { if (player) player.stop(); signIn(t('signin.ended')); }
    return;
  }
  const at = video.currentTime;
  video.src = url;
  video.currentTime = at;
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
  shell(h('p', { role: 'status' }, t('common.loading')));
  start();
}
