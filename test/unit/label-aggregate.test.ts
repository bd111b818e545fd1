import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { labelsFromFrames, type FrameLook } from '../../src/processing/labeling/aggregate.js';
import { modelBanks, objectLabel } from '../../src/processing/labeling/taxonomy.js';

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
