/**
 * API benchmark (not a test): seeds a library of media with labels, tags and captions, starts the
 * real server (`qasar api`, a child process) and measures read endpoints with real HTTP requests.
 *
 *   npm run bench:api -- [--media 100000] [--concurrency 16] [--client wrk|node] [--duration 8] [--warmup 4]
 *                        [--requests 2000 (node client)] [--backends sqlite,postgres] [--out bench/results/api.json]
 *                        [--cases get,search,feed,related] [--redis] [--cached-only] [--server-node-args="--cpu-prof"]
 *                        [--data <folder to keep the seeded library in and reuse>]
 *
 * Vocabulary: 3,000 words drawn with a Zipf distribution (s = 1.07) for captions, titles and
 * tags; 300 labels in a hierarchy (30 parents × 9 children) of which 100 have bank phrases;
 * each media gets 1-4 labels (child labels Zipf-weighted) with model confidences. The library is
 * seeded with direct bulk inserts and the search indexer's bulk path; the built server (`dist`)
 * runs as `qasar api`. Every endpoint gets a warm-up (--warmup seconds, 4, and longer until one pass over its paths), then a closed loop of the given concurrency
 * over keep-alive connections: by default wrk (C, Debian's `wrk`), which takes little of the
 * CPU the server shares with it, for --duration seconds; or node:http here for N requests.
 * Searches and get-by-id are measured as the server runs (a repeated search reuses its ranking
 * for SEARCH_CACHE_TTL; a record read again within MEDIA_CACHE_TTL is served from memory; each
 * endpoint cycles through 5,000 paths drawn at random, so get-by-id reads 5,000 of the media over
 * and over) and again with both caches off (SEARCH_CACHE_TTL=0 MEDIA_CACHE_TTL=0).
 * PostgreSQL runs in its own schema (dropped afterwards); TEST_DATABASE_URL points elsewhere.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sql, type Insertable } from 'kysely';
import pg from 'pg';
import { loadSettings } from '../../src/config/settings.js';
import { createContext, type AppContext } from '../../src/cli/compose.js';
import type { AssetLabelsTable, MediaAssetsTable } from '../../src/db/schema.js';
import { newId } from '../../src/shared/ids.js';
import { createLogger } from '../../src/shared/logger.js';
import { startBuiltServer } from '../lib/built-server.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const { values: argv } = parseArgs({
  options: {
    media: { type: 'string', default: '100000' },
    requests: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    backends: { type: 'string', default: 'sqlite,postgres' },
    out: { type: 'string', default: path.join(ROOT, 'bench/results/api.json') },
    /** Only the endpoints whose names contain one of these (comma-separated), e.g. --cases search,feed. */
    cases: { type: 'string', default: '' },
    /** Load generator: wrk (C, Debian package `wrk`; light, so the server gets the CPU) or node (node:http in this process). */
    client: { type: 'string', default: 'wrk' },
    /** Seconds each endpoint is measured with wrk (after the warm-up). */
    duration: { type: 'string', default: '8' },
    /** Seconds of wrk warm-up per endpoint, extended until it made one pass over its 5,000 paths (caches are measured warm). */
    warmup: { type: 'string', default: '4' },
    /** A folder to keep the seeded library in and reuse on the next run with the same --data (PostgreSQL keeps its schema). */
    data: { type: 'string', default: '' },
    /** PostgreSQL with Redis (the scale-up topology: BullMQ, change announcements), not PostgreSQL alone. */
    redis: { type: 'boolean', default: false },
    /** Extra node flags for the server child, e.g. --server-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof". */
    'server-node-args': { type: 'string', default: '' },
    /** Only as the server runs by default: not again with the caches off (ranking a common word every time takes minutes to warm up). */
    'cached-only': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (argv.help) {
  process.stdout.write(`${fs.readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]}*/\n`);
  process.exit(0);
}
const MEDIA = Number(argv.media);
const REQUESTS = Number(argv.requests);
const CONCURRENCY = Number(argv.concurrency);
const CLIENT = argv.client === 'node' ? 'node' : 'wrk';
if (CLIENT === 'wrk' && spawnSync('wrk', ['-v']).error) throw new Error('wrk is not installed (Debian: apt-get install wrk), or pass --client node');
const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

