// Audio/video sync of a recording, in Chromium, over five minutes with a
// reload in the middle (docs/recording.md, "Timestamps"). Chromium's fake
// camera and microphone play files made here with ffmpeg: a white frame
// every two seconds on black, and a 100 ms beep at the same instants on
// silence. A party publishes them; the recording's files are fetched
// through the API; ffprobe finds each flash (the first frame whose mean
// luma jumps) and ffmpeg each beep's onset (the end of a silence), in the
// recorded file's own timeline.
//
// What the recorder must keep is the sync the browser captured, and on a
// loaded machine Chromium's file camera falls behind real time (it never
// skips a frame, so a late frame makes every later one late: on the
// shared 2-core machine, flashes came 2016 ms apart on average while the
// beeps stayed exactly 2000 ms apart). So the page also watches its own
// camera and microphone (MediaStreamTrackProcessor on clones of the
// tracks the room captured) and notes when each flash and beep was
// captured. For every recorded flash, the recorded offset from its first
// frame to the nearest beep must be within 40 ms of the captured offset
// between the same frame and the same beep (each recorded file is laid on
// the page's clock by its beeps to tell which captured marker is which).
// A flash the encoder dropped has no counterpart and is not a sync error,
// nor is a flash with a frame seen twice (Chromium repeats a stalled
// source's last frame with a new time); at least 60 % of the markers must
// be measured.
//
// CHAMBER_AVSYNC_SECONDS shortens the recording when iterating (default
// 300).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { env, api, probe, Person } from './lib/harness.mjs';

const SECONDS = Number(process.env.CHAMBER_AVSYNC_SECONDS || 300);
const EVERY = 2; // seconds between markers
const LOOP = 20; // seconds of the fake capture files, which Chromium loops
const FPS = 30;
const TOLERANCE_MS = 40;
// A flash is three frames, each of its own grey, so that a frame the
// encoder dropped under load is told apart from the one after it: each
// recorded flash frame is compared with the captured frame of its grey.
const LEVELS = ['0xF0F0F0', '0xB4B4B4', '0x787878'];

/** level says which frame of a flash a grey is (0, 1, 2), or -1 for none. */
function level(v) {
  if (v > 200) return 0;
  if (v > 145) return 1;
  if (v > 90) return 2;
  return -1;
}

function run(cmd, ...args) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

/** captureFiles makes the fake camera's y4m and the fake microphone's wav. */
function captureFiles(dir) {
  const y4m = path.join(dir, 'flash.y4m');
  const wav = path.join(dir, 'beep.wav');
  run('ffmpeg', '-v', 'error', '-f', 'lavfi', '-i', `color=c=black:s=320x240:r=${FPS}:d=${LOOP}`,
    '-vf', LEVELS.map((c, i) => `drawbox=c=${c}:t=fill:enable='eq(mod(n\\,${EVERY * FPS})\\,${i})'`).join(','),
    '-pix_fmt', 'yuv420p', '-f', 'yuv4mpegpipe', y4m);
  run('ffmpeg', '-v', 'error', '-f', 'lavfi', '-i', `aevalsrc='if(lt(mod(t\\,${EVERY})\\,0.1)\\,0.8*sin(2*PI*1000*t)\\,0)':s=48000:d=${LOOP}`,
    '-ac', '1', '-c:a', 'pcm_s16le', wav);
  return { y4m, wav };
}

/**
 * flashes lists each flash's first recorded frame: its time (ms, in the
 * file's timeline) and which frame of the flash it is (by its mean luma,
 * which is 16–235: the levels' greys are about 222, 171 and 119).
 */
function flashes(file) {
  const out = run('ffprobe', '-v', 'error', '-f', 'lavfi', '-i', `movie=${file},signalstats`,
    '-show_entries', 'frame=pts_time:frame_tags=lavfi.signalstats.YAVG', '-of', 'csv=p=0');
  const found = [];
  let dark = true;
  for (const line of out.trim().split('\n')) {
    const [pts, yavg] = line.split(',').map(Number);
    const l = level(yavg);
    if (l >= 0 && dark) found.push({ at: pts * 1000, level: l, levels: [] });
    if (l >= 0) found.at(-1).levels.push(l);
    dark = yavg < 60;
  }
  return found;
}

/**
 * onsetsOf lists the times (ms, in the file's timeline) where a beep
 * starts: the ends of silences. aresample fills the gaps the sender left
 * (DTX) and the time before the first packet with silence, and neither
 * stretches nor squeezes, so that times stay those of the file.
 */
