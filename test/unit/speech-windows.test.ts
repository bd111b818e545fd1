/** The arithmetic around the speech and text models (no model loaded): fast tier. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_SPEECH_OPTIONS, sentences, speechSegments, spreadCues, tokenBudget, whisperWindows } from '../../src/models/speech-windows.js';
import { cosine } from '../../src/models/vectors.js';

/** One probability per 32 ms frame: `on` spans (seconds) at 0.9, the rest at 0.05. */
function probs(seconds: number, on: Array<[number, number]>): Float32Array {
  const frame = 0.032;
  const out = new Float32Array(Math.ceil(seconds / frame)).fill(0.05);
  for (const [a, b] of on) for (let i = Math.floor(a / frame); i < Math.ceil(b / frame); i++) out[i] = 0.9;
  return out;
}

const segments = (p: Float32Array, duration: number, opts = {}) => speechSegments(p, 0.032, duration, { ...DEFAULT_SPEECH_OPTIONS, ...opts });

describe('speech segments from voice-activity probabilities', () => {
  it('finds nothing in silence', () => {
    assert.deepEqual(segments(probs(10, []), 10), []);
  });

  it('pads a segment by padMs, within the file', () => {
    const [s, ...rest] = segments(probs(10, [[2, 4]]), 10);
    assert.deepEqual(rest, []);
    assert.ok(Math.abs(s!.start - 1.8) < 0.04 && Math.abs(s!.end - 4.2) < 0.04, JSON.stringify(s));
    const edge = segments(probs(3, [[0, 2.95]]), 3);
    assert.equal(edge[0]!.start, 0);
    assert.equal(edge[0]!.end, 3);
  });

  it('merges segments closer than mergeGapMs and keeps farther ones apart', () => {
    assert.equal(
      segments(
        probs(10, [
          [1, 2],
          [2.3, 3],
        ]),
        10,
      ).length,
      1,
    );
    assert.equal(
      segments(
        probs(10, [
          [1, 2],
          [2.8, 3.5],
        ]),
        10,
      ).length,
      2,
    );
    assert.equal(
      segments(
        probs(10, [
          [1, 2],
          [2.8, 3.5],
        ]),
        10,
        { mergeGapMs: 1000 },
      ).length,
      1,
    );
  });

  it('never pads into a neighbour: at most half the gap', () => {
    const [a, b] = segments(
      probs(10, [
        [1, 2],
        [2.6, 3.5],
      ]),
      10,
      { padMs: 500 },
    );
    assert.ok(a!.end <= b!.start, `${JSON.stringify(a)} ${JSON.stringify(b)}`);
  });

  it('drops bursts shorter than minSpeechMs, after merging', () => {
    assert.deepEqual(segments(probs(10, [[5, 5.1]]), 10), []);
    // Three short bursts close together make one long enough segment.
    assert.equal(
      segments(
        probs(10, [
          [5, 5.1],
          [5.3, 5.4],
          [5.6, 5.7],
        ]),
        10,
      ).length,
      1,
    );
  });

  it('keeps speech going through short dips (hysteresis)', () => {
    const p = probs(10, [[1, 3]]);
    // A 64 ms dip to 0.2 (below threshold - 0.15) is shorter than minSilenceMs: one segment, not merged after the fact.
    p[60] = 0.2;
    p[61] = 0.2;
    assert.equal(segments(p, 10, { mergeGapMs: 0 }).length, 1);
  });
});

describe('the windows Whisper is given', () => {
  it('cuts windows longer than 30 s into equal parts, clamped to the file, in order', () => {
    assert.deepEqual(
      whisperWindows(
        [
          { start: 40, end: 45 },
          { start: 0, end: 35 },
        ],
        100,
      ),
      [
        { start: 0, end: 17.5 },
        { start: 17.5, end: 35 },
        { start: 40, end: 45 },
      ],
    );
    assert.deepEqual(whisperWindows([{ start: -5, end: 1e9 }], 63), [
      { start: 0, end: 21 },
      { start: 21, end: 42 },
      { start: 42, end: 63 },
    ]);
    assert.deepEqual(whisperWindows([{ start: 50, end: 60 }], 20), []);
    assert.deepEqual(whisperWindows([], 20), []);
  });

  it('gives a short window a small token budget, a long one at most maxNewTokens', () => {
    assert.equal(tokenBudget(1, 224), 24);
    assert.equal(tokenBudget(30, 224), 224);
    assert.equal(tokenBudget(30, 100), 100);
  });
});

describe('cues from text without timestamps', () => {
  it('splits sentences and shares the time out by length', () => {
    assert.deepEqual(sentences(' Hello there. How are you?  Fine '), ['Hello there.', 'How are you?', 'Fine']);
    const cues = spreadCues('Short one. A much longer second sentence here.', { start: 10, end: 20 });
    assert.equal(cues.length, 2);
    assert.equal(cues[0]!.start, 10);
    assert.equal(cues[1]!.end, 20);
    assert.equal(cues[0]!.end, cues[1]!.start);
    assert.ok(cues[0]!.end - cues[0]!.start < cues[1]!.end - cues[1]!.start);
    assert.deepEqual(spreadCues('   ', { start: 0, end: 1 }), []);
  });
});

describe('cosine similarity', () => {
  it('is 1 for one direction, 0 for orthogonal or zero vectors, -1 for opposite', () => {
    assert.equal(cosine([1, 2, 3], [2, 4, 6]), 1);
    assert.equal(cosine([1, 0], [0, 1]), 0);
    assert.equal(cosine([1, 0], [-1, 0]), -1);
    assert.equal(cosine([0, 0], [1, 1]), 0);
    assert.throws(() => cosine([1], [1, 2]), RangeError);
  });
});
