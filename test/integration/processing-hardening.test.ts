import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BACKEND, listFiles, SAMPLES, startTestApp, waitFor, type TestApp, getMedia, mediaSettled } from '../support/harness.js';
import { makeClip } from '../support/test-clip.js';
import { makeLyingMkv } from '../support/lying-mkv.js';
import { SessionClient } from '../support/upload-client.js';
import { buildZip } from '../unit/zip-fixtures.js';
import { fromJson } from '../../src/db/schema.js';
import { webmJobKey } from '../../src/queue/queue.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/qasar.js');

/** The parent pid and state of a live process, from /proc; undefined once it is gone (or reaped). */
async function procStat(pid: number): Promise<{ ppid: number; state: string; comm: string } | undefined> {
  const text = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!text) return undefined;
  const close = text.lastIndexOf(')');
  const [state, ppid] = text.slice(close + 2).split(' ');
  return { ppid: Number(ppid), state: state!, comm: text.slice(text.indexOf('(') + 1, close) };
}

/** Children of `parent` (by ppid) whose command name is `comm`. */
async function childrenNamed(parent: number, comm: string): Promise<number[]> {
  const pids = (await fs.readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number);
  const found: number[] = [];
  for (const pid of pids) {
    const st = await procStat(pid);
    if (st && st.ppid === parent && st.comm === comm) found.push(pid);
  }
  return found;
}

async function alive(pid: number): Promise<boolean> {
  const st = await procStat(pid);
  return !!st && st.state !== 'Z';
}