function onsetsOf(file) {
  let err; // ffmpeg writes silencedetect's findings to stderr
  try {
    err = execFileSync('sh', ['-c', `ffmpeg -v info -nostats -i "${file}" -map 0:a -af aresample=async=1:first_pts=0,silencedetect=n=-30dB:d=0.5 -f null - 2>&1`], { encoding: 'utf8', maxBuffer: 64 << 20 });
  } catch (e) {
    throw new Error('ffmpeg silencedetect: ' + e.message);
  }
  return [...err.matchAll(/silence_end: (-?[0-9.]+)/g)].map((m) => Number(m[1]) * 1000);
}

/**
 * gapsOf lists where a stream of the recorded file has no packet for
 * longer than min ms (a packet lost and never repaired, or a sender that
 * stalled), as "from→to": for a failure's report, so that a marker off by
 * a packet can be told from one whose timing moved.
 */
function gapsOf(file, stream, min) {
  const out = run('ffprobe', '-v', 'error', '-select_streams', stream, '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', file);
  const pts = out.trim().split('\n').map(Number).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const gaps = [];
  for (let i = 1; i < pts.length; i++) {
    if ((pts[i] - pts[i - 1]) * 1000 > min) gaps.push(`${Math.round(pts[i - 1] * 1000)}→${Math.round(pts[i] * 1000)}`);
  }
  return gaps;
}

/** pairs matches each flash with the nearest onset within half a marker interval. */
function pairs(vs, as) {
  const out = [];
  for (const v of vs) {
    let best = null;
    for (const a of as) if (best === null || Math.abs(a - v) < Math.abs(best - v)) best = a;
    if (best !== null && Math.abs(best - v) < EVERY * 500) out.push({ at: Math.round(v), delta: Math.round(best - v) });
  }
  return out;
}

// capture is put in the party's page before its scripts: it watches the
// camera and microphone the room opens, on clones of their tracks, and
// notes the capture time (performance.now) of each flash and beep onset.
// Video frames carry Chromium's monotonic clock, audio ones (nearly)
// performance.now's: each clock's epoch is the greatest (capture time −
// time read) seen — a frame is read after it is captured, and the one read
// soonest gives the epoch to within its delay, about a millisecond.
const capture = `(() => {
  const av = window.__av = { flashes: [], beeps: [], videoEpoch: -Infinity, audioEpoch: -Infinity };
  const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (c) => {
    const s = await gum(c);
    for (const track of s.getTracks()) watch(track.clone());
    return s;
  };
  async function watch(track) {
    // A deep buffer: a processor that falls behind drops frames, and a
    // page starved of CPU falls behind. Audio comes in 10 ms frames, so its
    // buffer holds 15 s (a few hundred KiB); video 4 s at 30 frames a second.
    const depth = track.kind === 'audio' ? 1500 : 120;
    const r = new MediaStreamTrackProcessor({ track, maxBufferSize: depth }).readable.getReader();
    if (track.kind === 'video') {
      const cx = new OffscreenCanvas(8, 8).getContext('2d', { willReadFrequently: true });
      for (;;) {
        const { value: f, done } = await r.read();
        if (done) return;
        const ts = f.timestamp / 1000;
        av.videoEpoch = Math.max(av.videoEpoch, ts - performance.now());
        cx.drawImage(f, 0, 0, 8, 8);
        const v = cx.getImageData(0, 0, 8, 8).data[0]; // 240, 180, 120 for the flash's frames
        const level = v > 210 ? 0 : v > 150 ? 1 : v > 90 ? 2 : -1;
        if (level >= 0) av.flashes.push([ts, level]);
        f.close();
      }
    }
    let loud = false;
    for (;;) {
      const { value: a, done } = await r.read();
      if (done) return;
      const ts = a.timestamp / 1000;
      av.audioEpoch = Math.max(av.audioEpoch, ts + a.duration / 1000 - performance.now());
      const buf = new Float32Array(a.numberOfFrames);
      a.copyTo(buf, { planeIndex: 0, format: 'f32-planar' });
      const i = buf.findIndex((x) => Math.abs(x) > 0.05);
      if (i >= 0 && !loud) av.beeps.push(ts + i * 1000 / a.sampleRate);
      loud = buf.subarray(buf.length - 48).some((x) => Math.abs(x) > 0.05) || (i >= 0 && buf.length < 48);
      a.close();
    }
  }
})()`;

/** captured reads the page's markers, in performance.now's time. */
async function captured(person) {
  const av = await person.eval(`({ flashes: __av.flashes, beeps: __av.beeps, v: __av.videoEpoch, a: __av.audioEpoch, origin: performance.timeOrigin })`);
  return { flashes: av.flashes.map(([x, l]) => ({ at: x - av.v, level: l })), beeps: av.beeps.map((x) => x - av.a), origin: av.origin };
}

