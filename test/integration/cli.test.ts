import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SAMPLES, testEnv, waitFor, type TestEnv } from '../support/harness.js';
import { migrationNames } from '../../src/db/migrate.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/qasar.js');

/** Makes short-lived garbage until the young generation has grown as far as it may, then prints its size. */
const GROW_YOUNG_GENERATION = `let keep = []; for (let i = 0; i < 2e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 50000) keep = []; }
console.log(require('v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size)`;

function qasar(args: string[], env: Record<string, string>) {
  const res = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env, LOG_LEVEL: 'silent' }, encoding: 'utf8', timeout: 60_000 });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

/** Starts a long-running subcommand; resolves once `ready` matches its stdout. */
function startProcess(
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ child: ChildProcess; match: RegExpMatchArray; output: () => string }> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start: ${out}`)), 30_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      const m = out.match(ready);
      if (m) {
        clearTimeout(timer);
        resolve({ child, match: m, output: () => out });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args[0]} exited with ${code}: ${out}`));
    });
  });
}

function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.removeAllListeners('exit');
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

/** Uploads a real video through the chunked API over HTTP and returns its media id. */
async function uploadVideo(base: string, key: string): Promise<string> {
  const data = fs.readFileSync(path.join(SAMPLES, 'h264-1920x1080-aac-deer.mp4'));
  const headers = { authorization: `Bearer ${key}` };
  const created = await fetch(`${base}/api/v1/upload`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ filename: 'deer.mp4', total_size: data.length, chunk_size: 256 * 1024 }),
  });
  assert.equal(created.status, 201);
  const s = (await created.json()) as { session_id: string; chunk_count: number; chunk_size: number };
  for (let i = 0; i < s.chunk_count; i++) {
    const res = await fetch(`${base}/api/v1/upload/${s.session_id}/chunk?index=${i}`, {
      method: 'PUT',
      headers: { ...headers, 'content-type': 'application/octet-stream' },
      body: data.subarray(i * s.chunk_size, (i + 1) * s.chunk_size),
    });
    assert.equal(res.status, 200);
  }
  const done = await fetch(`${base}/api/v1/upload/${s.session_id}/complete`, { method: 'POST', headers });
  assert.equal(done.status, 201);
  return ((await done.json()) as { id: string }).id;
}

async function waitReady(base: string, key: string, mediaId: string): Promise<void> {
  await waitFor('media ready', async () => {
    const res = await fetch(`${base}/api/v1/media/${mediaId}`, { headers: { authorization: `Bearer ${key}` } });
    return ((await res.json()) as { status: string }).status === 'ready';
  });
}