describe(`processing hardening (${BACKEND} backend)`, () => {
  let t: TestApp;
  let client: SessionClient;

  const media = (id: string) => getMedia(t, t.tenant.userKey, id);
  const settled = (id: string, timeoutMs = 300_000) => mediaSettled(t, t.tenant.userKey, id, timeoutMs);
  async function upload(data: Buffer, filename: string): Promise<string> {
    const { completed } = await client.uploadWhole(data, { filename, chunkSize: 64 * 1024 });
    assert.equal(completed.statusCode, 201, completed.body);
    return completed.json().id;
  }
  /** The media's failed job: the queue records it just after the media is marked. */
  async function failedJob(id: string) {
    return waitFor(`the failed job of ${id}`, async () => (await t.ctx.queue.listFailed()).find((f) => (f.data as { media_id?: string }).media_id === id));
  }
  function assertPlainReason(reason: string, what: string) {
    assert.ok(!reason.includes(t.env.settings.storageRoot), `${what}: no storage path in ${JSON.stringify(reason)}`);
    assert.doesNotMatch(reason, /(^|[\s'"(=:])\/[\w.-]+\//, `${what}: no absolute path in ${JSON.stringify(reason)}`);
    assert.doesNotMatch(
      reason,
      /ffmpeg|ffprobe|pdfinfo|pdftoppm|Invalid data found|moov atom|Syntax Error|vips/i,
      `${what}: no tool internals in ${JSON.stringify(reason)}`,
    );
  }

  before(async () => {
    t = await startTestApp({ MAX_VIDEO_DURATION: '60s', ENABLE_WEBM: 'false' }, { worker: true });
    client = new SessionClient(t.app, t.tenant.userKey);
  });
  after(async () => {
    await t.close();
  });

  it('fails an MKV that declares 10 s and whose frames run to 1800 s, without making a 30-minute ladder', async () => {
    const file = path.join(t.env.tmp, 'g.mkv');
    await makeLyingMkv(file, 10);
    const id = await upload(await fs.readFile(file), 'g.mkv');
    const m = await settled(id);
    assert.equal(m.status, 'error');
    assert.equal(m.error.code, 'duration-mismatch');
    assert.match(m.error.reason, /timestamps run past its declared length of 10 s/);
    const failed = await failedJob(id);
    assert.equal(failed.attempts, 1, 'a lying file fails at once, without retries');
    const files = await listFiles(t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: id }));
    assert.ok(
      files.every((f) => f.startsWith('media/')),
      `nothing but the original is left: ${files.join(', ')}`,
    );
  });

  it('says what is wrong with a file in plain words: no server paths, no tool output', async () => {
    const cases: Array<[string, Buffer]> = [
      // MP4 magic followed by garbage: ffprobe prints the stored path and "Invalid data found".
      ['fake.mp4', Buffer.concat([Buffer.from('000000186674797069736f6d0000020069736f6d69736f32', 'hex'), randomBytes(50_000)])],
      // A PDF header and nothing a PDF needs: pdfinfo prints "Syntax Error…" lines.
      ['broken.pdf', Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(4_000)])],
      // A PNG signature and a damaged header: libvips names the file it read.
      [
        'broken.png',
        Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('0000000d49484452', 'hex'), randomBytes(3_000)]),
      ],
    ];
    const ids: Array<[string, string]> = [];
    for (const [name, data] of cases) ids.push([name, await upload(data, name)]);
    for (const [name, id] of ids) {
      const m = await settled(id, 120_000);
      assert.equal(m.status, 'error', `${name} ends in error`);
      assert.ok(m.error.reason, `${name} has a reason`);
      // Status events carry this same record field.
      assertPlainReason(m.error.reason, name);
    }
  });

  it('fails an EPUB whose XML declares an external entity at once, as unreadable-media', async () => {
    const container = `<?xml version="1.0"?>
<!DOCTYPE container [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="&xxe;" media-type="application/oebps-package+xml"/></rootfiles>
</container>`;
    const epub = buildZip([
      { name: 'mimetype', data: 'application/epub+zip', store: true },
      { name: 'META-INF/container.xml', data: container },
      { name: 'OEBPS/content.opf', data: '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata/><manifest/></package>' },
    ]);
    const id = await upload(epub, 'xxe.epub');
    const m = await settled(id, 120_000);
    assert.equal(m.kind, 'document');
    assert.equal(m.status, 'error');
    assert.equal(m.error.code, 'unreadable-media');
    assert.match(m.error.reason, /external entity/);
    assert.equal((await failedJob(id)).attempts, 1, 'not retried as a transient error');
  });

  it('removes the scratch folder of a media whose last attempt died, when the media is failed', async () => {
    const id = await upload(await fs.readFile(path.join(SAMPLES, 'h264-640x272-noaudio-bikes.mp4')), 'bikes.mp4');
    await settled(id, 120_000);
    const mediaDir = t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: id });
    // What an attempt killed mid-transcode leaves: its scratch folder, half filled.
    await fs.mkdir(path.join(mediaDir, '.work-deadbeef0001', 'dash'), { recursive: true });
    await fs.writeFile(path.join(mediaDir, '.work-deadbeef0001', 'dash', 'seg-0-00001.m4s'), randomBytes(1024));
    const old = new Date(Date.now() - 3_600_000).toISOString();
    await t.ctx.database.db
      .updateTable('mediaassets')
      .set({ status: 'processing', error_code: null, error_reason: null, updated_at: old })
      .where('id', '=', id)
      .execute();
    assert.equal(await t.ctx.worker.failAbandoned(60_000), 1);
    assert.equal((await media(id)).status, 'error');
    const files = await listFiles(mediaDir);
    assert.ok(!files.some((f) => f.startsWith('.work-')), `no scratch left: ${files.join(', ')}`);
  });

  it('leaves the scratch folder of a pending WebM job alone when a reprocess of its media fails', async () => {
    const id = await upload(await fs.readFile(path.join(SAMPLES, 'h264-640x272-noaudio-bikes.mp4')), 'bikes.mp4');
    assert.equal((await settled(id, 120_000)).status, 'ready');
    const mediaDir = t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: id });
    // A WebM job queued before the reprocess, still encoding in its own scratch folder.
    await t.ctx.queue.enqueue('make-webm', { media_id: id, tenant_id: t.tenant.id }, { dedupeKey: webmJobKey(id), delayMs: 3_600_000 });
    await fs.mkdir(path.join(mediaDir, '.work-webm-0123456789ab', 'webm'), { recursive: true });
    await fs.writeFile(path.join(mediaDir, '.work-webm-0123456789ab', 'webm', 'video.webm'), randomBytes(1024));
    // What a dead processing attempt left, which the failing one does remove.
    await fs.mkdir(path.join(mediaDir, '.work-media-0123456789ab', 'dash'), { recursive: true });
    await fs.writeFile(path.join(mediaDir, '.work-media-0123456789ab', 'dash', 'seg-0-00001.m4s'), randomBytes(1024));
    // The reprocess fails for good: the stored original is no video any more.
    const row = await t.ctx.database.db.selectFrom('mediaassets').select('file_metadata').where('id', '=', id).executeTakeFirstOrThrow();
    const original = path.join(t.env.settings.storageRoot, fromJson<any>(row.file_metadata, {}).original.path);
    await fs.writeFile(original, randomBytes(50_000));
    const res = await t.app.inject({ method: 'POST', url: `${t.ctx.settings.apiPrefix}/media/${id}/reprocess`, headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 202, res.body);
    await failedJob(id);
    assert.equal((await media(id)).status, 'error');
    const files = await listFiles(mediaDir);
    assert.ok(files.includes('.work-webm-0123456789ab/webm/video.webm'), `the WebM job's folder is kept: ${files.join(', ')}`);
    assert.ok(!files.some((f) => f.startsWith('.work-media-')), `the processing job's scratch is removed: ${files.join(', ')}`);
  });

  it("has a WebM job clear a dead WebM attempt's scratch folder before it publishes its own", async () => {
    const id = await upload(await fs.readFile(path.join(SAMPLES, 'h264-640x272-noaudio-bikes.mp4')), 'bikes.mp4');
    assert.equal((await settled(id, 120_000)).status, 'ready');
    const mediaDir = t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: id });
    await fs.mkdir(path.join(mediaDir, '.work-webm-deadbeef0002', 'webm'), { recursive: true });
    await fs.writeFile(path.join(mediaDir, '.work-webm-deadbeef0002', 'webm', 'video.webm'), randomBytes(1024));
    await t.ctx.queue.enqueue('make-webm', { media_id: id, tenant_id: t.tenant.id }, { dedupeKey: webmJobKey(id) });
    await waitFor('the WebM to be published', async () => (await media(id)).file_metadata?.artifacts?.webm, 300_000);
    const files = await listFiles(mediaDir);
    assert.ok(files.includes('webm/video.webm'), files.join(', '));
    assert.ok(!files.some((f) => f.startsWith('.work-')), `no scratch left: ${files.join(', ')}`);
  });
});