/** nearest is the element of xs nearest to x. */
function nearest(xs, x) {
  return xs.reduce((b, y) => (b === null || Math.abs(y - x) < Math.abs(b - x) ? y : b), null);
}

/**
 * compare measures, for every recorded flash, how far the recording moved
 * the picture against the sound: the recorded offset from the flash's
 * first frame to the nearest beep, less the captured offset between the
 * same frame (the captured frame of the same grey) and the same beep.
 *
 * To tell which captured marker is which recorded one, the file is laid on
 * the page's clock by its beeps. The first beep goes on the captured one
 * nearest to where the manifest's started_at and the page's clock say the
 * file began (about); each later beep on the captured one nearest to where
 * the shift so far puts it, within half a marker period, and the shift
 * follows it. A single shift for the whole file would hold only while the
 * page's capture keeps time: a page starved of CPU (the suite under
 * stress-ng) captures late in bursts, and what the page saw drifts against
 * what it sent by hundreds of milliseconds over minutes. Following the
 * shift from beep to beep keeps every marker paired with its own capture;
 * the error measured at each marker is local, so the drift never enters it.
 */
function compare(rec, cap, about) {
  const first = nearest(cap.beeps.map((c) => c - rec.beeps[0]), about);
  const paired = new Map(); // recorded beep → its captured beep
  let shift = first;
  for (const b of rec.beeps) {
    if (shift === null) break;
    const c = nearest(cap.beeps, b + shift);
    if (c !== null && Math.abs(c - (b + shift)) < EVERY * 500) {
      paired.set(b, c);
      shift = c - b;
    }
  }
  const shiftAt = (t) => {
    const b = nearest([...paired.keys()], t);
    return b === null ? first : paired.get(b) - b;
  };
  const out = [];
  let unclear = 0;
  for (const v of rec.flashes) {
    if (first === null) break;
    const local = shiftAt(v.at);
    const same = cap.flashes.filter((x) => x.level === v.level && Math.abs(v.at + local - x.at) < 500);
    const b = nearest(rec.beeps, v.at);
    const cb = b === null ? null : paired.get(b) ?? null;
    if (same.length !== 1 || new Set(v.levels).size !== v.levels.length || cb === null) {
      // A frame seen twice — Chromium repeats the last frame to a sink
      // whose source stalls, with a new time — is no marker to measure by.
      if (same.length) unclear++;
      continue;
    }
    out.push({ at: Math.round(v.at), level: v.level, error: Math.round((b - v.at) - (cb - same[0].at)) });
  }
  return { shift: first, about, beeps: paired.size, markers: out, unclear };
}

function staffToken(name, role) {
  const id = run(env.bin, 'staff', 'add', '--data-dir', env.data, '--name', name, '--role', role).trim();
  return run(env.bin, 'token', 'add', '--data-dir', env.data, '--staff', id, '--name', 'e2e avsync', '--scope', 'sessions:write').trim();
}

