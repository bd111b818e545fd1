/**
 * Queue-wait benchmark (not a test): how long a small upload waits in `queued` while the WebM
 * rendition of an earlier upload is being encoded, on a real `qasar serve` with its default
 * worker settings.
 *
 *   node --import tsx bench/queue-wait/run.ts [--rounds 5] [--long-seconds 60] [--out bench/results/queue-wait.json]
 *                                            [--database-url postgres://… --redis-url redis://…]
 *
 * One long 720p clip is uploaded and processed; once its WebM encode runs (its scratch folder
 * exists), small 1 s clips are uploaded one after another. For each: the server's own status
 * timestamps (`status_history`: queued at complete → processing), what a client polling every
 * 25 ms saw (complete answered → processing seen), complete → ready, and whether the WebM encode
 * was running when the clip was completed (a round after it ended measures nothing, and is not
 * counted) and still running when its processing began. Goal: queued → processing under 2 s.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { waitForLine } from '../lib/processes.js';
import { shippedNodeFlags } from '../lib/shipped-node-flags.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const GOAL_MS = 2000;

const { values: argv } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    'long-seconds': { type: 'string', default: '60' },
    inputs: { type: 'string', default: path.join(ROOT, 'bench/results/inputs') },
    out: { type: 'string', default: path.join(ROOT, 'bench/results/queue-wait.json') },
    'database-url': { type: 'string', default: '' },
    'redis-url': { type: 'string', default: '' },
  },
});
const rounds = Number(argv.rounds);
const longSeconds = Number(argv['long-seconds']);

function ffmpeg(args: string[]): void {
  const res = spawnSync('ffmpeg', ['-v', 'error', '-y', ...args], { stdio: 'inherit' });
  if (res.status !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed`);
}

/** The long clip (720p with moving detail and sound, so VP9 has work) and the small one, made once. */
function makeInputs(): { long: string; small: string } {
  fs.mkdirSync(argv.inputs!, { recursive: true });
  const long = path.join(argv.inputs!, `queue-wait-720p${longSeconds}s.mp4`);
  const small = path.join(argv.inputs!, 'queue-wait-small-1s.mp4');
  if (!fs.existsSync(long)) {
    ffmpeg([
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=1280x720:rate=30',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440',
      '-t',
      String(longSeconds),
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-pix_fmt',
      'yuv420p',
      '-c:a',
      'aac',
      '-shortest',
      long,
    ]);
  }
  if (!fs.existsSync(small))
    ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', '1', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', small]);
  return { long, small };
}

/** Whether a WebM encode is running: its scratch folder exists somewhere under the storage root. */
function webmEncoding(storage: string): boolean {
  const walk = (dir: string, depth: number): boolean => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return false;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      if (e.name.startsWith('.work-webm-')) return true;
      if (depth < 3 && walk(path.join(dir, e.name), depth + 1)) return true;
    }
    return false;
  };
  return walk(storage, 0);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Drops the run's PostgreSQL schema and Redis keys. */