describe(`processing hardening: tools die with their worker (${BACKEND} backend)`, () => {
  let t: TestApp;

  before(async () => {
    t = await startTestApp({}, { worker: false });
  });
  after(async () => {
    await t.close();
  });

  it('kills the ffmpeg of a worker process that is SIGKILLed mid-transcode', async () => {
    const clip = path.join(t.env.tmp, 'long.mp4');
    makeClip(clip, { seconds: 20, size: '1280x720', rate: 30, toneHz: 300 });
    const env = { ...process.env, ...t.env.env, LOG_LEVEL: 'silent' };
    // Its own process group, only so the test can clean up whatever survives.
    const worker = spawn(process.execPath, [BIN, 'worker'], { env, stdio: 'ignore', detached: true });
    const client = new SessionClient(t.app, t.tenant.userKey);
    try {
      const { completed } = await client.uploadWhole(await fs.readFile(clip), { filename: 'long.mp4', chunkSize: 256 * 1024 });
      assert.equal(completed.statusCode, 201, completed.body);
      const ffmpeg = await waitFor('the worker running ffmpeg', async () => (await childrenNamed(worker.pid!, 'ffmpeg'))[0], 60_000);
      process.kill(worker.pid!, 'SIGKILL'); // the worker alone, not its process group
      await new Promise((r) => worker.once('exit', r));
      await waitFor('its ffmpeg gone', async () => !(await alive(ffmpeg)), 10_000).catch(() => undefined);
      assert.equal(await alive(ffmpeg), false, `ffmpeg ${ffmpeg} outlived its SIGKILLed worker`);
    } finally {
      try {
        process.kill(-worker.pid!, 'SIGKILL');
      } catch {
        // nothing left in the group
      }
    }
  });
});