describe('qasar CLI', () => {
  let env: TestEnv;

  before(async () => {
    assert.ok(fs.existsSync(path.resolve(import.meta.dirname, '../../dist/cli/main.js')), 'dist/ is built (npm run build)');
    env = await testEnv();
  });
  after(() => env.cleanup());

  it('prints help for itself and each subcommand, with every setting', () => {
    const top = qasar(['--help'], env.env);
    assert.equal(top.code, 0);
    for (const cmd of ['serve', 'api', 'worker', 'migrate', 'tenant', 'key']) assert.match(top.stdout, new RegExp(`\\b${cmd}\\b`));
    for (const s of ['DATABASE_URL', 'REDIS_URL', 'STORAGE_ROOT', 'ENABLE_HLS', 'UPLOAD_MAX_SIZE']) assert.match(top.stdout, new RegExp(s));
    for (const sub of [['serve'], ['api'], ['worker'], ['migrate'], ['tenant', 'create'], ['key', 'create']]) {
      const res = qasar([...sub, '--help'], env.env);
      assert.equal(res.code, 0, sub.join(' '));
      assert.match(res.stdout, /Usage: qasar/);
    }
  });

  it('runs through its own shebang with the node flags it ships with (a 4 MB young generation)', () => {
    const res = spawnSync(BIN, ['--help'], { env: { ...process.env, ...env.env }, encoding: 'utf8' });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /Usage: qasar/);
    const probe = spawnSync(
      '/usr/bin/env',
      [
        '-S',
        fs
          .readFileSync(BIN, 'utf8')
          .split('\n', 1)[0]!
          .replace(/^#!\/usr\/bin\/env -S /, ''),
        '-e',
        GROW_YOUNG_GENERATION,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(probe.status, 0, probe.stderr);
    assert.ok(Number(probe.stdout) <= 8 * 1024 * 1024, `new space ${probe.stdout.trim()} bytes`);
    const unflagged = spawnSync(process.execPath, ['-e', GROW_YOUNG_GENERATION], { encoding: 'utf8' });
    assert.ok(Number(unflagged.stdout) > 8 * 1024 * 1024, `without the flag the new space grows past 8 MB: ${unflagged.stdout.trim()} bytes`);
  });

  it('stops at start-up on a bad setting with one line naming it', () => {
    const res = qasar(['migrate'], { ...env.env, ENABLE_HLS: 'maybe' });
    assert.equal(res.code, 2);
    assert.equal(res.stderr.trim().split('\n').length, 1);
    assert.match(res.stderr, /ENABLE_HLS/);
  });

  it('migrates, creates tenants and keys as JSON', async () => {
    const first = qasar(['migrate'], env.env);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(JSON.parse(first.stdout), { applied: [...migrationNames] });
    assert.deepEqual(JSON.parse(qasar(['migrate'], env.env).stdout), { applied: [] });

    const tenant = JSON.parse(qasar(['tenant', 'create', 'studio'], env.env).stdout);
    assert.equal(tenant.name, 'studio');
    assert.match(tenant.id, /^[0-9a-f-]{36}$/);
    const dup = qasar(['tenant', 'create', 'studio'], env.env);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /exists/);

    const key = JSON.parse(qasar(['key', 'create', '--tenant', tenant.id, '--user', 'bob'], env.env).stdout);
    assert.deepEqual({ ...key, id: undefined, key: undefined }, { id: undefined, key: undefined, tenant_id: tenant.id, user_id: 'bob', admin: false });
    assert.match(key.key, /^qsr_/);
    const admin = JSON.parse(qasar(['key', 'create', '--tenant', tenant.id, '--admin'], env.env).stdout);
    assert.equal(admin.admin, true);
    assert.equal(qasar(['key', 'create', '--tenant', 'nope'], env.env).code, 1);
  });

  it('serve: first start creates the admin key and prints it with the docs URL; uploads become ready; SIGTERM stops it', async () => {
    const own = await testEnv();
    try {
      const run = await startProcess(['serve'], { ...own.env, PORT: '0' }, /API docs: (http:\/\/127\.0\.0\.1:\d+)\/docs/);
      const base = run.match[1]!;
      const key = /QASAR_API_KEY=(qsr_\S+)/.exec(run.output())?.[1];
      assert.ok(key, 'the admin key is printed on first start');
      const ready = await fetch(`${base}/readyz`);
      assert.equal(ready.status, 200);
      const mediaId = await uploadVideo(base, key!);
      await waitReady(base, key!, mediaId);
      assert.equal(await stop(run.child), 0);

      const again = await startProcess(['serve'], { ...own.env, PORT: '0' }, /API docs: (http:\/\/127\.0\.0\.1:\d+)\/docs/);
      assert.doesNotMatch(again.output(), /QASAR_API_KEY/, 'the key is shown only on the first start');
      const still = await fetch(`${again.match[1]}/api/v1/media/${mediaId}`, { headers: { authorization: `Bearer ${key}` } });
      assert.equal(still.status, 200);
      assert.equal(await stop(again.child), 0);
    } finally {
      await own.cleanup();
    }
  });

  it('api and worker run as separate processes on the same settings', async () => {
    const own = await testEnv();
    try {
      assert.equal(qasar(['migrate'], own.env).code, 0);
      const tenant = JSON.parse(qasar(['tenant', 'create', 'split'], own.env).stdout);
      const key = JSON.parse(qasar(['key', 'create', '--tenant', tenant.id, '--user', 'ann'], own.env).stdout).key as string;
      const api = await startProcess(['api'], { ...own.env, PORT: '0' }, /API docs: (http:\/\/127\.0\.0\.1:\d+)\/docs/);
      let worker: ChildProcess | undefined;
      try {
        const base = api.match[1]!;
        const mediaId = await uploadVideo(base, key);
        // No worker yet: the media waits in the queue.
        await new Promise((r) => setTimeout(r, 500));
        const waiting = (await (await fetch(`${base}/api/v1/media/${mediaId}`, { headers: { authorization: `Bearer ${key}` } })).json()) as { status: string };
        assert.equal(waiting.status, 'queued');
        worker = spawn(process.execPath, [BIN, 'worker'], { env: { ...process.env, ...own.env, LOG_LEVEL: 'silent' }, stdio: 'ignore' });
        await waitReady(base, key, mediaId);
      } finally {
        if (worker) await stop(worker);
        await stop(api.child);
      }
    } finally {
      await own.cleanup();
    }
  });
});