test('audio and video of a recording stay in sync (chromium)', { timeout: (SECONDS + 240) * 1000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'chamber-avsync-'));
  if (!process.env.CHAMBER_TEST_KEEP) t.after(() => rmSync(dir, { recursive: true, force: true }));
  else console.log('files kept in ' + dir);
  const { y4m, wav } = captureFiles(dir);
  const browser = await puppeteer.launch({
    browser: 'chrome', executablePath: env.chromium, headless: true, protocolTimeout: 60000, defaultViewport: { width: 1280, height: 800 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-first-run', '--disable-quic', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      `--use-file-for-fake-video-capture=${y4m}`, `--use-file-for-fake-audio-capture=${wav}`,
      '--autoplay-policy=no-user-gesture-required', '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows'],
  });
  t.after(() => browser.close());

  const clerk = staffToken('Clerk A/V sync', 'clerk');
  const { body: sess } = await api(clerk, 'POST', '/api/v1/sessions', { kind: 'hearing', title: 'A/V sync' });
  const sid = sess.id;
  const inv = (await api(clerk, 'POST', `/api/v1/sessions/${sid}/invitations`, { name: 'Jaan Tamm', role: 'party' })).body;
  const pid = inv.participant_id;
  const page = await (await browser.createBrowserContext()).newPage();
  await page.evaluateOnNewDocument(capture);
  page.on('pageerror', (err) => console.log(`[party] page error: ${err.message}`));
  const party = new Person('party', page, 'chromium');

  // enter joins (again) and is admitted when the room asks for it.
  const enter = async () => {
    await party.click('#join-button', 60000);
    await party.wait(`(() => { const r = document.querySelector('.room'); return r && (r.dataset.view === 'room' || r.dataset.view === 'waiting'); })()`, 60000);
    if (!(await party.eval(probe.inRoom))) await api(clerk, 'POST', `/api/v1/sessions/${sid}/participants/${pid}/admit`, {}, [409]);
    await party.wait(probe.inRoom, 60000);
  };
  await party.goto(inv.join_url);
  await enter();

  const rec = `/api/v1/sessions/${sid}/recording`;
  await api(clerk, 'POST', rec, { action: 'start' });
  const started = Date.now();
  // The recording's length is what is tested: wait for the clock, in steps
  // that fail early if the page breaks.
  const until = (ms) => party.wait(`Date.now() >= ${started + ms}`, ms + 60000);
  await until(SECONDS * 500);
  const before = await captured(party);
  await page.reload({ waitUntil: 'load' });
  await enter();
  await until(SECONDS * 1000);
  const after = await captured(party);
  const stopped = (await api(clerk, 'POST', rec, { action: 'stop' })).body;
  assert.ok(stopped.manifest_key, 'the recording was not stored: ' + JSON.stringify(stopped));

  writeFileSync(path.join(dir, 'captured.json'), JSON.stringify({ before, after }));
  const list = (await api(clerk, 'GET', `/api/v1/sessions/${sid}/recordings`)).body;
  const r = (await api(clerk, 'GET', `/api/v1/sessions/${sid}/recordings/${list[list.length - 1].id}`)).body;
  const files = r.manifest.files.map((f, i) => ({ f, name: r.manifest.names[i] })).filter((x) => x.f.participant_id === pid);
  assert.ok(files.length >= 2, `the reload did not start a second file: ${files.length}`);

  let total = 0;
  const all = [];
  for (const [i, { f, name }] of files.entries()) {
    const timings = f.tracks.map((x) => x.kind + ':' + x.timing);
    const local = path.join(dir, name);
    const body = (await api(clerk, 'GET', `/api/v1/sessions/${sid}/recordings/${r.id}/files/${encodeURIComponent(name)}`)).body;
    writeFileSync(local, body);
    const rec = { flashes: flashes(local), beeps: onsetsOf(local) };
    // The first file is before the reload, the last after it.
    const cap = i === 0 ? before : after;
    const c = compare(rec, cap, Date.parse(f.started_at) - cap.origin);
    const m = c.markers;
    const expected = Math.floor(f.duration_ms / (EVERY * 1000));
    console.log(`${name}: ${Math.round(f.duration_ms / 1000)} s from ${f.start_offset_ms} ms, ${timings.join(' ')}; ` +
      `shift ${Math.round(c.shift)} ms (about ${Math.round(c.about)}), ${rec.beeps.length} beeps (${c.beeps} on the captured ones), ${rec.flashes.length} flashes, ${m.length} of ~${expected} on captured ones (${c.unclear} unclear); ` +
      `picture moved against the sound (ms): ${m.map((x) => x.error).join(' ')}; ` +
      `recorded audio − video (ms): ${pairs(rec.flashes.map((x) => x.at), rec.beeps).map((x) => x.delta).join(' ')}; ` +
      `gaps (ms in the file): audio ${gapsOf(local, 'a', 25).join(' ') || 'none'}, video ${gapsOf(local, 'v', 70).join(' ') || 'none'}`);
    assert.deepEqual(f.tracks.map((x) => x.timing), f.tracks.map(() => 'sender_reports'), `${name} was not timed by sender reports: ${timings}`);
    assert.ok(c.beeps >= 0.8 * expected, `${name}: only ${c.beeps} of ~${expected} beeps found where they were captured`);
    assert.ok(m.length >= 0.6 * expected, `${name}: only ${m.length} of ~${expected} flashes found where they were captured (${c.unclear} unclear)`);
    total += m.length;
    all.push(...m.map((x) => ({ file: name, ...x })));
  }
  const worst = all.reduce((w, x) => (Math.abs(x.error) > Math.abs(w.error) ? x : w), { error: 0 });
  console.log(`${total} markers over ${SECONDS} s; worst: the picture ${worst.error} ms off the sound (${worst.file} at ${worst.at} ms)`);
  for (const x of all) {
    assert.ok(Math.abs(x.error) <= TOLERANCE_MS, `${x.file} at ${x.at} ms: the picture is ${x.error} ms off the sound, against what was captured`);
  }
});
