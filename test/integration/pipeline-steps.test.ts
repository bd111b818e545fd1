/**
 * A processing step added from outside the composition root: registered on the running worker's
 * pipeline, it runs, publishes its folder and is served, on the backend QASAR_TEST_BACKEND names.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StepContext } from '../../src/processing/pipeline.js';
import { mediaPrefix } from '../../src/storage/layout.js';
import { makeWorkDir, mediaFolderIn, publishFolders } from '../../src/storage/scratch.js';
import { runWebmStep } from '../../src/processing/steps/webm-step.js';
import { BACKEND, getMedia, listFiles, mediaSettled, startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { makeClip } from '../support/test-clip.js';
import { SessionClient } from '../support/upload-client.js';

/** A toy follow-up: a text file in webp/ (a folder videos do not use otherwise) naming the poster it saw. */
async function toyStep(c: StepContext): Promise<void> {
  const ref = { tenantId: c.media.tenant_id, userId: c.media.user_id, mediaId: c.media.id };
  const posters = (await c.deps.store.list(`${mediaPrefix(ref)}/posters`)).map((o) => path.posix.basename(o.key));
  const dir = mediaFolderIn(c.deps.store, ref);
  const work = await makeWorkDir(dir, 'media');
  await fs.mkdir(path.join(work, 'webp'));
  await fs.writeFile(path.join(work, 'webp', 'toy.txt'), `toy step of ${c.media.id}: ${posters.sort().join(' ')}\n`);
  const published = await publishFolders(work, dir, c.publishes);
  assert.deepEqual(published, ['webp']);
}

describe(`processing steps registered from outside (${BACKEND} backend)`, () => {
  let t: TestApp;
  let clip: Buffer;

  before(async () => {
    t = await startTestApp({}, { worker: true });
    const file = path.join(t.env.tmp, 'clip.mp4');
    makeClip(file, { seconds: 1 });
    clip = await fs.readFile(file);
  });
  after(() => t.close());

  it('runs a follow-up step registered in one line, publishes its folder, and serves its file', async () => {
    t.ctx.worker.pipeline.register({ name: 'toy', kinds: ['video'], stage: 'follow-up', needs: ['posters'], publishes: ['webp'], run: toyStep });

    const { completed } = await new SessionClient(t.app, t.tenant.userKey).uploadWhole(clip, { filename: 'clip.mp4' });
    assert.equal(completed.statusCode, 201, completed.body);
    const id = completed.json().id as string;
    assert.equal((await mediaSettled(t, t.tenant.userKey, id)).status, 'ready');
    const m = await waitFor('the toy step to run', async () => {
      const r = await getMedia(t, t.tenant.userKey, id);
      return r.file_metadata.pending?.length === 0 ? r : undefined;
    });
    assert.ok(m.file_metadata.artifacts.poster, 'the main step ran first');

    const res = await t.app.inject({ url: `${t.ctx.settings.apiPrefix}/media/${id}/files/webp/toy.txt`, headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 200, res.body);
    assert.match(res.body, new RegExp(`^toy step of ${id}: .*poster`));
    const files = await listFiles(t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: id }));
    assert.ok(!files.some((f) => f.startsWith('.')), `no scratch left: ${files.join(', ')}`);
  });

  it('records a WebM rendition only once each of its folders is really published', async () => {
    const { completed } = await new SessionClient(t.app, t.tenant.userKey).uploadWhole(clip, { filename: 'clip.mp4' });
    const id = completed.json().id as string;
    assert.equal((await mediaSettled(t, t.tenant.userKey, id)).status, 'ready');
    const media = await t.ctx.database.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id', 'user_id', 'kind', 'status'])
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    const deps = { db: t.ctx.database.db, store: t.ctx.store, layout: t.ctx.layout, settings: t.ctx.settings, changes: t.ctx.changes };
    const job = { id: 'test', name: 'follow-up' as const, data: { media_id: id, step: 'webm' }, attempt: 1 };
    // webp/ stands for a folder that went missing from the scratch folder before publishing.
    await assert.rejects(runWebmStep(deps, media, job, ['webm', 'webp']), /WebM rendition was not published: webp\/ was no longer in its scratch folder/);
    assert.equal((await getMedia(t, t.tenant.userKey, id)).file_metadata.artifacts.webm, undefined, 'nothing recorded');
    await runWebmStep(deps, media, job, ['webm']);
    assert.equal((await getMedia(t, t.tenant.userKey, id)).file_metadata.artifacts.webm, 'webm/video.webm');
  });

  it('refuses a step that needs what no earlier step publishes, or publishes what another step does', () => {
    const pipeline = t.ctx.worker.pipeline;
    const step = { kinds: ['video'] as const, stage: 'follow-up' as const, run: async () => undefined };
    assert.throws(
      () => pipeline.register({ ...step, name: 'needs-sprites', needs: ['webp'], publishes: [] }),
      /needs webp\/, which no main step of video before it publishes/,
    );
    assert.throws(
      () => pipeline.register({ ...step, name: 'second-webm', needs: ['media'], publishes: ['webm'] }),
      /publishes a folder step webm publishes for video/,
    );
    assert.throws(() => pipeline.register({ ...step, name: 'video', needs: [], publishes: [] }), /registered already/);
    assert.throws(() => pipeline.register({ ...step, name: 'media', needs: [], publishes: [] }), /lower-case/);
    assert.throws(() => pipeline.register({ ...step, name: 'original', needs: [], publishes: ['media'] }), /replaces the original/);
  });
});
