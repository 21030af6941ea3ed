// The playback page's model, without the DOM: one clock for the whole
// recording, where each file is at a moment of it, and the journal as a
// timeline of the recording. playback.js draws it; jstest/playback.test.mjs
// tests it.

/** msBetween is how many milliseconds after start the ISO time at is. */
export function msBetween(start, at) {
  return new Date(at).getTime() - new Date(start).getTime();
}

/**
 * Clock is the recording's time, in milliseconds from its start: it runs
 * while playing, holds while paused or while a video waits for data, and
 * stops at the end.
 */
export class Clock {
  constructor(durationMs, now = () => performance.now()) {
    this.duration = durationMs;
    this.now = now;
    this.base = 0;      // position when the clock last started or was set
    this.since = null;  // now() when it started, null while held
    this.playing = false;
  }

  /** position is where the recording is now. */
  position() {
    if (this.since === null) return this.base;
    return Math.min(this.duration, this.base + (this.now() - this.since));
  }

  play() {
    if (this.position() >= this.duration) this.base = 0;
    this.playing = true;
    this.resume();
  }

  pause() {
    this.hold();
    this.playing = false;
  }

  /** hold stops the time without leaving play (a video is buffering). */
  hold() {
    this.base = this.position();
    this.since = null;
  }

  /** resume lets the time run again after a hold. */
  resume() {
    if (this.playing && this.since === null) this.since = this.now();
  }

  seek(ms) {
    this.base = Math.max(0, Math.min(this.duration, ms));
    if (this.since !== null) this.since = this.now();
  }

  ended() { return this.position() >= this.duration; }
}

/**
 * placement says where file f (start_offset_ms, duration_ms) is at
 * recording time pos: active, and at which of its own milliseconds.
 */
export function placement(f, pos) {
  const local = pos - f.start_offset_ms;
  return { active: local >= 0 && local < f.duration_ms, local };
}

/** DRIFT_MS is how far a video may stray from the clock before it is put back. */
export const DRIFT_MS = 250;

/** needsSeek says whether a video at currentTime (seconds) must be moved to local (ms). */
export function needsSeek(currentTime, local) {
  return Math.abs(currentTime * 1000 - local) > DRIFT_MS;
}

// Journal actions the timeline shows; everything else of the recording's
// time is shown by its action name.
const SHOWN = new Set([
  'participant.joined', 'participant.left', 'participant.admitted', 'participant.moved', 'participant.removed',
  'participant.muted', 'participant.hand_raised', 'participant.hand_lowered', 'document.presented', 'chat.message',
  'chat.consultation', 'recording.started', 'recording.stopped', 'recording.recovered', 'consultation.opened',
  'consultation.closed', 'interpreter.linked', 'identity.decided', 'document.signed', 'session.closed',
]);

/**
 * timeline merges the journal entries that fall within the recording and
 * its speaker changes into one list in time order: {atMs, kind, action,
 * details, seq} — kind "journal" or "speaker". Entries of the journal keep
 * their own order when at the same millisecond.
 */
export function timeline(entries, manifest) {
  const start = manifest.started_at;
  const duration = msBetween(start, manifest.stopped_at);
  const out = [];
  for (const e of entries || []) {
    const at = msBetween(start, e.at);
    if (at < 0 || at > duration || !SHOWN.has(e.action)) continue;
    out.push({ atMs: at, kind: 'journal', action: e.action, details: e.details || {}, seq: e.seq });
  }
  for (const s of manifest.speakers || []) {
    if (s.at_ms < 0 || s.at_ms > duration) continue;
    out.push({ atMs: s.at_ms, kind: 'speaker', action: 'speaker', details: { participant_id: s.participant_id }, seq: 0 });
  }
  out.sort((a, b) => a.atMs - b.atMs || (a.kind === b.kind ? a.seq - b.seq : a.kind === 'journal' ? -1 : 1));
  return out;
}

/** current is the index of the last timeline entry at or before pos (-1: none yet). */
export function current(list, pos) {
  let lo = 0;
  let hi = list.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].atMs <= pos) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** clockText shows ms as m:ss, or h:mm:ss past an hour. */
export function clockText(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? h + ':' + String(m).padStart(2, '0') + ':' + ss : m + ':' + ss;
}

/**
 * people names the participants of a manifest: participant id → name,
 * from its files.
 */
export function people(manifest) {
  const names = {};
  for (const f of manifest.files || []) names[f.participant_id] = f.participant_name;
  return names;
}
