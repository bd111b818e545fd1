/**
 * Upload benchmark (not a test): how fast the real Qasar server takes a large file through its
 * chunked-session API and through tus, compared in the same run with a minimal node:http
 * server that only streams request bodies to a file on the same disk.
 *
 *   node --import tsx bench/upload/run.ts [--size 1GiB] [--runs 3] [--out bench/results/upload.json]
 *                                         [--chunk-size 8MiB] [--parallel 4] [--dir /tmp] [--cases a,b,…]
 *                                         [--server-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"] [--qasar-root <checkout>]
 *
 * Cases (every one sends the same bytes from the same file over loopback, with keep-alive):
 *   baseline-chunks   8 MiB chunks, 4 in flight, each its own PUT, written at its offset  (the reference)
 *   baseline-stream   the whole file in one streaming PUT
 *   baseline-sha256   as baseline-chunks, the server also hashing every byte (sha256) as it
 *                     passes: the floor for any server that verifies a declared whole-file sha256
 *   qasar-chunked     POST /upload, PUT 8 MiB chunks with 4 in flight, POST complete
 *   tus               tus-js-client, chunkSize 8 MiB (sequential by protocol)
 *
 * Every case is verified (the stored bytes hash to the file's sha256) and its output removed
 * before the next; dirty pages are flushed (`sync`) between cases, outside the timings. Cases
 * are rotated from run to run and the median of the runs is reported. The server child's RSS
 * is sampled from /proc/<pid>/status every 100 ms (and its VmHWM is reset per case where the
 * kernel allows it, as a cross-check). MB = 10^6 bytes throughout.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import vm from 'node:vm';
import { DefaultHttpStack, Upload } from 'tus-js-client';
import { parseBytes, settingSpecs } from '../../src/config/settings.js';
import { shippedNodeFlags } from '../lib/shipped-node-flags.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const MB = 1e6;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const READ_HWM = MiB;
const ALL_CASES = ['baseline-chunks', 'baseline-stream', 'baseline-sha256', 'qasar-chunked', 'tus'] as const;
type CaseName = (typeof ALL_CASES)[number];

// ---------------------------------------------------------------------------------------------
// Arguments

const { values: argv } = parseArgs({
  options: {
    size: { type: 'string', default: '1GiB' },
    out: { type: 'string', default: path.join(ROOT, 'bench/results/upload.json') },
    runs: { type: 'string', default: '3' },
    'chunk-size': { type: 'string', default: '8MiB' },
    parallel: { type: 'string', default: '4' },
    dir: { type: 'string', default: os.tmpdir() },
    cases: { type: 'string', default: ALL_CASES.join(',') },
    /** Extra node flags for the Qasar child, e.g. --server-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it. */
    'server-node-args': { type: 'string', default: '' },
    /** Another checkout of Qasar to run as the server (A/B against this tree); built there if needed. */
    'qasar-root': { type: 'string', default: ROOT },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (argv.help) {
  process.stdout.write(`${fs.readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]}*/\n`);
  process.exit(0);
}
const SIZE = parseBytes(argv.size!);
const CHUNK = parseBytes(argv['chunk-size']!);
const PARALLEL = Number(argv.parallel);
const RUNS = Number(argv.runs);
const QASAR_ROOT = path.resolve(argv['qasar-root']!);
const CASES = argv
  .cases!.split(',')
  .map((s) => s.trim())
  .filter(Boolean) as CaseName[];
for (const c of CASES) if (!ALL_CASES.includes(c)) throw new Error(`unknown case ${c}; known: ${ALL_CASES.join(', ')}`);
if (!CASES.includes('baseline-chunks')) throw new Error('the baseline-chunks case is the reference and cannot be left out');
if (SIZE < 1 || CHUNK < 1 || !Number.isInteger(PARALLEL) || PARALLEL < 1 || !Number.isInteger(RUNS) || RUNS < 1) {
  throw new Error('size, chunk size, parallel and runs must be positive');
}

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const round = (n: number, d = 3) => Math.round(n * 10 ** d) / 10 ** d;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

// ---------------------------------------------------------------------------------------------
// RSS sampling

