// Local media: asking for the camera and microphone, choosing devices,
// and a microphone level meter.
import { t } from './i18n.js';

/** getMedia asks for a camera and a microphone (either may be missing). */
export async function getMedia({ audioId, videoId, audio = true, video = true } = {}) {
  const want = {
    audio: audio ? (audioId ? { deviceId: { exact: audioId } } : true) : false,
    video: video ? Object.assign({ width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
      videoId ? { deviceId: { exact: videoId } } : {}) : false,
  };
  try {
    return await navigator.mediaDevices.getUserMedia(want);
  } catch (err) {
    // A missing camera should not cost the microphone, nor the reverse.
    if (want.audio && want.video) {
      for (const only of [{ audio: want.audio, video: false }, { audio: false, video: want.video }]) {
        try { return await navigator.mediaDevices.getUserMedia(only); } catch { /* try the next */ }
      }
    }
    throw err;
  }
}

/** mediaErrorText explains why getUserMedia failed, in words. */
export function mediaErrorText(err) {
  switch (err && err.name) {
    case 'NotAllowedError': return t('media.denied');
    case 'NotFoundError': return t('media.notFound');
    case 'NotReadableError': return t('media.busy');
    case 'OverconstrainedError': return t('media.notFound');
    case 'SecurityError': return t('media.insecure');
  }
  if (!navigator.mediaDevices) return t('media.insecure');
  return t('media.failed', { error: (err && err.message) || String(err) });
}

/** devices lists the cameras and microphones (labels once permission is given). */
export async function devices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return { audio: [], video: [] };
  const list = await navigator.mediaDevices.enumerateDevices();
  return {
    audio: list.filter((d) => d.kind === 'audioinput'),
    video: list.filter((d) => d.kind === 'videoinput'),
  };
}

/**
 * LevelMeter follows a microphone track's loudness and calls onLevel with
 * 0…1 about fifteen times a second, until stop().
 */
export class LevelMeter {
  constructor(track, onLevel) {
    this.onLevel = onLevel;
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx || !track) return;
    // Firefox refuses to connect a microphone to a context of another
    // sample rate (the meter then stayed at 0): make the context at the
    // microphone's rate.
    const rate = track.getSettings ? track.getSettings().sampleRate : undefined;
    let src;
    try {
      this.ctx = rate ? new Ctx({ sampleRate: rate }) : new Ctx();
      src = this.ctx.createMediaStreamSource(new MediaStream([track]));
    } catch {
      if (this.ctx) this.ctx.close();
      this.ctx = new Ctx();
      src = this.ctx.createMediaStreamSource(new MediaStream([track]));
    }
    this.analyser = this.ctx.createAnalyser();
    this.analyser.fftSize = 512;
    src.connect(this.analyser);
    this.buf = new Float32Array(this.analyser.fftSize);
    // An AudioContext made before any click starts suspended (Firefox
    // keeps it so until the page is clicked, and the meter stayed at 0):
    // the first click or key press resumes it, and the page offers a
    // button for it while it waits (suspended(), onResume).
    this.resume = () => { if (this.ctx && this.ctx.state === 'suspended') this.ctx.resume().catch(() => {}); };
    this.resume();
    window.addEventListener('pointerdown', this.resume, { once: true });
    window.addEventListener('keydown', this.resume, { once: true });
    this.ctx.addEventListener('statechange', () => { if (this.ctx && this.ctx.state === 'running' && this.onResume) this.onResume(); });
    this.timer = setInterval(() => this.tick(), 66);
  }

  /** suspended reports whether the meter waits for a click to hear anything. */
  suspended() { return !!this.ctx && this.ctx.state === 'suspended'; }

  tick() {
    this.analyser.getFloatTimeDomainData(this.buf);
    let sum = 0;
    for (const v of this.buf) sum += v * v;
    const rms = Math.sqrt(sum / this.buf.length);
    // Map -60…0 dBFS onto 0…1.
    const db = 20 * Math.log10(rms || 1e-8);
    this.onLevel(Math.max(0, Math.min(1, (db + 60) / 60)));
  }

  stop() {
    clearInterval(this.timer);
    if (this.ctx) this.ctx.close();
    this.ctx = null;
  }
}