// ---------------------------------------------------------------------------------------------
// A deterministic random source and the vocabulary

let seed = 42;
const rand = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
};
const SYLLABLES = ['ka', 'lo', 'mi', 'ra', 'to', 'ne', 'su', 'vi', 'de', 'po', 'ba', 'ri', 'ge', 'an', 'or', 'el', 'us', 'in', 'fa', 'zo'];
function makeWord(i: number): string {
  let w = '';
  let n = i + 20;
  do {
    w += SYLLABLES[n % SYLLABLES.length];
    n = Math.floor(n / SYLLABLES.length);
  } while (n > 0);
  return w;
}
const WORDS = Array.from({ length: 3000 }, (_, i) => makeWord(i));

/** Zipf sampler over n ranks by inverse CDF. */
function zipf(n: number, s: number): () => number {
  const cdf: number[] = [];
  let sum = 0;
  for (let k = 1; k <= n; k++) {
    sum += 1 / k ** s;
    cdf.push(sum);
  }
  return () => {
    const x = rand() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}
const wordRank = zipf(WORDS.length, 1.07);
const word = () => WORDS[wordRank()]!;
const sentence = (min: number, max: number) => Array.from({ length: min + Math.floor(rand() * (max - min + 1)) }, word).join(' ');

// ---------------------------------------------------------------------------------------------
// Seeding

interface Seeded {
  tenantId: string;
  key: string;
  mediaIds: string[];
  commonTerm: string;
  rareTerm: string;
  prefix: string;
}

async function seedLibrary(ctx: AppContext): Promise<Seeded> {
  const db = ctx.database.db;
  const tenant = await ctx.tenancy.createTenant(`bench-${randomBytes(3).toString('hex')}`);
  const key = (await ctx.tenancy.createKey({ tenantId: tenant.id, userId: 'u0' })).key;
  const now = Date.now();
  const at = new Date(now).toISOString();

  // Labels: 30 parents with 9 children each; 100 children have bank phrases.
  const labelIds: string[] = [];
  const parents: string[] = [];
  const labelRows = [];
  for (let p = 0; p < 30; p++) {
    const id = newId();
    parents.push(id);
    labelRows.push({ id, tenant_id: tenant.id, name: `${makeWord(5000 + p)} group`, kind: 'general' as const, parent_id: null, created_at: at });
    for (let c = 0; c < 9; c++) {
      const cid = newId();
      labelIds.push(cid);
      labelRows.push({ id: cid, tenant_id: tenant.id, name: makeWord(6000 + p * 9 + c), kind: 'general' as const, parent_id: id, created_at: at });
    }
  }
  await db.insertInto('labels').values(labelRows).execute();
  const bankId = newId();
  await db
    .insertInto('label_banks')
    .values({ id: bankId, tenant_id: tenant.id, name: 'bench', kind: 'general', description: null, created_at: at, updated_at: at })
    .execute();
  for (let i = 0; i < 100; i++) {
    const entryId = newId();
    const label = labelRows.find((l) => l.id === labelIds[i])!;
    await db
      .insertInto('label_bank_entries')
      .values({ id: entryId, bank_id: bankId, tenant_id: tenant.id, name: label.name, label_id: label.id, parent_id: null, threshold: null, created_at: at })
      .execute();
    await db
      .insertInto('label_bank_phrases')
      .values({ id: newId(), entry_id: entryId, tenant_id: tenant.id, phrase: `${makeWord(7000 + i)} ${makeWord(8000 + i)}` })
      .execute();
  }
  const labelRank = zipf(labelIds.length, 1.0);

  const mediaIds: string[] = [];
  const BATCH = 400;
  const started = Date.now();
  for (let b = 0; b < MEDIA; b += BATCH) {
    const rows: Insertable<MediaAssetsTable>[] = [];
    const links: Insertable<AssetLabelsTable>[] = [];
    for (let i = b; i < Math.min(MEDIA, b + BATCH); i++) {
      const id = newId();
      mediaIds.push(id);
      const created = new Date(now - (MEDIA - i) * 60_000).toISOString();
      const tags = Array.from({ length: Math.floor(rand() * 4) }, word);
      rows.push({
        id,
        tenant_id: tenant.id,
        user_id: `u${i % 50}`,
        status: 'ready' as const,
        error_code: null,
        error_reason: null,
        kind: 'video' as const,
        original_filename: `${word()}_${word()}_${i}.mp4`,
        mime_type: 'video/mp4',
        size: 1000 + i,
        sha256: 'x'.repeat(64),
        caption: sentence(6, 16),
        user_tags: JSON.stringify(tags),
        file_metadata: JSON.stringify({
          duration: 10 + (i % 600),
          width: 1920,
          height: 1080,
          artifacts: { hls: 'hls/master.m3u8', dash: 'dash/manifest.mpd', poster: { jpeg: 'posters/poster.jpg' } },
        }),
        upload_session_id: null,
        created_at: created,
        updated_at: created,
        processing_started_at: null,
        ready_at: created,
        playback_key: randomBytes(8).toString('hex'),
        title: rand() < 0.3 ? sentence(2, 5) : null,
        description: null,
      });
      const chosen = new Set<string>();
      const n = 1 + Math.floor(rand() * 4);
      for (let k = 0; k < n; k++) chosen.add(labelIds[labelRank()]!);
      for (const labelId of chosen) {
        links.push({
          id: newId(),
          tenant_id: tenant.id,
          user_id: `u${i % 50}`,
          media_id: id,
          label_id: labelId,
          source: 'model' as const,
          count: 1,
          confidence: 0.5 + rand() / 2,
          frame_data: '[]',
          first_seen_at: created,
          last_seen_at: created,
        });
      }
    }
    await db.transaction().execute(async (trx) => {
      await trx.insertInto('mediaassets').values(rows).execute();
      for (let i = 0; i < links.length; i += 500)
        await trx
          .insertInto('asset_labels')
          .values(links.slice(i, i + 500))
          .execute();
    });
    await ctx.discovery.indexer.reindexMany(
      tenant.id,
      rows.map((r) => r.id),
    );
    if ((b / BATCH) % 25 === 0) log(`seeded ${b + rows.length} media (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  }
  log(`seeded ${MEDIA} media in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  // Common: the 10th most frequent word (the first few act as stop words); rare: rank 2000.
  return { tenantId: tenant.id, key, mediaIds, commonTerm: WORDS[9]!, rareTerm: WORDS[2000]!, prefix: WORDS[30]!.slice(0, 3) };
}

// ---------------------------------------------------------------------------------------------
// Load generation

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function request(url: string, key: string): Promise<{ status: number; ms: number }> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers: { authorization: `Bearer ${key}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    });
    req.on('error', reject);
  });
}

interface Result {
  endpoint: string;
  requests: number;
  errors: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  rps: number;
}

/**
 * The same measurement with wrk: one thread, CONCURRENCY connections, each request a path drawn
 * from a list made here (a Lua script picks one per request); latencies from wrk's histogram.
 */
async function measureWithWrk(name: string, urls: () => string, key: string, seconds: number): Promise<Result> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'qasar-bench-wrk-'));
  try {
    const first = new URL(urls());
    const paths = [first, ...Array.from({ length: 4999 }, () => new URL(urls()))].map((u) => u.pathname + u.search);
    await fsp.writeFile(path.join(dir, 'paths.txt'), `${paths.join('\n')}\n`);
    const script = path.join(dir, 'bench.lua');
    await fsp.writeFile(
      script,
      `local paths = {}
for line in io.lines(${JSON.stringify(path.join(dir, 'paths.txt'))}) do paths[#paths + 1] = line end
local i = 0
wrk.headers["Authorization"] = "Bearer ${key}"
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format('WRK_RESULT {"requests": %d, "errors": %d, "seconds": %f, "p50": %f, "p95": %f, "p99": %f}\\n',
    summary.requests, errors, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
`,
    );
    const run = (secs: number) => {
      const out = spawnSync('wrk', ['-t1', `-c${CONCURRENCY}`, `-d${secs}s`, '-s', script, first.origin], { encoding: 'utf8' });
      const m = /WRK_RESULT (\{.*\})/.exec(out.stdout ?? '');
      if (out.status !== 0 || !m) throw new Error(`wrk failed: ${out.stderr || out.stdout}`);
      return JSON.parse(m[1]!) as { requests: number; errors: number; seconds: number; p50: number; p95: number; p99: number };
    };
    // The same closed loop, unmeasured, until it made one pass over the paths at least (a server's
    // caches are measured as they run, warm).
    let warmed = 0;
    for (let secs = Number(argv.warmup); warmed < paths.length && secs > 0; ) {
      const w = run(secs);
      warmed += w.requests;
      secs = Math.min(60, Math.ceil(((paths.length - warmed) / Math.max(1, w.requests / w.seconds)) * 1.2));
    }
    const r = run(seconds);
    const round = (x: number) => Math.round(x * 100) / 100;
    return {
      endpoint: name,
      requests: r.requests,
      errors: r.errors,
      p50_ms: round(r.p50),
      p95_ms: round(r.p95),
      p99_ms: round(r.p99),
      rps: Math.round(r.requests / r.seconds),
    };
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

async function measure(name: string, urls: () => string, key: string): Promise<Result> {
  const run = async (n: number) => {
    const times: number[] = [];
    let errors = 0;
    let next = 0;
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next++ < n) {
          const r = await request(urls(), key);
          if (r.status !== 200) errors++;
          times.push(r.ms);
        }
      }),
    );
    return { times, errors, seconds: (Date.now() - t0) / 1000 };
  };
  await run(Math.min(200, REQUESTS));
  const { times, errors, seconds } = await run(REQUESTS);
  times.sort((a, b) => a - b);
  const q = (p: number) => Math.round(times[Math.min(times.length - 1, Math.floor(p * times.length))]! * 100) / 100;
  return { endpoint: name, requests: REQUESTS, errors, p50_ms: q(0.5), p95_ms: q(0.95), p99_ms: q(0.99), rps: Math.round(REQUESTS / seconds) };
}

async function startServer(env: Record<string, string>): Promise<{ proc: ChildProcess; base: string }> {
  const nodeArgs = argv['server-node-args']!.split(/\s+/).filter(Boolean);
  const { proc, match } = await startBuiltServer(ROOT, env, /listening on (http:\/\/\S+?)\/api\/v1/, nodeArgs);
  return { proc, base: match[1]! };
}

async function bench(backend: 'sqlite' | 'postgres'): Promise<Result[]> {
  const keep = Boolean(argv.data);
  const tmp = keep ? path.resolve(argv.data!, backend) : await fsp.mkdtemp(path.join(os.tmpdir(), 'qasar-bench-api-'));
  await fsp.mkdir(tmp, { recursive: true });
  const seededFile = path.join(tmp, 'seeded.json');
  const reused = keep ? (JSON.parse(await fsp.readFile(seededFile, 'utf8').catch(() => 'null')) as (Seeded & { schema: string }) | null) : null;
  if (reused && reused.mediaIds.length !== MEDIA) throw new Error(`${tmp} holds ${reused.mediaIds.length} media, not ${MEDIA}`);
  const schema = reused?.schema ?? `qasar_bench_${randomBytes(4).toString('hex')}`;
  const env: Record<string, string> = {
    STORAGE_ROOT: path.join(tmp, 'storage'),
    // The scale-up topology (PostgreSQL + Redis) with --redis: the server then hears of changes on Redis.
    REDIS_URL: backend === 'postgres' && argv.redis ? REDIS_URL : '',
    REDIS_PREFIX: `qasar-bench-${randomBytes(4).toString('hex')}`,
    DATABASE_URL: backend === 'sqlite' ? `sqlite:${path.join(tmp, 'qasar.sqlite')}` : PG_URL,
    DATABASE_SCHEMA: schema,
    LOG_LEVEL: 'warn',
    // The load comes from one key, far faster than any client: measured, not rate-limited.
    RATE_LIMIT_MAX: '0',
  };
  try {
    let seeded: Seeded;
    if (reused) {
      seeded = reused;
      log(`${backend}: reusing the library seeded in ${tmp}`);
    } else {
      const ctx = await createContext(loadSettings(env), { log: createLogger('warn') });
      try {
        seeded = await seedLibrary(ctx);
        if (backend === 'postgres') await sql`analyze`.execute(ctx.database.db);
      } finally {
        await ctx.close();
      }
      if (keep) await fsp.writeFile(seededFile, JSON.stringify({ ...seeded, schema }));
    }
    const results: Result[] = [];
    const only = argv
      .cases!.split(',')
      .map((c) => c.trim())
      .filter(Boolean);
    // Searches and get-by-id are measured twice: as the server runs by default (a search
    // repeated within SEARCH_CACHE_TTL reuses its ranking; a record read within MEDIA_CACHE_TTL
    // is served again), and with both caches off (ranked and read anew every time).
    for (const ranking of argv['cached-only'] ? (['default'] as const) : (['default', 'uncached'] as const)) {
      const { proc, base } = await startServer(ranking === 'uncached' ? { ...env, SEARCH_CACHE_TTL: '0', MEDIA_CACHE_TTL: '0' } : env);
      try {
        const api = `${base}/api/v1`;
        const pick = () => seeded.mediaIds[Math.floor(rand() * seeded.mediaIds.length)]!;
        const cases: [string, () => string][] = [
          ['get-by-id', () => `${api}/media/${pick()}`],
          [`search common "${seeded.commonTerm}"`, () => `${api}/search?q=${seeded.commonTerm}%20`],
          [`search rare "${seeded.rareTerm}"`, () => `${api}/search?q=${seeded.rareTerm}%20`],
          [`search prefix "${seeded.prefix}"`, () => `${api}/search?q=${seeded.prefix}`],
          ['feed/new', () => `${api}/feed/new`],
          ['related', () => `${api}/media/${pick()}/related`],
        ];
        for (const [caseName, url] of cases) {
          if (only.length && !only.some((c) => caseName.includes(c))) continue;
          if (ranking === 'uncached' && !caseName.startsWith('search') && caseName !== 'get-by-id') continue;
          const name = ranking === 'uncached' ? `${caseName}, ${caseName === 'get-by-id' ? 'read' : 'ranked'} every time` : caseName;
          const r = CLIENT === 'wrk' ? await measureWithWrk(name, url, seeded.key, Number(argv.duration)) : await measure(name, url, seeded.key);
          log(`${backend} ${name}: p50 ${r.p50_ms} ms, p95 ${r.p95_ms} ms, p99 ${r.p99_ms} ms, ${r.rps} req/s, errors ${r.errors}`);
          results.push(r);
        }
      } finally {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
    }
    return results;
  } finally {
    if (backend === 'postgres' && !process.env.BENCH_KEEP && !keep) {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`drop schema if exists "${schema}" cascade`);
      await c.end();
    }
    if (process.env.BENCH_KEEP || keep) log(`kept ${tmp}`);
    else await fsp.rm(tmp, { recursive: true, force: true });
  }
}

const all: Record<string, Result[]> = {};
for (const backend of argv.backends!.split(',').map((s) => s.trim()) as ('sqlite' | 'postgres')[]) {
  log(`${backend}: seeding ${MEDIA} media`);
  all[backend] = await bench(backend);
}
agent.destroy();
const lines = ['| backend | endpoint | p50 ms | p95 ms | p99 ms | req/s | errors |', '|---|---|---|---|---|---|---|'];
for (const [backend, results] of Object.entries(all)) {
  for (const r of results) lines.push(`| ${backend} | ${r.endpoint} | ${r.p50_ms} | ${r.p95_ms} | ${r.p99_ms} | ${r.rps} | ${r.errors} |`);
}
process.stdout.write(`${lines.join('\n')}\n`);
await fsp.mkdir(path.dirname(argv.out!), { recursive: true });
await fsp.writeFile(
  argv.out!,
  JSON.stringify(
    {
      media: MEDIA,
      requests: REQUESTS,
      concurrency: CONCURRENCY,
      cpus: os.availableParallelism(),
      node: process.version,
      at: new Date().toISOString(),
      results: all,
    },
    null,
    2,
  ),
);
