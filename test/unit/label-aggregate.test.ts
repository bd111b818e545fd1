import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { labelsFromFrames, type FrameLook } from '../../src/processing/labeling/aggregate.js';
import { modelBanks, objectLabel } from '../../src/processing/labeling/taxonomy.js';
import { cosine, findByMeaning, findPhrases, labelsFromMatches } from '../../src/labels/text-matching.js';
import { labelingOf } from '../../src/labels/labeling-state.js';

const box = [0.1, 0.2, 0.3, 0.4] as [number, number, number, number];
const neutral = [
  { cls: 'Neutral', score: 0.95 },
  { cls: 'Drawing', score: 0.02 },
  { cls: 'Porn', score: 0.01 },
  { cls: 'Hentai', score: 0.01 },
  { cls: 'Sexy', score: 0.01 },
];

describe('labels from what the models saw', () => {
  it('counts frames, keeps the best and the sum per frame, and gives each label its parent seen wherever a child is', () => {
    const looks: FrameLook[] = [
      { t: 0, objects: [{ cls: 'dog', score: 0.9, box }], nsfw: neutral },
      {
        t: 1,
        objects: [
          { cls: 'dog', score: 0.7, box },
          { cls: 'dog', score: 0.8, box },
          { cls: 'cat', score: 0.95, box },
        ],
        nsfw: neutral,
      },
      { t: 2, objects: [{ cls: 'dog', score: 0.55, box }], nsfw: neutral },
    ];
    const labels = labelsFromFrames(looks, { objects: 0.6, labels: 0.5 });
    const of = (name: string) => labels.find((l) => l.name === name)!;
    assert.equal(of('Dog').count, 2, 'below the object threshold at t=2');
    assert.equal(of('Dog').confidence, 0.9);
    assert.equal(of('Dog').confidenceSum, 1.7, 'the best of each frame: 0.9 + 0.8');
    assert.equal(of('Dog').frames!.length, 3, 'both boxes of t=1');
    assert.equal(of('Animal').count, 2);
    assert.deepEqual(
      of('Animal').frames!.map((f) => [f.t, f.confidence]),
      [
        [0, 0.9],
        [1, 0.95],
      ],
    );
    assert.equal(of('Animal').kind, 'general');
  });

  it('keeps every moderation label with its score, and the frames at or above the labeling threshold (else the best one)', () => {
    const looks: FrameLook[] = [
      { t: 0, objects: [], nsfw: [{ cls: 'Sexy', score: 0.1 }] },
      { t: 5, objects: [], nsfw: [{ cls: 'Sexy', score: 0.3 }] },
      { t: 9, objects: [], nsfw: [{ cls: 'Porn', score: 0.7 }] },
    ];
    const labels = labelsFromFrames(looks, { objects: 0.6, labels: 0.5 });
    const of = (name: string) => labels.find((l) => l.name === name)!;
    assert.deepEqual(
      of('Sexy').frames!.map((f) => f.t),
      [5],
    );
    assert.equal(of('Sexy').confidence, 0.3);
    assert.equal(of('Sexy').kind, 'moderation');
    assert.equal(of('Suggestive').confidence, 0.3);
    assert.equal(of('Explicit').confidence, 0.7);
    assert.equal(
      labels.find((l) => l.name === 'Neutral'),
      undefined,
    );
  });

  it('names every COCO class, under parents that are entries of the model banks', () => {
    const [objects] = modelBanks();
    const names = new Set(objects!.entries.map((e) => e.name));
    for (const e of objects!.entries) if (e.parent) assert.ok(names.has(e.parent), `${e.name}'s parent ${e.parent}`);
    assert.equal(objects!.entries.filter((e) => e.parent !== null || e.name === 'Person').length, 80);
    assert.deepEqual(objectLabel('cell phone'), { label: 'Mobile Phone', parent: 'Electronics' });
    assert.equal(objectLabel('unicorn'), undefined);
  });
});

describe('bank entries found in text', () => {
  const entries = [
    { name: 'cycling', kind: 'general' as const, phrases: ['bike', 'push bike'], ancestors: ['sport'], matchThreshold: 0.7 },
    { name: 'violence', kind: 'moderation' as const, phrases: ['gore'], ancestors: [], matchThreshold: 0.7 },
    { name: 'cat', kind: 'general' as const, phrases: [], ancestors: [], matchThreshold: 0.7 },
  ];

  it('finds names and phrases as whole words, case, punctuation and simple plurals aside, with their times', () => {
    const found = findPhrases(entries, [
      { text: 'Two BIKES, parked.', t: 4 },
      { text: 'No gore here', t: 9 },
      { text: 'concatenate', t: 12 },
    ]);
    assert.deepEqual(
      found.map((f) => [f.entry, f.matched, f.times]),
      [
        ['cycling', 'bike', [4]],
        ['violence', 'gore', [9]],
      ],
      '"cat" inside "concatenate" is not the word cat',
    );
  });

  it('gives each matched entry and its ancestors as labels of the source', () => {
    const labels = labelsFromMatches(findPhrases(entries, [{ text: 'my bike', t: 2 }]), entries, 'transcript');
    assert.deepEqual(
      labels.map((l) => [l.name, l.source, l.confidence, l.frames!.map((f) => f.t)]),
      [
        ['cycling', 'transcript', 1, [2]],
        ['sport', 'transcript', 1, [2]],
      ],
    );
  });

  it('matches by meaning above the threshold, encoding each text once', async () => {
    // Vectors by hand: "bicycle" points where "bike" does, "stock market" elsewhere.
    const space: Record<string, number[]> = {
      cycling: [1, 0, 0],
      bike: [0.9, 0.1, 0],
      'push bike': [0.9, 0, 0.1],
      bicycle: [0.95, 0.05, 0],
      'stock market': [0, 0, 1],
    };
    const asked: string[] = [];
    const embed = async (texts: string[]) => {
      asked.push(...texts);
      return texts.map((t) => space[t] ?? [0, 1, 0]);
    };
    const cache = new Map<string, number[]>();
    const found = await findByMeaning([entries[0]!], [{ text: 'bicycle', t: 3 }, { text: 'stock market' }], embed, cache, { maxTerms: 10 });
    assert.equal(found.length, 1);
    assert.equal(found[0]!.method, 'embedding');
    assert.deepEqual(found[0]!.times, [3]);
    assert.ok(found[0]!.score > 0.9);
    await findByMeaning([entries[0]!], [{ text: 'bicycle' }], embed, cache, { maxTerms: 10 });
    assert.equal(asked.filter((t) => t === 'bicycle').length, 1, 'cached');
    assert.ok(Math.abs(cosine([1, 0], [1, 0]) - 1) < 1e-9 && cosine([1, 0], [0, 1]) === 0);
  });
});

describe('where labeling stands', () => {
  it('is pending while the step is listed, or while a recompute asked after the last run started is to come', () => {
    assert.equal(labelingOf({}).state, 'none');
    assert.equal(labelingOf({ pending: ['labels'] }).state, 'pending');
    const done = { labeling: { state: 'done', at: '2026-01-01T00:00:00Z', frames: 3, labels: 5, request: 1 } };
    assert.deepEqual(labelingOf({ ...done, labeling_request: 1 }), { state: 'done', at: '2026-01-01T00:00:00Z', reason: null, frames: 3, labels: 5 });
    assert.equal(labelingOf({ ...done, labeling_request: 2 }).state, 'pending', 'asked for again while the run was going');
    assert.equal(labelingOf({ labeling: { state: 'failed', reason: 'the model failed', request: 0 } }).reason, 'the model failed');
  });
});
