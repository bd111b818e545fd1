import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';
import { photo } from '../support/model-fixtures.js';

const API = '/api/v1';

describe('labeling by the local models', () => {
  let t: TestApp;
  let bobKey: string;
  let followUps: { close(): Promise<void> } | undefined;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qasar-labeling-'));

  before(async () => {
    // Follow-ups (labeling) run only when a test starts their worker, so what comes before is seen.
    t = await startTestApp({ ENABLE_WORKER_LABELING: 'true', ENABLE_WEBM: 'false', WORKER_FOLLOWUP_CONCURRENCY: '0', LABELING_FPS: '1' }, { worker: true });
    bobKey = (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' })).key;
  });
  after(async () => {
    await followUps?.close();
    await t.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const call = (method: 'GET' | 'POST' | 'PUT' | 'PATCH', url: string, key: string, payload?: unknown) =>
    t.app.inject({ method, url: `${API}${url}`, headers: t.auth(key), ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}) });

  async function upload(file: string): Promise<string> {
    const { completed } = await new SessionClient(t.app, t.tenant.userKey).uploadWhole(fs.readFileSync(file), {
      filename: path.basename(file),
      chunkSize: 1024 * 1024,
    });
    assert.equal(completed.statusCode, 201, completed.body);
    return completed.json().id;
  }

  const record = async (id: string, key = t.tenant.userKey) => (await call('GET', `/media/${id}`, key)).json();
  const ready = (id: string) => waitFor(`media ${id} ready`, async () => ((await record(id)).status === 'ready' ? record(id) : undefined), 120_000);
  const labeled = (id: string) =>
    waitFor(
      `media ${id} labeled`,
      async () => {
        const res = (await call('GET', `/media/${id}/labels`, t.tenant.adminKey)).json();
        if (res.labeling.state === 'failed') throw new Error(`labeling failed: ${res.labeling.reason}`);
        return res.labeling.state === 'done' ? res : undefined;
      },
      180_000,
    );
  const startFollowUps = () => {
    followUps ??= t.ctx.worker.start(0, 1);
  };
  const byName = (items: any[], name: string) => items.find((l) => l.name === name && l.source === 'model');

  it('keeps a new photo from everyone but its owner until the models have looked, then labels and publishes it', async () => {
    const id = await upload(photo('dog.jpg'));
    const first = await ready(id);
    assert.equal(first.moderation_state, 'pending');
    assert.equal(first.labeling.state, 'pending');
    assert.deepEqual(first.pending, ['labels']);
    const forBob = await call('GET', `/media/${id}`, bobKey);
    assert.equal(forBob.statusCode, 403, 'another user does not see a media the models have not looked at');
    assert.equal(forBob.json().type, '/problems/moderation-hidden');

    startFollowUps();
    const { items, labeling } = await labeled(id);
    assert.equal(labeling.frames, 1);
    for (const [name, parent] of [
      ['Dog', 'Animal'],
      ['Bicycle', 'Vehicle'],
      ['Car', 'Vehicle'],
    ] as const) {
      const label = byName(items, name);
      assert.ok(label, `${name} among ${items.map((l: any) => l.name).join(', ')}`);
      assert.equal(label.kind, 'general');
      assert.equal(label.parent, parent, `${name}'s parent`);
      assert.ok(label.confidence >= 0.6 && label.confidence <= 1, `${name}: ${label.confidence}`);
      assert.equal(label.count, 1);
      assert.equal(label.first_timestamp, 0);
      const box = label.frames[0].box;
      assert.ok(box.every((v: number) => v >= 0 && v <= 1) && box[2] > 0 && box[3] > 0, `${name} box ${box}`);
      assert.ok(byName(items, parent), `the parent ${parent} is a label of the media too`);
    }
    const dogBox = byName(items, 'Dog').frames[0].box;
    assert.ok(dogBox[0] < 0.5 && dogBox[1] > 0.25, `the dog sits in the lower left: ${dogBox}`);
    // A benign photo: every moderation label is there with its score, each below the default threshold.
    for (const name of ['Porn', 'Hentai', 'Sexy']) {
      const label = byName(items, name);
      assert.ok(label, `moderation label ${name}`);
      assert.equal(label.kind, 'moderation');
      assert.ok(label.confidence < 0.2, `${name}: ${label.confidence}`);
    }
    assert.equal(byName(items, 'Porn').parent, 'Explicit', 'named as the global bank model-moderation spells them');
    assert.equal(byName(items, 'Sexy').parent, 'Suggestive');

    const moderation = (await call('GET', `/media/${id}/moderation`, t.tenant.adminKey)).json();
    assert.equal(moderation.state, 'none', 'published once the models found nothing over a threshold');
    assert.deepEqual(
      moderation.decisions.map((d: any) => [d.decision, d.previous_state, d.state]),
      [
        ['await', 'none', 'pending'],
        ['clear', 'pending', 'none'],
      ],
    );
    assert.ok(moderation.detections.some((d: any) => d.label === 'Porn' && d.parent === 'Explicit' && d.timestamp === 0));
    assert.equal((await call('GET', `/media/${id}`, bobKey)).statusCode, 200, 'others see it now');
    assert.equal((await record(id)).labeling.state, 'done');
  });

  it('holds what meets a moderation threshold (0 holds anything), and an approval releases it', async () => {
    const set = await call('PUT', '/moderation/thresholds', t.tenant.adminKey, { default: 0, labels: [] });
    assert.equal(set.statusCode, 200, set.body);
    try {
      const id = await upload(photo('chelsea.png'));
      await ready(id);
      const { items } = await labeled(id);
      assert.ok(byName(items, 'Cat'), `a cat among ${items.map((l: any) => l.name).join(', ')}`);
      assert.equal(byName(items, 'Cat').parent, 'Animal');
      const held = (await call('GET', `/media/${id}/moderation`, t.tenant.adminKey)).json();
      assert.equal(held.state, 'held');
      assert.deepEqual(
        held.decisions.map((d: any) => d.decision),
        ['await', 'hold'],
      );
      assert.equal((await call('GET', `/media/${id}`, bobKey)).statusCode, 403);
      const approved = await call('POST', `/media/${id}/moderation`, t.tenant.adminKey, { decision: 'approve', note: 'a cat' });
      assert.equal(approved.statusCode, 200, approved.body);
      assert.equal(approved.json().state, 'approved');
      assert.equal((await call('GET', `/media/${id}`, bobKey)).statusCode, 200);
    } finally {
      await call('PUT', '/moderation/thresholds', t.tenant.adminKey, { default: null, labels: [] });
    }
  });

  it('labels a video frame by frame, with the seconds each object was seen in', async () => {
    // Three seconds of the dog photo, then three of the horses.
    const video = path.join(tmp, 'slides.mp4');
    const still = ['-loop', '1', '-t', '3', '-framerate', '25'];
    execFileSync('ffmpeg', [
      ...['-hide_banner', '-loglevel', 'error', '-y'],
      ...[...still, '-i', photo('dog.jpg'), ...still, '-i', photo('horses.jpg')],
      ...[
        '-filter_complex',
        '[0]scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2,setsar=1[a];[1]scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2,setsar=1[b];[a][b]concat=n=2:v=1[v]',
        '-map',
        '[v]',
      ],
      ...['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', video],
    ]);
    const id = await upload(video);
    await ready(id);
    startFollowUps();
    const { items, labeling } = await labeled(id);
    assert.ok(labeling.frames >= 6 && labeling.frames <= 9, `1 fps plus the scene change: ${labeling.frames} frames`);
    const dog = byName(items, 'Dog');
    const horse = byName(items, 'Horse');
    assert.ok(dog && horse, `dog and horse among ${items.map((l: any) => l.name).join(', ')}`);
    assert.ok(dog.first_timestamp < 1 && dog.last_timestamp < 3, `the dog in the first three seconds: ${dog.first_timestamp}-${dog.last_timestamp}`);
    assert.ok(horse.first_timestamp >= 2.9 && horse.last_timestamp <= 6, `the horses after: ${horse.first_timestamp}-${horse.last_timestamp}`);
    assert.ok(dog.count >= 2 && horse.count >= 2, `seen in several frames: dog ${dog.count}, horse ${horse.count}`);
    assert.equal(byName(items, 'Animal').count, dog.count + horse.count - countBoth(dog, horse), 'the parent is seen wherever a child is');
    assert.ok(dog.mean_confidence <= dog.confidence && dog.mean_confidence > 0.5);
  });

  it('recomputes the labels on request, replacing the model labels without counting them twice', async () => {
    const id = await upload(photo('horses.jpg'));
    await ready(id);
    startFollowUps();
    const before = (await labeled(id)).items;
    const res = await call('POST', `/media/${id}/labels/recompute`, t.tenant.userKey);
    assert.equal(res.statusCode, 202, res.body);
    assert.equal(res.json().labeling.state, 'pending');
    await waitFor('labels recomputed', async () => (await call('GET', `/media/${id}/labels`, t.tenant.userKey)).json().labeling.state === 'done', 120_000);
    const again = (await call('GET', `/media/${id}/labels`, t.tenant.userKey)).json().items;
    const horse = (items: any[]) => byName(items, 'Horse');
    assert.equal(horse(again).count, horse(before).count, 'replaced, not added to');
    assert.equal(horse(again).confidence, horse(before).confidence, 'the same models see the same');
    assert.equal((await call('GET', `/media/${id}/moderation`, t.tenant.adminKey)).json().state, 'none');

    const bob = await call('POST', `/media/${id}/labels/recompute`, bobKey);
    assert.equal(bob.statusCode, 403, 'only the owner or an admin');
  });

  it("finds the tenant's bank entries in what people wrote about the media, with their parents", async () => {
    const bank = await call('POST', '/label-banks', t.tenant.adminKey, {
      name: 'pastimes',
      entries: [{ name: 'Sport' }, { name: 'Cycling', parent: 'Sport', phrases: ['bike'] }],
    });
    assert.equal(bank.statusCode, 201, bank.body);
    const id = await upload(photo('motorcycle_left.png'));
    await ready(id);
    startFollowUps();
    await labeled(id);
    const patched = await call('PATCH', `/media/${id}`, t.tenant.userKey, { title: 'My new bike!', tags: ['garage'] });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.equal((await call('POST', `/media/${id}/labels/recompute`, t.tenant.userKey)).statusCode, 202);
    await waitFor('labels recomputed', async () => (await call('GET', `/media/${id}/labels`, t.tenant.userKey)).json().labeling.state === 'done', 120_000);
    const { items } = (await call('GET', `/media/${id}/labels`, t.tenant.userKey)).json();
    const of = (name: string) => items.find((l: any) => l.name === name && l.source === 'caption');
    assert.ok(of('Cycling'), `cycling from the title among ${items.map((l: any) => `${l.name}/${l.source}`).join(', ')}`);
    assert.equal(of('Cycling').confidence, 1, 'found as a word');
    assert.equal(of('Cycling').parent, 'Sport');
    assert.ok(of('Sport'), 'a match on a child implies its ancestors');
    assert.ok(
      items.some((l: any) => l.name === 'Motorcycle' && l.source === 'model'),
      'the models saw the motorcycle',
    );
    const search = (await call('GET', '/search?q=cycling', t.tenant.userKey)).json();
    assert.ok(
      search.items.some((m: any) => m.id === id),
      'found by the matched entry',
    );
  });
});

/** Frames in which both labels were seen (the parent counts those once). */
function countBoth(a: { frames: Array<{ t: number }> }, b: { frames: Array<{ t: number }> }): number {
  const ta = new Set(a.frames.map((f) => f.t));
  return new Set(b.frames.map((f) => f.t).filter((t) => ta.has(t))).size;
}
