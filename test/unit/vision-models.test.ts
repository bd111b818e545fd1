import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_COCO_SSD_DIR } from '../../src/models/model-files.js';
import { ModelError, ModelHost, type VisionResult } from '../../src/models/model-host.js';
import { runModelChild as runChild } from '../support/model-child-run.js';
import { FIXTURE_PHOTOS, photo } from '../support/model-fixtures.js';

/** A real photograph from Debian's packages (scripts/test-fixtures.sh). */

/** What the photo certainly shows, as COCO names it, at 0.6 or more (below that COCO-SSD guesses: "sheep" for a horse). */
const SHOWS: Array<[string, string]> = [
  ['chelsea.png', 'cat'],
  ['horses.jpg', 'horse'],
  ['coffee.png', 'cup'],
  ['motorcycle_left.png', 'motorcycle'],
];

const confident = (r: VisionResult) => r.objects.filter((o) => o.score >= 0.6);

function assertSensibleBoxes(r: VisionResult): void {
  for (const o of r.objects) {
    const [x, y, w, h] = o.box;
    assert.ok(w > 0 && h > 0, `${o.cls}: a box with area (${o.box})`);
    assert.ok(x >= 0 && y >= 0 && x + w <= 1 + 1e-6 && y + h <= 1 + 1e-6, `${o.cls}: a box inside the picture (${o.box})`);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (isAlive(pid)) {
    if (Date.now() > until) assert.fail(`process ${pid} is still alive after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('vision models on real photos (COCO-SSD, nsfwjs)', () => {
  const host = new ModelHost();
  const results = new Map<string, VisionResult>();
  before(async () => {
    const loads = await host.warmUp('vision', ['coco-ssd', 'nsfwjs']);
    assert.deepEqual(Object.keys(loads).sort(), ['coco-ssd', 'nsfwjs']);
    for (const ms of Object.values(loads)) assert.ok(ms > 0);
    for (const name of FIXTURE_PHOTOS) results.set(name, await host.vision(photo(name)));
  });
  after(() => host.close());

  it('finds the dog, the bicycle and the car in dog.jpg, with sensible boxes', () => {
    const r = results.get('dog.jpg')!;
    const classes = new Set(confident(r).map((o) => o.cls));
    for (const cls of ['dog', 'bicycle', 'car']) assert.ok(classes.has(cls), `${cls} in ${JSON.stringify(r.objects)}`);
    for (const cls of classes) assert.ok(['dog', 'bicycle', 'car', 'truck'].includes(cls), `nothing else at 0.6 or more: ${cls}`);
    assertSensibleBoxes(r);
    // The dog sits in the lower left of the picture.
    const [x, y, w, h] = confident(r).find((o) => o.cls === 'dog')!.box;
    assert.ok(x + w / 2 < 0.5 && y + h / 2 > 0.5, `the dog's box is in the lower-left half: ${[x, y, w, h]}`);
    assert.ok(r.ms.objects > 0 && r.ms.nsfw > 0);
  });

  for (const [name, cls] of SHOWS) {
    it(`sees a ${cls} in ${name}`, () => {
      const r = results.get(name)!;
      assert.ok(
        confident(r).some((o) => o.cls === cls),
        JSON.stringify(r.objects),
      );
      assertSensibleBoxes(r);
    });
  }

  it('scores every benign photo Neutral or Drawing first, with Porn, Hentai and Sexy each below 0.2', () => {
    for (const [name, r] of results) {
      assert.deepEqual(r.nsfw.map((c) => c.cls).sort(), ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'], name);
      for (let i = 1; i < r.nsfw.length; i++) assert.ok(r.nsfw[i - 1]!.score >= r.nsfw[i]!.score, `${name}: highest first`);
      const sum = r.nsfw.reduce((s, c) => s + c.score, 0);
      assert.ok(Math.abs(sum - 1) < 1e-3, `${name}: the scores sum to 1 (${sum})`);
      assert.ok(['Neutral', 'Drawing'].includes(r.nsfw[0]!.cls), `${name}: ${JSON.stringify(r.nsfw)}`);
      for (const c of r.nsfw) if (['Porn', 'Hentai', 'Sexy'].includes(c.cls)) assert.ok(c.score < 0.2, `${name}: ${c.cls} ${c.score}`);
    }
  });

  it('applies minObjectScore and maxObjects', async () => {
    const all = results.get('kite.jpg')!.objects;
    assert.ok(all.length > 3);
    assert.ok(all.every((o) => o.score >= 0.3));
    const strict = await host.vision(photo('kite.jpg'), { minObjectScore: 0.75 });
    assert.deepEqual(
      strict.objects.map((o) => o.cls),
      all.filter((o) => o.score >= 0.75).map((o) => o.cls),
    );
    const one = await host.vision(photo('kite.jpg'), { maxObjects: 1 });
    assert.equal(one.objects.length, 1);
    assert.equal(one.objects[0]!.cls, all[0]!.cls);
  });

  it('keeps the number of tensors constant over 5 calls, and its memory bounded', async () => {
    const before = await host.stats();
    for (let i = 0; i < 5; i++) await host.vision(photo(FIXTURE_PHOTOS[i]!));
    const after = await host.stats();
    assert.equal(after.numTensors, before.numTensors);
    assert.equal(after.tensorBytes, before.tensorBytes);
    assert.equal(after.pid, before.pid, 'the same child, models loaded once');
    assert.ok(after.peakRssMb < 700, `peak RSS ${after.peakRssMb} MB`);
  });

  it('refuses a file that is not a picture in plain words', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qasar-vision-'));
    try {
      const file = path.join(dir, 'notes.jpg');
      fs.writeFileSync(file, 'not a picture\n');
      await assert.rejects(host.vision(file), (err: unknown) => {
        assert.ok(err instanceof ModelError);
        assert.equal(err.code, 'bad-input');
        assert.ok(!err.message.includes(dir), err.message);
        return true;
      });
      // The child is still there and still answers.
      assert.ok(confident(await host.vision(photo('dog.jpg'))).length >= 3);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the model process', () => {
  it('runs the models with the network cut (unshare -n)', async () => {
    const { line, exited } = await runChild(['unshare', '-n'], ['vision', photo('dog.jpg')]);
    assert.equal(await exited, 0);
    assert.deepEqual(line.interfaces, ['lo'], 'no interface but loopback');
    const r = line.result as VisionResult;
    const classes = confident(r).map((o) => o.cls);
    for (const cls of ['dog', 'bicycle', 'car']) assert.ok(classes.includes(cls), JSON.stringify(r.objects));
    assert.equal(r.nsfw[0]!.cls, 'Neutral');
  });

  it('refuses COCO-SSD files that do not match their sha256, naming the model and the fix', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qasar-coco-'));
    const host = new ModelHost({ cocoSsdDir: dir });
    try {
      fs.cpSync(DEFAULT_COCO_SSD_DIR, dir, { recursive: true });
      const shard = path.join(dir, 'group1-shard3of5');
      const bytes = fs.readFileSync(shard);
      bytes[123_456] = bytes[123_456]! ^ 0x01;
      fs.writeFileSync(shard, bytes);
      const refused = (what: RegExp) => (err: unknown) => {
        assert.ok(err instanceof ModelError, String(err));
        assert.equal(err.code, 'model-files');
        assert.match(err.message, /COCO-SSD/);
        assert.match(err.message, what);
        assert.match(err.message, /run scripts\/setup\.sh/);
        assert.ok(!err.message.includes(dir), err.message);
        return true;
      };
      await assert.rejects(host.warmUp(), refused(/group1-shard3of5 is damaged/));
      await assert.rejects(host.vision(photo('dog.jpg')), refused(/group1-shard3of5 is damaged/));
      fs.rmSync(path.join(dir, 'model.json'));
      await assert.rejects(host.vision(photo('dog.jpg')), refused(/model\.json is missing/));
    } finally {
      await host.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('starts a new child after its child was killed between calls, or during one', async () => {
    const host = new ModelHost();
    try {
      await host.vision(photo('chelsea.png'));
      const first = host.pid!;
      process.kill(first, 'SIGKILL');
      await waitGone(first, 5000);
      const r = await host.vision(photo('chelsea.png'));
      assert.ok(confident(r).some((o) => o.cls === 'cat'));
      const second = host.pid!;
      assert.notEqual(second, first);
      // Killed while it works: that call fails, the next one works.
      const during = host.vision(photo('horses.jpg'));
      await new Promise((r) => setTimeout(r, 50));
      process.kill(second, 'SIGKILL');
      await assert.rejects(during, (err: unknown) => err instanceof ModelError && err.code === 'crashed');
      assert.ok(confident(await host.vision(photo('horses.jpg'))).some((o) => o.cls === 'horse'));
    } finally {
      await host.close();
    }
  });

  it('kills a child that passes the time limit, and the next call works', async () => {
    const started: number[] = [];
    const warned: string[] = [];
    const log = { info: (o: { pid?: number }) => started.push(o.pid!), warn: (_o: object, msg: string) => warned.push(msg) };
    const host = new ModelHost({ requestTimeoutMs: 1, log });
    try {
      await assert.rejects(host.vision(photo('coffee.png')), (err: unknown) => {
        assert.ok(err instanceof ModelError);
        assert.equal(err.code, 'timeout');
        assert.match(err.message, /longer than 1 ms/);
        return true;
      });
      assert.equal(started.length, 1);
      assert.deepEqual(warned, ['a model request timed out: the model process was killed']);
      await waitGone(started[0]!, 5000);
      const r = await host.vision(photo('coffee.png'), { timeoutMs: 60_000 });
      assert.ok(confident(r).some((o) => o.cls === 'cup'));
      assert.equal(started.length, 2);
      assert.equal(host.pid, started[1]);
    } finally {
      await host.close();
    }
  });

  it('dies with its parent', async () => {
    const { line, exited, pid: parent } = await runChild([], ['orphan']);
    const child = line.pid as number;
    assert.ok(isAlive(child));
    process.kill(parent, 'SIGKILL');
    await exited;
    await waitGone(child, 5000);
  });
});