function readStatusKb(pid: number | 'self', field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

interface RssResult {
  /** Highest VmRSS seen by sampling every 100 ms, MB. */
  peak_mb: number;
  /** VmHWM at the end of the case after a reset at its start (null when the reset is not allowed). */
  hwm_mb: number | null;
  start_mb: number;
  samples: number;
}

/** Samples one process's VmRSS every 100 ms between start() and stop(). */
class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private peakKb = 0;
  private startKb = 0;
  private samples = 0;
  private hwmReset = false;
  constructor(private readonly pid: number | 'self') {}

  start(): this {
    try {
      // "5" resets the peak RSS (VmHWM) of the process; Linux >= 4.0, same user.
      fs.writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
      this.hwmReset = true;
    } catch {
      this.hwmReset = false;
    }
    this.startKb = readStatusKb(this.pid, 'VmRSS') ?? 0;
    this.sample();
    this.timer = setInterval(() => this.sample(), 100);
    return this;
  }

  private sample(): void {
    const kb = readStatusKb(this.pid, 'VmRSS');
    if (kb === undefined) return;
    this.samples++;
    if (kb > this.peakKb) this.peakKb = kb;
  }

  stop(): RssResult {
    clearInterval(this.timer);
    this.sample();
    const hwm = this.hwmReset ? readStatusKb(this.pid, 'VmHWM') : undefined;
    return {
      peak_mb: round((this.peakKb * 1024) / MB, 1),
      hwm_mb: hwm === undefined ? null : round((hwm * 1024) / MB, 1),
      start_mb: round((this.startKb * 1024) / MB, 1),
      samples: this.samples,
    };
  }
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** CPU seconds a process has used, its waited-for children (ffprobe) included. */
function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14-17 of proc(5): utime, stime, cutime, cstime; f[0] is field 3.
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

// ---------------------------------------------------------------------------------------------
// Child processes

interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  stdout: string;
  stderrTail: string[];
}

const children: Child[] = [];
/** Set on SIGINT/SIGTERM: the signal handler cleans up, and the failures it causes are not reported. */
let interrupted = false;

/** Starts a child, keeps draining its output, and waits for a line matching `ready`. */
async function startChild(
  name: string,
  cwd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
  timeoutMs = 60_000,
): Promise<{ child: Child; match: RegExpExecArray }> {
  const proc = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (proc.pid === undefined) throw new Error(`${name}: could not start`);
  const child: Child = { name, proc, pid: proc.pid, stdout: '', stderrTail: [] };
  children.push(child);
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => {
    child.stderrTail.push(s);
    if (child.stderrTail.length > 50) child.stderrTail.shift();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in ${timeoutMs} ms:\n${child.stdout}\n${child.stderrTail.join('')}`)), timeoutMs);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before it was ready:\n${child.stdout}\n${child.stderrTail.join('')}`));
    });
    proc.stdout!.setEncoding('utf8').on('data', (s: string) => {
      // Keep the beginning (the first-start banner) and stop growing after that.
      if (child.stdout.length < 64 * 1024) child.stdout += s;
      const m = ready.exec(child.stdout);
      if (m) {
        clearTimeout(timer);
        resolve({ child, match: m });
      }
    });
  });
}

async function stopChild(child: Child): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.proc.once('exit', () => resolve()));
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds dist/ when it is missing or older than the sources (the bench must measure this tree). */
function ensureBuilt(root: string): { built: boolean; reason: string } {
  const main = path.join(root, 'dist/cli/main.js');
  let reason = '';
  if (!fs.existsSync(main)) reason = 'dist/ is missing';
  else if (newestMtime(path.join(root, 'src')) > fs.statSync(main).mtimeMs) reason = 'src/ is newer than dist/';
  if (!reason) return { built: false, reason: 'dist/ is up to date' };
  log(`building ${root} (${reason}): npx tsc -p tsconfig.json`);
  const res = spawnSync('npx', ['--no-install', 'tsc', '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  if (res.status !== 0) {
    // tsc still emits on type errors; only a missing entry point is fatal.
    if (!fs.existsSync(main)) throw new Error('build failed');
    log('warning: tsc reported errors; measuring the JavaScript it emitted');
    return { built: true, reason: `${reason}; tsc reported errors` };
  }
  return { built: true, reason };
}

// ---------------------------------------------------------------------------------------------
// HTTP client: node:http with a keep-alive agent, streaming request bodies

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

function send(agent: http.Agent, method: string, url: string, headers: Record<string, string | number>, body?: Readable | Buffer | string): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('error', reject);
    if (body instanceof Readable) {
      body.on('error', (err) => req.destroy(err));
      body.pipe(req);
    } else {
      req.end(body);
    }
  });
}

