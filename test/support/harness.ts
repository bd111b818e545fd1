import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import pg from 'pg';
import { loadSettings, type Settings } from '../../src/config/settings.js';
import { createContext, type AppContext, type ContextOptions } from '../../src/cli/compose.js';
import { buildApp } from '../../src/http/app.js';
import { createLogger } from '../../src/shared/logger.js';
import type { Clock } from '../../src/shared/clock.js';

/** Which backends this run of the suite uses: `embedded` (SQLite, embedded queue) or `scale` (PostgreSQL, Redis). */
export const BACKEND = (process.env.QASAR_TEST_BACKEND ?? 'embedded') as 'embedded' | 'scale';
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export const SAMPLES = path.resolve(import.meta.dirname, '../../../shared/media-samples');

export interface TestEnv {
  settings: Settings;
  /** Environment variables that reproduce these settings in a child process. */
  env: Record<string, string>;
  tmp: string;
  cleanup(): Promise<void>;
}

/**
 * Settings isolated for one test file: its own temp storage root, and its own SQLite file or
 * PostgreSQL schema and Redis key prefix. On the scale backend an unreachable PostgreSQL or
 * Redis throws (the test fails; it is never skipped).
 */
export async function testEnv(overrides: Record<string, string> = {}): Promise<TestEnv> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-test-'));
  const id = randomBytes(5).toString('hex');
  const env: Record<string, string> = {
    STORAGE_ROOT: path.join(tmp, 'storage'),
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    UPLOAD_MIN_CHUNK_SIZE: '1KiB',
    JOB_BACKOFF: '100ms',
    JOB_LEASE: '2s',
    UPLOAD_SWEEP_INTERVAL: '1h',
    // VP9 is slow: tests that check the WebM rendition turn it on.
    ENABLE_WEBM: 'false',
  };
  if (BACKEND === 'scale') {
    await assertPostgres();
    await assertRedis();
    env.DATABASE_URL = TEST_DATABASE_URL;
    env.DATABASE_SCHEMA = `qasar_t_${id}`;
    env.REDIS_URL = TEST_REDIS_URL;
    env.REDIS_PREFIX = `qasar-t-${id}`;
  } else {
    env.DATABASE_URL = `sqlite:${path.join(tmp, 'qasar.sqlite')}`;
    env.REDIS_URL = '';
  }
  Object.assign(env, overrides);
  const settings = loadSettings(env);
  return {
    settings,
    env,
    tmp,
    cleanup: async () => {
      if (settings.redisUrl) await deleteRedisPrefix(settings.redisUrl, settings.redisPrefix);
      if (settings.databaseUrl.startsWith('postgres')) await dropSchema(settings.databaseUrl, settings.databaseSchema);
      await fs.rm(tmp, { recursive: true, force: true });
    },
  };
}

async function assertPostgres(): Promise<void> {
  const c = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    await c.query('select 1');
  } catch (err) {
    throw new Error(`PostgreSQL is required for the scale backend and is not reachable at ${TEST_DATABASE_URL}: ${(err as Error).message}`);
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function assertRedis(): Promise<void> {
  const r = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    await r.ping();
  } catch (err) {
    throw new Error(`Redis is required for the scale backend and is not reachable at ${TEST_REDIS_URL}: ${(err as Error).message}`);
  } finally {
    r.disconnect();
  }
}

async function dropSchema(url: string, schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`drop schema if exists "${schema}" cascade`);
  } finally {
    await c.end();
  }
}

export async function deleteRedisPrefix(url: string, prefix: string): Promise<void> {
  const r = new Redis(url);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}

export interface TestApp {
  env: TestEnv;
  ctx: AppContext;
  app: FastifyInstance;
  /** A tenant with an admin key and a user-bound key. */
  tenant: { id: string; adminKey: string; userKey: string; userId: string };
  /** A second tenant, for isolation checks. */
  other: { id: string; adminKey: string; userKey: string; userId: string };
  auth(key: string): { authorization: string };
  /** Stops the in-process worker (for tests that run workers as separate processes). */
  stopWorker(): Promise<void>;
  close(): Promise<void>;
}