async function dropScaleState(env: Record<string, string>): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: env.DATABASE_URL });
  await client.connect();
  try {
    await client.query(`drop schema if exists "${env.DATABASE_SCHEMA}" cascade`);
  } finally {
    await client.end();
  }
  if (!env.REDIS_URL) return;
  const { Redis } = await import('ioredis');
  const redis = new Redis(env.REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${env.REDIS_PREFIX}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

interface Round {
  round: number;
  queued_to_processing_ms: number;
  complete_to_processing_seen_ms: number;
  complete_to_ready_ms: number;
  webm_encoding_at_complete: boolean;
  webm_encoding_at_processing: boolean;
}

async function main(): Promise<void> {
  const inputs = makeInputs();
  if (!fs.existsSync(path.join(ROOT, 'dist/cli/main.js'))) spawnSync('node_modules/.bin/tsc', ['-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qasar-bench-queue-wait-'));
  const storage = path.join(dir, 'storage');
  const scale = !!argv['database-url'];
  const env: Record<string, string> = {
    STORAGE_ROOT: storage,
    DATABASE_URL: argv['database-url'] || `sqlite:${path.join(dir, 'q.sqlite')}`,
    REDIS_URL: argv['redis-url']!,
    PORT: '0',
    LOG_LEVEL: 'warn',
    ENABLE_WEBM: 'true',
  };
  if (scale) {
    const id = Math.random().toString(16).slice(2, 10);
    env.DATABASE_SCHEMA = `qasar_bench_${id}`;
    env.REDIS_PREFIX = `qasar-bench-${id}`;
  }
  const serve = spawn(process.execPath, [...shippedNodeFlags(ROOT), path.join(ROOT, 'bin/qasar.js'), 'serve'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const results: Round[] = [];
  try {
    const m = await waitForLine(serve, /QASAR_API_KEY=(\S+)[\s\S]*API docs: (http:\/\/[^/]+)\/docs/);
    const auth = { authorization: `Bearer ${m[1]!}` };
    const base = `${m[2]!}/api/v1`;
    const media = async (id: string) =>
      (await (await fetch(`${base}/media/${id}`, { headers: auth })).json()) as {
        status: string;
        error?: unknown;
        status_history: Array<{ status: string; at: string }>;
      };
    /** Uploads a file in 8 MiB chunks; resolves when `complete` has answered, with the media id and that moment. */
    const upload = async (file: string) => {
      const data = fs.readFileSync(file);
      const chunk = 8 * 1024 * 1024;
      const created = await fetch(`${base}/upload`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ filename: path.basename(file), total_size: data.length, chunk_size: chunk }),
      });
      const s = (await created.json()) as { session_id: string; chunk_count: number };
      for (let i = 0; i < s.chunk_count; i++) {
        await fetch(`${base}/upload/${s.session_id}/chunk?index=${i}`, {
          method: 'PUT',
          headers: { ...auth, 'content-type': 'application/octet-stream' },
          body: data.subarray(i * chunk, (i + 1) * chunk),
        });
      }
      const res = await fetch(`${base}/upload/${s.session_id}/complete`, { method: 'POST', headers: auth });
      const at = performance.now();
      if (res.status !== 201) throw new Error(`complete answered ${res.status}: ${await res.text()}`);
      return { id: ((await res.json()) as { id: string }).id, at };
    };
    const until = async (id: string, want: string, timeoutMs: number) => {
      const start = performance.now();
      for (;;) {
        const r = await media(id);
        if (r.status === 'error') throw new Error(`media ${id} failed: ${JSON.stringify(r.error)}`);
        if (r.status === want || (want === 'processing' && r.status === 'ready')) return { at: performance.now(), record: r };
        if (performance.now() - start > timeoutMs) throw new Error(`media ${id} not ${want} after ${timeoutMs} ms`);
        await sleep(25);
      }
    };

    process.stderr.write(`processing the ${longSeconds} s 720p clip…\n`);
    const long = await upload(inputs.long);
    await until(long.id, 'ready', 30 * 60_000);
    const encodeStart = performance.now();
    while (!webmEncoding(storage)) {
      if (performance.now() - encodeStart > 60_000) throw new Error('the WebM encode of the long clip did not start');
      await sleep(50);
    }
    for (let round = 1; round <= rounds; round++) {
      process.stderr.write(`round ${round}: a 1 s clip while the WebM encode runs…\n`);
      const small = await upload(inputs.small);
      const encodingAtComplete = webmEncoding(storage);
      const seen = await until(small.id, 'processing', 30 * 60_000);
      const encoding = webmEncoding(storage);
      const ready = await until(small.id, 'ready', 30 * 60_000);
      const at = (status: string) => Date.parse(ready.record.status_history.find((h) => h.status === status)!.at);
      results.push({
        round,
        queued_to_processing_ms: at('processing') - at('queued'),
        complete_to_processing_seen_ms: seen.at - small.at,
        complete_to_ready_ms: ready.at - small.at,
        webm_encoding_at_complete: encodingAtComplete,
        webm_encoding_at_processing: encoding,
      });
    }
  } finally {
    serve.kill('SIGTERM');
    await new Promise((r) => serve.once('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
    if (scale) await dropScaleState(env);
  }

  const valid = results.filter((r) => r.webm_encoding_at_complete);
  const waits = valid.map((r) => r.queued_to_processing_ms).sort((a, b) => a - b);
  console.log(
    `\nQueue wait while a WebM encode runs: ${scale ? 'PostgreSQL + Redis' : 'SQLite, embedded queue'}, default worker settings, ${os.cpus().length} CPUs, node ${process.version}`,
  );
  console.table(
    results.map((r) => ({
      round: r.round,
      'queued→processing (server) ms': r.queued_to_processing_ms,
      'complete→processing seen ms': Math.round(r.complete_to_processing_seen_ms),
      'complete→ready ms': Math.round(r.complete_to_ready_ms),
      'WebM encoding at complete': r.webm_encoding_at_complete ? 'yes' : 'no (not counted)',
      'still at processing': r.webm_encoding_at_processing ? 'yes' : 'no',
    })),
  );
  const summary = {
    rounds_counted: valid.length,
    queued_to_processing_p50_ms: waits[Math.floor(waits.length / 2)] ?? NaN,
    queued_to_processing_max_ms: waits[waits.length - 1] ?? NaN,
    goal_ms: GOAL_MS,
    goal_met: valid.length > 0 && waits[waits.length - 1]! < GOAL_MS,
  };
  console.log(summary);
  console.log(`goal queued → processing < ${GOAL_MS} ms while a WebM encode runs: ${summary.goal_met ? 'MET' : 'NOT MET'}`);
  fs.mkdirSync(path.dirname(argv.out!), { recursive: true });
  fs.writeFileSync(
    argv.out!,
    JSON.stringify(
      {
        benchmark: 'queue-wait',
        date: new Date().toISOString(),
        backend: scale ? 'scale' : 'embedded',
        long_seconds: longSeconds,
        machine: { cpus: os.cpus().length, node: process.version, loadavg: os.loadavg() },
        results,
        summary,
      },
      null,
      2,
    ),
  );
  console.log(`wrote ${path.relative(ROOT, argv.out!)}`);
}

await main();
