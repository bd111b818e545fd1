/**
 * The arithmetic around the speech models, with no model in it (the host imports it too): speech
 * segments from voice-activity probabilities, the windows Whisper is given, and cues from its text.
 */
import type { SpeechOptions, TimeSpan, TranscriptCue } from './model-protocol.js';

/** The raw PCM the speech methods read: 16 kHz mono float32 little-endian. */
export const SAMPLE_RATE = 16_000;
export const BYTES_PER_SAMPLE = 4;

/** Whisper reads 30 s at a time: a longer window is cut into equal parts no longer than this. */
export const MAX_WINDOW_SECONDS = 30;

export const DEFAULT_SPEECH_OPTIONS: SpeechOptions = {
  threshold: 0.5,
  minSilenceMs: 100,
  mergeGapMs: 500,
  padMs: 200,
  minSpeechMs: 250,
};

export const DEFAULT_MAX_NEW_TOKENS = 224;
export const DEFAULT_WINDOW_TIMEOUT_MS = 60_000;

const ms = (seconds: number) => Math.round(seconds * 1000) / 1000;

/**
 * Speech segments from one probability per frame of `frameSeconds` (Silero's get_speech_timestamps:
 * speech starts at a frame >= threshold and ends once frames stay below threshold - 0.15 for
 * minSilenceMs), then merged across gaps shorter than mergeGapMs, stripped of those shorter than
 * minSpeechMs, and padded by padMs on each side (at most half the gap to a neighbour, within the file).
 */
export function speechSegments(probs: ArrayLike<number>, frameSeconds: number, duration: number, opts: SpeechOptions): TimeSpan[] {
  const negThreshold = Math.max(opts.threshold - 0.15, 0.01);
  const raw: TimeSpan[] = [];
  let start: number | undefined;
  let silentSince: number | undefined;
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i]!;
    const at = i * frameSeconds;
    if (p >= opts.threshold) {
      silentSince = undefined;
      start ??= at;
    } else if (p < negThreshold && start !== undefined) {
      silentSince ??= at;
      if ((at - silentSince) * 1000 >= opts.minSilenceMs) {
        raw.push({ start, end: silentSince });
        start = undefined;
        silentSince = undefined;
      }
    }
  }
  if (start !== undefined) raw.push({ start, end: silentSince ?? Math.min(duration, probs.length * frameSeconds) });

  const merged: TimeSpan[] = [];
  for (const s of raw) {
    const last = merged.at(-1);
    if (last && (s.start - last.end) * 1000 < opts.mergeGapMs) last.end = s.end;
    else merged.push({ ...s });
  }
  const kept = merged.filter((s) => (s.end - s.start) * 1000 >= opts.minSpeechMs);
  const pad = opts.padMs / 1000;
  return kept.map((s, i) => {
    const before = i === 0 ? s.start : (s.start - kept[i - 1]!.end) / 2;
    const after = i === kept.length - 1 ? duration - s.end : (kept[i + 1]!.start - s.end) / 2;
    return { start: ms(Math.max(0, s.start - Math.min(pad, before))), end: ms(Math.min(duration, s.end + Math.min(pad, Math.max(0, after)))) };
  });
}

/**
 * The windows Whisper is given: each one clamped to the file, in order, and cut into equal parts of at
 * most MAX_WINDOW_SECONDS. Empty ones are left out.
 */
export function whisperWindows(windows: TimeSpan[], duration: number): TimeSpan[] {
  const out: TimeSpan[] = [];
  const sorted = windows
    .map((w) => ({ start: Math.max(0, w.start), end: Math.min(duration, w.end) }))
    .filter((w) => w.end - w.start >= 0.01)
    .sort((a, b) => a.start - b.start);
  for (const w of sorted) {
    const parts = Math.ceil((w.end - w.start) / MAX_WINDOW_SECONDS - 1e-9);
    const length = (w.end - w.start) / parts;
    for (let i = 0; i < parts; i++) out.push({ start: ms(w.start + i * length), end: ms(i === parts - 1 ? w.end : w.start + (i + 1) * length) });
  }
  return out;
}

/**
 * The token budget of one window: speech runs at most about 5 tokens a second, timestamps included,
 * so 8 a second plus a little covers it; a model looping on noise stops there rather than at maxNewTokens.
 */
export function tokenBudget(seconds: number, maxNewTokens: number): number {
  return Math.max(8, Math.min(maxNewTokens, Math.ceil(seconds * 8) + 16));
}

/** The sentences of a text (ending at . ! ? or …), trimmed; the rest of the text after the last one counts as one. */
export function sentences(text: string): string[] {
  return (text.match(/[^.!?…]+(?:[.!?…]+["'”’)\]]*|$)/g) ?? []).map((s) => s.trim()).filter((s) => s.length > 0);
}

/** One cue per sentence of `text`, the span's time shared out by each sentence's length. */
export function spreadCues(text: string, span: TimeSpan): TranscriptCue[] {
  const parts = sentences(text);
  const total = parts.reduce((n, s) => n + s.length, 0);
  const cues: TranscriptCue[] = [];
  let at = span.start;
  for (const [i, s] of parts.entries()) {
    const end = i === parts.length - 1 ? span.end : at + ((span.end - span.start) * s.length) / total;
    cues.push({ start: ms(at), end: ms(end), text: s });
    at = end;
  }
  return cues;
}