function expectStatus(res: Res, status: number, what: string): Res {
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} (expected ${status}): ${res.text.slice(0, 500)}`);
  return res;
}

function sliceOf(file: string, start: number, length: number): Readable {
  return fs.createReadStream(file, { start, end: start + length - 1, highWaterMark: READ_HWM });
}

/** Runs `fn(0..count-1)` with at most `n` in flight, in index order. */
async function pool(n: number, count: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, count) }, worker));
}

function newAgent(): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: PARALLEL, keepAliveMsecs: 1000 });
}

// ---------------------------------------------------------------------------------------------
// Test file

/**
 * Writes `size` random-ish bytes and hashes them on the way: one random 64 MiB block, reused,
 * with the absolute offset of every 4 KiB page stamped into the page so that no two pages (and
 * so no two chunks) are alike. The header makes sure no magic number or text sniffing matches.
 */
async function generate(file: string, size: number): Promise<{ sha256: string; seconds: number }> {
  const t0 = performance.now();
  const blockSize = Math.min(64 * MiB, size);
  const block = randomBytes(blockSize);
  const hash = createHash('sha256');
  const fh = await fsp.open(file, 'w');
  try {
    for (let off = 0; off < size; off += blockSize) {
      const len = Math.min(blockSize, size - off);
      for (let p = 0; p + 8 <= len; p += 4096) block.writeBigUInt64LE(BigInt(off + p), p);
      if (off === 0) block.write('\0QASAR-BENCH\0\0\0\0', 0, Math.min(16, len), 'latin1');
      const view = block.subarray(0, len);
      hash.update(view);
      let written = 0;
      while (written < len) written += (await fh.write(view, written, len - written, off + written)).bytesWritten;
    }
  } finally {
    await fh.close();
  }
  return { sha256: hash.digest('hex'), seconds: (performance.now() - t0) / 1000 };
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(file, { highWaterMark: 4 * MiB }), hash);
  return hash.digest('hex');
}

/** A full GC without --expose-gc on the command line. */
function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

function syncDisks(): void {
  spawnSync('sync', { stdio: 'ignore' });
}

// ---------------------------------------------------------------------------------------------
// Cases

interface Phase {
  seconds: number;
  server_rss: RssResult;
  client_rss: RssResult;
  /** CPU seconds (user + system) of the server child and of this client process during the phase. */
  server_cpu_s: number;
  client_cpu_s: number;
  /** 1-minute load average at the end of the phase: other work on the machine skews the times. */
  loadavg_1m: number;
}

function phaseOf(m: Phase): Phase {
  const { seconds, server_rss, client_rss, server_cpu_s, client_cpu_s, loadavg_1m } = m;
  return { seconds, server_rss, client_rss, server_cpu_s, client_cpu_s, loadavg_1m };
}

interface CaseResult extends Phase {
  case: CaseName;
  run: number;
  position: number;
  mb_per_s: number;
  /** Sub-phases (qasar: create, chunks, complete; tus: estimated finish). */
  phases: Record<string, Phase | { seconds: number; note: string }>;
  verified: Record<string, unknown>;
}

async function measure<T>(serverPid: number, fn: () => Promise<T>): Promise<Phase & { value: T }> {
  const server = new RssSampler(serverPid).start();
  const client = new RssSampler('self').start();
  const cpu0 = cpuSeconds(serverPid);
  const own0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const seconds = (performance.now() - t0) / 1000;
  const own = process.cpuUsage(own0);
  return {
    seconds,
    server_rss: server.stop(),
    client_rss: client.stop(),
    server_cpu_s: round(cpuSeconds(serverPid) - cpu0, 2),
    client_cpu_s: round((own.user + own.system) / 1e6, 2),
    loadavg_1m: round(os.loadavg()[0]!, 2),
    value,
  };
}

interface Env {
  file: string;
  sha256: string;
  baseline: { url: string; pid: number; dir: string };
  qasar: { url: string; pid: number; key: string; storage: string };
}

function chunkCount(): number {
  return Math.ceil(SIZE / CHUNK);
}
function chunkLen(i: number): number {
  return Math.min(CHUNK, SIZE - i * CHUNK);
}

async function verifyBaselineFile(env: Env, name: string): Promise<Record<string, unknown>> {
  const file = path.join(env.baseline.dir, name);
  const size = (await fsp.stat(file)).size;
  const sha256 = await sha256File(file);
  if (size !== SIZE || sha256 !== env.sha256) throw new Error(`baseline ${name}: stored ${size} bytes hashing to ${sha256}, expected ${SIZE} / ${env.sha256}`);
  return { size, sha256, ok: true };
}

async function baselineChunks(env: Env, run: number, hashed = false): Promise<Omit<CaseResult, 'run' | 'position'>> {
  const agent = newAgent();
  const name = `chunks-${hashed ? 'sha256-' : ''}${run}.bin`;
  const url = `${env.baseline.url}/files/${name}`;
  try {
    const m = await measure(env.baseline.pid, async () => {
      expectStatus(await send(agent, 'POST', `${url}?size=${SIZE}`, { 'content-length': 0 }), 201, 'baseline create');
      await pool(PARALLEL, chunkCount(), async (i) => {
        const len = chunkLen(i);
        const res = await send(
          agent,
          'PUT',
          `${url}?offset=${i * CHUNK}${hashed ? '&sha256' : ''}`,
          { 'content-type': 'application/octet-stream', 'content-length': len },
          sliceOf(env.file, i * CHUNK, len),
        );
        expectStatus(res, 201, `baseline chunk ${i}`);
      });
    });
    const verified = await verifyBaselineFile(env, name);
    expectStatus(await send(agent, 'DELETE', url, {}), 204, 'baseline delete');
    return { case: hashed ? 'baseline-sha256' : 'baseline-chunks', ...phaseOf(m), mb_per_s: SIZE / MB / m.seconds, phases: {}, verified };
  } finally {
    agent.destroy();
  }
}

async function baselineStream(env: Env, run: number): Promise<Omit<CaseResult, 'run' | 'position'>> {
  const agent = newAgent();
  const name = `stream-${run}.bin`;
  const url = `${env.baseline.url}/files/${name}`;
  try {
    const m = await measure(env.baseline.pid, async () => {
      const res = await send(agent, 'PUT', url, { 'content-type': 'application/octet-stream', 'content-length': SIZE }, sliceOf(env.file, 0, SIZE));
      expectStatus(res, 201, 'baseline stream');
    });
    const verified = await verifyBaselineFile(env, name);
    expectStatus(await send(agent, 'DELETE', url, {}), 204, 'baseline delete');
    return { case: 'baseline-stream', ...phaseOf(m), mb_per_s: SIZE / MB / m.seconds, phases: {}, verified };
  } finally {
    agent.destroy();
  }
}

interface MediaJson {
  id: string;
  size: number;
  sha256: string;
  kind: string;
  mime_type: string;
  status: string;
}

function verifyMedia(env: Env, media: MediaJson, what: string): Record<string, unknown> {
  if (media.sha256 !== env.sha256 || Number(media.size) !== SIZE) {
    throw new Error(`${what}: media ${media.id} has sha256 ${media.sha256} and size ${media.size}, expected ${env.sha256} / ${SIZE}`);
  }
  if (media.kind !== 'other') log(`warning: ${what}: the server took the test file for ${media.kind} (${media.mime_type}); the worker may process it`);
  return { media_id: media.id, size: Number(media.size), sha256: media.sha256, kind: media.kind, mime_type: media.mime_type, ok: true };
}

async function deleteMedia(env: Env, agent: http.Agent, id: string): Promise<void> {
  expectStatus(await send(agent, 'DELETE', `${env.qasar.url}/media/${id}`, { authorization: `Bearer ${env.qasar.key}` }), 204, 'delete media');
}

async function qasarChunked(env: Env): Promise<Omit<CaseResult, 'run' | 'position'>> {
  const agent = newAgent();
  const auth = { authorization: `Bearer ${env.qasar.key}` };
  try {
    let sessionId = '';
    const phases: Record<string, Phase> = {};
    const total = await measure(env.qasar.pid, async () => {
      const created = await measure(env.qasar.pid, async () => {
        const body = JSON.stringify({
          filename: 'bench.bin',
          total_size: SIZE,
          chunk_size: CHUNK,
          sha256: env.sha256,
          content_type: 'application/octet-stream',
        });
        const res = expectStatus(
          await send(
            agent,
            'POST',
            `${env.qasar.url}/upload`,
            { ...auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
            body,
          ),
          201,
          'create session',
        );
        const s = JSON.parse(res.text) as { session_id: string; chunk_count: number; chunk_size: number };
        if (s.chunk_count !== chunkCount() || s.chunk_size !== Math.min(CHUNK, SIZE)) throw new Error(`unexpected session ${res.text}`);
        sessionId = s.session_id;
      });
      const chunks = await measure(env.qasar.pid, () =>
        pool(PARALLEL, chunkCount(), async (i) => {
          const len = chunkLen(i);
          const res = await send(
            agent,
            'PUT',
            `${env.qasar.url}/upload/${sessionId}/chunk?index=${i}`,
            { ...auth, 'content-type': 'application/octet-stream', 'content-length': len },
            sliceOf(env.file, i * CHUNK, len),
          );
          expectStatus(res, 200, `chunk ${i}`);
        }),
      );
      const complete = await measure(env.qasar.pid, async () => {
        const res = expectStatus(await send(agent, 'POST', `${env.qasar.url}/upload/${sessionId}/complete`, { ...auth, 'content-length': 0 }), 201, 'complete');
        return JSON.parse(res.text) as MediaJson;
      });
      phases.create = phaseOf(created);
      phases.chunks = phaseOf(chunks);
      phases.complete = phaseOf(complete);
      return complete.value;
    });
    // The sub-phases' samplers reset VmHWM when they start, and sample at other instants: the
    // whole case's peak is the highest seen by any of them.
    const subs = Object.values(phases);
    for (const which of ['server_rss', 'client_rss'] as const) {
      const all = [total[which], ...subs.map((p) => p[which])];
      total[which].peak_mb = Math.max(...all.map((r) => r.peak_mb));
      total[which].hwm_mb = all.some((r) => r.hwm_mb === null) ? null : Math.max(...all.map((r) => r.hwm_mb!));
    }
    const verified = verifyMedia(env, total.value, 'qasar chunked');
    await deleteMedia(env, agent, total.value.id);
    return { case: 'qasar-chunked', ...phaseOf(total), mb_per_s: SIZE / MB / total.seconds, phases, verified };
  } finally {
    agent.destroy();
  }
}

async function tus(env: Env): Promise<Omit<CaseResult, 'run' | 'position'>> {
  const agent = newAgent();
  try {
    const marks: number[] = [];
    const m = await measure(env.qasar.pid, async () => {
      // tus-js-client reads slices of the file by path (a fresh ReadStream per chunk), never the whole file.
      const source = fs.createReadStream(env.file);
      return new Promise<string>((resolve, reject) => {
        const upload = new Upload(source as unknown as Buffer, {
          endpoint: `${env.qasar.url}/tus`,
          chunkSize: CHUNK,
          retryDelays: null,
          storeFingerprintForResuming: false,
          headers: { authorization: `Bearer ${env.qasar.key}` },
          metadata: { filename: 'bench.bin', filetype: 'application/octet-stream', sha256: env.sha256 },
          httpStack: new DefaultHttpStack({ agent }),
          onUploadUrlAvailable: () => void marks.push(performance.now()),
          onChunkComplete: () => void marks.push(performance.now()),
          onSuccess: ({ lastResponse }) => {
            source.destroy();
            const id = lastResponse.getHeader('qasar-media-id');
            if (!id) reject(new Error(`tus: no Qasar-Media-Id on the last response (HTTP ${lastResponse.getStatus()})`));
            else resolve(id);
          },
          onError: (err) => {
            source.destroy();
            reject(err);
          },
        });
        upload.start();
      });
    });
    const media = JSON.parse(
      expectStatus(await send(agent, 'GET', `${env.qasar.url}/media/${m.value}`, { authorization: `Bearer ${env.qasar.key}` }), 200, 'get media').text,
    ) as MediaJson;
    const verified = verifyMedia(env, media, 'tus');
    await deleteMedia(env, agent, media.id);
    // The last PATCH's answer waits for the server's finish (hash the file, ingest): its excess
    // over a typical chunk estimates what the finish costs.
    const intervals = marks.slice(1).map((t, i) => (t - marks[i]!) / 1000);
    const phases: CaseResult['phases'] = {};
    if (intervals.length >= 2) {
      const last = intervals[intervals.length - 1]!;
      const typical = median(intervals.slice(0, -1));
      phases.finish_estimate = {
        seconds: Math.max(0, last - typical * (chunkLen(chunkCount() - 1) / Math.min(CHUNK, SIZE))),
        note: 'last PATCH minus a typical PATCH (scaled to the last chunk size)',
      };
      phases.patch_typical = { seconds: typical, note: 'median time of one chunk PATCH' };
    }
    return { case: 'tus', ...phaseOf(m), mb_per_s: SIZE / MB / m.seconds, phases, verified };
  } finally {
    agent.destroy();
  }
}

const RUNNERS: Record<CaseName, (env: Env, run: number) => Promise<Omit<CaseResult, 'run' | 'position'>>> = {
  'baseline-chunks': baselineChunks,
  'baseline-stream': baselineStream,
  'baseline-sha256': (env, run) => baselineChunks(env, run, true),
  'qasar-chunked': (env) => qasarChunked(env),
  tus: (env) => tus(env),
};

// ---------------------------------------------------------------------------------------------
// Main

function machineInfo(dir: string) {
  const cpus = os.cpus();
  const df = spawnSync('df', ['-PT', dir], { encoding: 'utf8' }).stdout.trim().split('\n').pop()?.split(/\s+/);
  const git = (args: string[]) => spawnSync('git', args, { cwd: QASAR_ROOT, encoding: 'utf8' }).stdout?.trim() ?? '';
  return {
    cpus: cpus.length,
    cpu_model: cpus[0]?.model ?? 'unknown',
    memory_gb: round(os.totalmem() / 1e9, 1),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadavg_at_start: os.loadavg().map((n) => round(n, 2)),
    temp_filesystem: df ? { device: df[0], type: df[1], mount: df[6] } : null,
    git_commit: git(['rev-parse', 'HEAD']),
    git_dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
  };
}

async function main(): Promise<void> {
  const started = new Date();
  const tmp = await fsp.mkdtemp(path.join(argv.dir!, 'qasar-bench-upload-'));
  const machine = machineInfo(tmp);
  const cleanup = async () => {
    for (const c of children) await stopChild(c).catch(() => undefined);
    await fsp.rm(tmp, { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: stopping servers and removing ${tmp}`);
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    // Room for the test file plus the most one case holds at once (Qasar: chunks + merged file).
    const st = await fsp.statfs(tmp);
    const free = Number(st.bavail) * Number(st.bsize);
    const need = 3 * SIZE + GiB;
    if (free < need) throw new Error(`not enough free space in ${argv.dir}: ${(free / GiB).toFixed(1)} GiB free, ${(need / GiB).toFixed(1)} GiB needed`);
    log(`size ${SIZE} bytes (${(SIZE / MB).toFixed(0)} MB), chunks of ${CHUNK} x${PARALLEL}, runs ${RUNS}, temp ${tmp} (${(free / GiB).toFixed(0)} GiB free)`);

    const build = { qasar_root: QASAR_ROOT, ...ensureBuilt(QASAR_ROOT) };

    const file = path.join(tmp, 'upload.bin');
    const gen = await generate(file, SIZE);
    log(`generated ${file} in ${gen.seconds.toFixed(1)} s, sha256 ${gen.sha256}`);
    collectGarbage(); // drop the 64 MiB generator block, so the client's RSS below is that of uploading

    // Servers: both on 127.0.0.1 with port 0 (a free port chosen by the kernel), storage on the same disk.
    const baselineDir = path.join(tmp, 'baseline');
    const baseline = await startChild(
      'baseline',
      ROOT,
      ['--import', 'tsx', 'bench/upload/baseline-server.ts', baselineDir],
      { ...process.env },
      /BASELINE_LISTENING (\d+)/,
    );
    const qasarEnv: NodeJS.ProcessEnv = { ...process.env };
    for (const s of settingSpecs) delete qasarEnv[s.env];
    Object.assign(qasarEnv, {
      HOST: '127.0.0.1',
      PORT: '0',
      STORAGE_ROOT: path.join(tmp, 'qasar-storage'),
      DATABASE_URL: `sqlite:${path.join(tmp, 'qasar.sqlite')}`,
      LOG_LEVEL: 'warn',
      UPLOAD_MAX_SIZE: String(Math.max(SIZE, 20 * GiB)),
    });
    const nodeArgs = argv['server-node-args']!.split(/\s+/).filter(Boolean);
    const qasar = await startChild(
      'qasar',
      QASAR_ROOT,
      [...shippedNodeFlags(QASAR_ROOT), ...nodeArgs, 'bin/qasar.js', 'serve'],
      qasarEnv,
      /Qasar API listening on (http:\/\/\S+)\n/,
    );
    const key = /QASAR_API_KEY=(\S+)/.exec(qasar.child.stdout)?.[1];
    if (!key) throw new Error(`qasar printed no QASAR_API_KEY:\n${qasar.child.stdout}`);
    const env: Env = {
      file,
      sha256: gen.sha256,
      baseline: { url: `http://127.0.0.1:${baseline.match[1]}`, pid: baseline.child.pid, dir: baselineDir },
      qasar: { url: qasar.match[1]!, pid: qasar.child.pid, key, storage: qasarEnv.STORAGE_ROOT! },
    };
    const idle = {
      baseline_rss_mb: round(((readStatusKb(env.baseline.pid, 'VmRSS') ?? 0) * 1024) / MB, 1),
      qasar_rss_mb: round(((readStatusKb(env.qasar.pid, 'VmRSS') ?? 0) * 1024) / MB, 1),
    };
    log(
      `baseline ${env.baseline.url} (pid ${env.baseline.pid}, ${idle.baseline_rss_mb} MB), qasar ${env.qasar.url} (pid ${env.qasar.pid}, ${idle.qasar_rss_mb} MB)`,
    );

    const results: CaseResult[] = [];
    for (let run = 0; run < RUNS; run++) {
      const order = CASES.map((_, i) => CASES[(i + run) % CASES.length]!);
      for (const [position, name] of order.entries()) {
        syncDisks();
        const r = await RUNNERS[name](env, run);
        results.push({ ...r, run, position });
        const sub = Object.entries(r.phases)
          .map(([k, v]) => `${k} ${v.seconds.toFixed(2)} s`)
          .join(', ');
        log(
          `run ${run + 1}/${RUNS} ${name.padEnd(15)} ${r.seconds.toFixed(2)} s  ${r.mb_per_s.toFixed(0)} MB/s  server peak ${r.server_rss.peak_mb} MB${sub ? `  (${sub})` : ''}`,
        );
      }
    }
    syncDisks();

    // Summary: medians of the runs; RSS is the highest of the runs.
    const by = (name: string) => results.filter((r) => r.case === name);
    const base = by('baseline-chunks');
    const baseMbps = SIZE / MB / median(base.map((r) => r.seconds));
    interface Row {
      label: string;
      key: string;
      seconds: number;
      mb_per_s: number;
      ratio: number | null;
      server_peak_mb: number;
      server_hwm_mb: number | null;
      client_peak_mb: number;
      server_cpu_s: number;
      client_cpu_s: number;
    }
    const rows: Row[] = [];
    const maxOf = (xs: Array<number | null>) => (xs.some((x) => x === null) ? null : Math.max(...(xs as number[])));
    const addRow = (label: string, key: string, phases: Phase[], ratio: boolean) => {
      const seconds = median(phases.map((p) => p.seconds));
      const mbps = SIZE / MB / seconds;
      rows.push({
        label,
        key,
        seconds: round(seconds),
        mb_per_s: round(mbps, 1),
        ratio: ratio ? round(mbps / baseMbps) : null,
        server_peak_mb: Math.max(...phases.map((p) => p.server_rss.peak_mb)),
        server_hwm_mb: maxOf(phases.map((p) => p.server_rss.hwm_mb)),
        client_peak_mb: Math.max(...phases.map((p) => p.client_rss.peak_mb)),
        server_cpu_s: round(median(phases.map((p) => p.server_cpu_s)), 2),
        client_cpu_s: round(median(phases.map((p) => p.client_cpu_s)), 2),
      });
    };
    const chunkLabel = `${CHUNK / MiB} MiB chunks x${PARALLEL}`;
    if (by('baseline-chunks').length) addRow(`baseline: ${chunkLabel}`, 'baseline-chunks', by('baseline-chunks'), true);
    if (by('baseline-stream').length) addRow('baseline: one streaming PUT', 'baseline-stream', by('baseline-stream'), true);
    if (by('baseline-sha256').length) addRow(`baseline + sha256 of every byte: ${chunkLabel}`, 'baseline-sha256', by('baseline-sha256'), true);
    const q = by('qasar-chunked');
    if (q.length) {
      addRow(`qasar chunked: total`, 'qasar-chunked', q, true);
      addRow(
        `  chunk PUTs (${chunkLabel})`,
        'qasar-chunked.chunks',
        q.map((r) => r.phases.chunks as Phase),
        true,
      );
      addRow(
        '  complete',
        'qasar-chunked.complete',
        q.map((r) => r.phases.complete as Phase),
        false,
      );
    }
    const t = by('tus');
    if (t.length) addRow(`tus (tus-js-client, ${CHUNK / MiB} MiB)`, 'tus', t, true);
    const tusFinish = t.map((r) => r.phases.finish_estimate?.seconds).filter((x): x is number => x !== undefined);

    const header = ['case', 'seconds', 'MB/s', 'vs base', 'server peak RSS MB', 'client peak RSS MB', 'server CPU s', 'client CPU s'];
    const cells = rows.map((r) => [
      r.label,
      r.seconds.toFixed(2),
      r.mb_per_s.toFixed(1),
      r.ratio === null ? '-' : r.ratio.toFixed(2),
      r.server_peak_mb.toFixed(1),
      r.client_peak_mb.toFixed(1),
      r.server_cpu_s.toFixed(2),
      r.client_cpu_s.toFixed(2),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
    const line = (c: string[]) => c.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join('  ');
    const out: string[] = [];
    out.push(
      `Upload benchmark: ${(SIZE / MB).toFixed(0)} MB (${SIZE} bytes), median of ${RUNS} run(s), ${os.cpus().length} CPUs, node ${process.version}; MB = 10^6 bytes`,
    );
    out.push(line(header));
    out.push(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const c of cells) out.push(line(c));
    if (tusFinish.length) out.push(`tus finish (hash + ingest after the last PATCH), estimated: ${median(tusFinish).toFixed(2)} s`);
    const loads = results.map((r) => r.loadavg_1m);
    const cpus = os.cpus().length;
    const busy = Math.max(...loads) > cpus ? ' (above the CPU count: other work may have skewed the times)' : '';
    out.push(`1-min load average during the cases: ${Math.min(...loads).toFixed(2)}-${Math.max(...loads).toFixed(2)} on ${cpus} CPUs${busy}`);

    const qTotal = rows.find((r) => r.key === 'qasar-chunked');
    const qasarRss = Math.max(...results.filter((r) => r.case === 'qasar-chunked' || r.case === 'tus').map((r) => r.server_rss.peak_mb), 0);
    const goals = {
      throughput_ratio_min: 0.7,
      server_rss_max_mb: 200,
      qasar_chunked_ratio: qTotal?.ratio ?? null,
      qasar_chunked_ratio_ok: qTotal?.ratio != null ? qTotal.ratio >= 0.7 : null,
      tus_ratio: rows.find((r) => r.key === 'tus')?.ratio ?? null,
      /** What the least server that verifies a sha256 reaches: the ceiling of any such server's ratio here. */
      hashing_floor_ratio: rows.find((r) => r.key === 'baseline-sha256')?.ratio ?? null,
      qasar_server_peak_rss_mb: qasarRss,
      qasar_server_rss_ok: qasarRss < 200,
    };
    if (qTotal) {
      out.push(
        `Goal: qasar chunked >= 0.70 of the baseline: ${qTotal.ratio?.toFixed(2)} ${goals.qasar_chunked_ratio_ok ? 'MET' : 'NOT MET'}; ` +
          `qasar server RSS < 200 MB: peak ${qasarRss.toFixed(1)} MB ${goals.qasar_server_rss_ok ? 'MET' : 'NOT MET'}`,
      );
    }
    if (goals.hashing_floor_ratio !== null) {
      out.push(`The least server that hashes what it receives (baseline + sha256) reaches ${goals.hashing_floor_ratio.toFixed(2)} of the baseline here.`);
    }
    process.stdout.write(`\n${out.join('\n')}\n\n`);

    const report = {
      benchmark: 'upload',
      date: started.toISOString(),
      finished: new Date().toISOString(),
      machine: { ...machine, loadavg_at_end: os.loadavg().map((n) => round(n, 2)) },
      params: {
        size_bytes: SIZE,
        chunk_size_bytes: CHUNK,
        parallel: PARALLEL,
        runs: RUNS,
        cases: CASES,
        mb: MB,
        rss_sample_interval_ms: 100,
        server_node_args: nodeArgs,
      },
      build,
      test_file: { sha256: gen.sha256, generate_seconds: round(gen.seconds) },
      idle_rss_mb: idle,
      summary: rows,
      tus_finish_estimate_seconds: tusFinish.length ? round(median(tusFinish)) : null,
      goals,
      runs: results.map((r) => ({
        ...r,
        seconds: round(r.seconds),
        mb_per_s: round(r.mb_per_s, 1),
        ratio_vs_baseline_chunks: round(r.mb_per_s / (base.find((b) => b.run === r.run)?.mb_per_s ?? baseMbps)),
        phases: Object.fromEntries(Object.entries(r.phases).map(([k, v]) => [k, { ...v, seconds: round(v.seconds) }])),
      })),
      table: out,
    };
    const outFile = path.resolve(argv.out!);
    await fsp.mkdir(path.dirname(outFile), { recursive: true });
    await fsp.writeFile(outFile, `${JSON.stringify(report, null, 2)}\n`);
    log(`wrote ${path.relative(process.cwd(), outFile) || outFile}`);
  } finally {
    if (!interrupted) {
      for (const c of children) {
        await stopChild(c);
      }
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  }
}

main().catch((err: unknown) => {
  if (interrupted) return;
  process.stderr.write(`[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  for (const c of children) {
    if (c.stderrTail.length) process.stderr.write(`[bench] ${c.name} stderr (tail):\n${c.stderrTail.join('')}\n`);
  }
  process.exitCode = 1;
});