export async function startTestApp(
  overrides: Record<string, string> = {},
  opts: { worker?: boolean; clock?: Clock; store?: ContextOptions['store'] } = {},
): Promise<TestApp> {
  const env = await testEnv(overrides);
  const ctx = await createContext(env.settings, {
    log: createLogger(env.settings.logLevel),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.store ? { store: opts.store } : {}),
  });
  const app = await buildApp(ctx);
  await app.ready();
  const makeTenant = async (name: string) => {
    const t = await ctx.tenancy.createTenant(name);
    const admin = await ctx.tenancy.createKey({ tenantId: t.id, admin: true });
    const user = await ctx.tenancy.createKey({ tenantId: t.id, userId: 'alice' });
    return { id: t.id, adminKey: admin.key, userKey: user.key, userId: 'alice' };
  };
  await changeBusListening(ctx);
  const tenant = await makeTenant('acme');
  const other = await makeTenant('globex');
  let worker = opts.worker ? ctx.worker.start(1) : undefined;
  const stopWorker = async () => {
    await worker?.close();
    worker = undefined;
  };
  return {
    env,
    ctx,
    app,
    tenant,
    other,
    auth: (key) => ({ authorization: `Bearer ${key}` }),
    stopWorker,
    close: async () => {
      await stopWorker();
      await app.close();
      await ctx.close();
      await env.cleanup();
    },
  };
}

/** Caches are bypassed until a context's change bus listens: tests of caching start once it does. */
export async function changeBusListening(ctx: AppContext): Promise<void> {
  await waitFor('the change bus to listen', async () => ctx.changeBus?.live ?? true, 15_000);
}

/** Waits until `fn` returns a truthy value, polling; throws with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => Promise<T>, timeoutMs = 15_000): Promise<Exclude<T, undefined | null | false>> {
  const start = Date.now();
  for (;;) {
    let v: T;
    try {
      v = await fn();
    } catch (err) {
      if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    if (v) return v as Exclude<T, undefined | null | false>;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The media record as `key` sees it. */
export async function getMedia(t: TestApp, key: string, id: string): Promise<any> {
  return (await t.app.inject({ url: `${t.ctx.settings.apiPrefix}/media/${id}`, headers: t.auth(key) })).json();
}

/** Waits until a media is `ready` or `error`, and returns its record. */
export function mediaSettled(t: TestApp, key: string, id: string, timeoutMs = 120_000): Promise<any> {
  return waitFor(
    `media ${id} settled`,
    async () => {
      const m = await getMedia(t, key, id);
      if (!['ready', 'error'].includes(m.status)) throw new Error(`still ${m.status} (${m.original_filename ?? JSON.stringify(m)})`);
      return m;
    },
    timeoutMs,
  );
}

/** Lists every file under a folder (relative paths), for "nothing left behind" checks. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

/** Asserts an RFC 9457 problem response with the given status and stable type; returns its body. */
export function expectProblem(
  res: { statusCode: number; headers: Record<string, unknown>; body: string; json(): any },
  status: number,
  slug: string,
): Record<string, any> {
  const where = `${res.statusCode} ${res.body.slice(0, 300)}`;
  if (res.statusCode !== status) throw new Error(`expected status ${status}, got ${where}`);
  const ct = String(res.headers['content-type'] ?? '');
  if (!/^application\/problem\+json(;|$)/.test(ct)) throw new Error(`expected application/problem+json, got "${ct}"`);
  const body = res.json();
  if (body.type !== `/problems/${slug}`) throw new Error(`expected type /problems/${slug}, got ${body.type}: ${where}`);
  if (body.status !== status || typeof body.title !== 'string' || !body.title) throw new Error(`malformed problem body: ${where}`);
  return body;
}
