/**
 * Slow-body load check: many connections trickling request bodies while a normal client works.
 *
 *   npm run bench:slow-bodies -- [--connections 500] [--every 5] [--phase 20] [--out bench/results/slow-bodies.json]
 *
 * Starts the built server (`qasar api`, SQLite, default body limits), then:
 *  1. idle: a normal client uploads small files (chunked session: create, 2 chunk PUTs, complete)
 *     and searches, one request at a time, for --phase seconds;
 *  2. attack: --connections sockets each start a chunk PUT and send one byte every --every
 *     seconds; the normal client works another --phase seconds meanwhile;
 *  3. the server cuts the slow bodies (REQUEST_MIN_RATE over REQUEST_MIN_RATE_WINDOW, 60 s by
 *     default); once every attack socket is closed, the server's open descriptors are counted again.
 * Prints a table and writes JSON. Goal: no errors, p95 under attack below 2x idle, descriptors
 * back to the idle count.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startBuiltServer } from '../lib/built-server.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const { values: argv } = parseArgs({
  options: {
    connections: { type: 'string', default: '500' },
    every: { type: 'string', default: '5' },
    phase: { type: 'string', default: '20' },
    out: { type: 'string', default: path.join(ROOT, 'bench/results/slow-bodies.json') },
  },
});
const CONNECTIONS = Number(argv.connections);
const EVERY_MS = Number(argv.every) * 1000;
const PHASE_MS = Number(argv.phase) * 1000;
const CHUNK = 256 * 1024;

const log = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const descriptors = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;

async function startServer(env: Record<string, string>): Promise<{ proc: ChildProcess; port: number; key: string }> {
  const { proc, match } = await startBuiltServer(ROOT, env, /QASAR_API_KEY=(\S+)[\s\S]*listening on http:\/\/[^:]+:(\d+)\//);
  return { proc, port: Number(match[2]), key: match[1]! };
}

interface Call {
  status: number;
  body: string;
  ms: number;
}

function call(agent: http.Agent, port: number, key: string, method: string, p: string, body?: Buffer | object): Promise<Call> {
  const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string | number> = { authorization: `Bearer ${key}` };
  if (payload) {
    headers['content-type'] = Buffer.isBuffer(body) ? 'application/octet-stream' : 'application/json';
    headers['content-length'] = payload.length;
  }
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, agent, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8'), ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** The normal client: small uploads and searches, one request at a time, until `ms` passed. */
async function normalClient(port: number, key: string, ms: number): Promise<{ times: number[]; errors: number; uploads: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const times: number[] = [];
  let errors = 0;
  let uploads = 0;
  const timed = async (method: string, p: string, body: Buffer | object | undefined, want: number) => {
    try {
      const r = await call(agent, port, key, method, p, body);
      times.push(r.ms);
      if (r.status !== want) {
        errors++;
        log(`normal client: ${method} ${p.split('?')[0]} answered ${r.status} ${r.body.slice(0, 120)}`);
      }
      return r;
    } catch (err) {
      errors++;
      log(`normal client: ${method} ${p.split('?')[0]} failed: ${(err as Error).message}`);
      return undefined;
    }
  };
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const created = await timed(
      'POST',
      '/api/v1/upload',
      { filename: `normal-${uploads}.bin`, total_size: 2 * CHUNK, chunk_size: CHUNK, caption: 'bench normal' },
      201,
    );
    const id = created && created.status === 201 ? (JSON.parse(created.body).session_id as string) : undefined;
    if (id) {
      for (let i = 0; i < 2; i++) await timed('PUT', `/api/v1/upload/${id}/chunk?index=${i}`, randomBytes(CHUNK), 200);
      const done = await timed('POST', `/api/v1/upload/${id}/complete`, undefined, 201);
      if (done?.status === 201) uploads++;
    }
    await timed('GET', '/api/v1/search?q=bench', undefined, 200);
    await timed('GET', '/api/v1/media?limit=20', undefined, 200);
  }
  agent.destroy();
  return { times, errors, uploads };
}

interface Attacker {
  socket: net.Socket;
  closed: boolean;
  status?: number;
}

/** One connection trickling a chunk body: headers, then a byte every EVERY_MS until closed. */
function attack(port: number, key: string, sessionId: string, index: number): Attacker {
  const socket = net.connect(port, '127.0.0.1');
  const a: Attacker = { socket, closed: false };
  let answer = '';
  socket.on('data', (d) => {
    answer += d.toString('latin1');
    const m = /^HTTP\/1\.1 (\d+)/.exec(answer);
    if (m) a.status = Number(m[1]);
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    a.closed = true;
    clearInterval(timer);
  });
  socket.on('connect', () => {
    socket.write(
      `PUT /api/v1/upload/${sessionId}/chunk?index=${index} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${key}\r\n` +
        `content-type: application/octet-stream\r\ncontent-length: ${CHUNK}\r\n\r\n`,
    );
    socket.write('a');
  });
  const timer = setInterval(() => {
    if (!socket.destroyed) socket.write('a');
  }, EVERY_MS);
  return a;
}

function stats(times: number[]) {
  const s = [...times].sort((a, b) => a - b);
  const q = (p: number) => (s.length ? Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))]! * 10) / 10 : 0);
  return { requests: s.length, p50_ms: q(0.5), p95_ms: q(0.95), max_ms: Math.round((s[s.length - 1] ?? 0) * 10) / 10 };
}

const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'qasar-bench-slow-'));
const env = {
  STORAGE_ROOT: path.join(tmp, 'storage'),
  DATABASE_URL: `sqlite:${path.join(tmp, 'qasar.sqlite')}`,
  REDIS_URL: '',
  UPLOAD_MIN_CHUNK_SIZE: '256KiB',
  // This checks slow bodies, not the rate limit: the normal client and the attack share one key.
  RATE_LIMIT_MAX: '0',
};
const { proc, port, key } = await startServer(env);
const pid = proc.pid!;
try {
  log(`server pid ${pid} on port ${port}; warming up`);
  await normalClient(port, key, 3000);
  log(`idle phase: ${PHASE_MS / 1000} s`);
  const idle = await normalClient(port, key, PHASE_MS);
  await sleep(500);
  const fdIdle = descriptors(pid);

  // One session with an index per attacking connection, so no two of them wait on one chunk lock.
  const agent = new http.Agent({ keepAlive: false });
  const session = await call(agent, port, key, 'POST', '/api/v1/upload', { filename: 'attack.bin', total_size: CONNECTIONS * CHUNK, chunk_size: CHUNK });
  if (session.status !== 201) throw new Error(`attack session: ${session.status} ${session.body}`);
  const sessionId = JSON.parse(session.body).session_id as string;
  log(`attack: ${CONNECTIONS} connections, a byte every ${EVERY_MS / 1000} s`);
  const attackStart = Date.now();
  const attackers = Array.from({ length: CONNECTIONS }, (_, i) => attack(port, key, sessionId, i));
  await sleep(2000);
  const fdAttack = descriptors(pid);
  const underAttack = await normalClient(port, key, PHASE_MS);
  const fdAttackAfterPhase = descriptors(pid);
  const openDuringPhase = attackers.filter((a) => !a.closed).length;
  log(`waiting for the server to cut the slow bodies (${openDuringPhase} still open)`);
  const cutBy = Date.now() + 180_000;
  while (attackers.some((a) => !a.closed) && Date.now() < cutBy) await sleep(500);
  const attackSeconds = (Date.now() - attackStart) / 1000;
  const stillOpen = attackers.filter((a) => !a.closed).length;
  for (const a of attackers) a.socket.destroy();
  await sleep(2000);
  const fdAfter = descriptors(pid);
  const statuses: Record<string, number> = {};
  for (const a of attackers) statuses[String(a.status ?? 'none')] = (statuses[String(a.status ?? 'none')] ?? 0) + 1;

  const result = {
    when: new Date().toISOString(),
    host: { cpus: os.cpus().length, node: process.version },
    connections: CONNECTIONS,
    byte_every_s: EVERY_MS / 1000,
    phase_s: PHASE_MS / 1000,
    idle: { ...stats(idle.times), errors: idle.errors, uploads: idle.uploads },
    under_attack: { ...stats(underAttack.times), errors: underAttack.errors, uploads: underAttack.uploads, attack_connections_open: openDuringPhase },
    p95_ratio: Math.round((stats(underAttack.times).p95_ms / Math.max(0.1, stats(idle.times).p95_ms)) * 100) / 100,
    descriptors: { idle: fdIdle, attack_start: fdAttack, attack_end_of_phase: fdAttackAfterPhase, after: fdAfter },
    attack: { closed_by_server_within_s: Math.round(attackSeconds), left_open: stillOpen, answers: statuses },
  };
  const rows = [
    '| phase | requests | errors | p50 ms | p95 ms | max ms | server fds |',
    '|---|---|---|---|---|---|---|',
    `| idle | ${result.idle.requests} | ${result.idle.errors} | ${result.idle.p50_ms} | ${result.idle.p95_ms} | ${result.idle.max_ms} | ${fdIdle} |`,
    `| ${CONNECTIONS} slow bodies | ${result.under_attack.requests} | ${result.under_attack.errors} | ${result.under_attack.p50_ms} | ${result.under_attack.p95_ms} | ${result.under_attack.max_ms} | ${fdAttack} → ${fdAttackAfterPhase} |`,
    `| after the cut | | | | | | ${fdAfter} |`,
  ];
  process.stdout.write(
    `${rows.join('\n')}\n\np95 under attack / idle: ${result.p95_ratio}; slow bodies closed by the server within ${result.attack.closed_by_server_within_s} s (answers: ${JSON.stringify(statuses)}, left open: ${stillOpen})\n`,
  );
  await fsp.mkdir(path.dirname(argv.out!), { recursive: true });
  await fsp.writeFile(argv.out!, `${JSON.stringify(result, null, 2)}\n`);
  log(`wrote ${path.relative(ROOT, argv.out!)}`);
} finally {
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  await fsp.rm(tmp, { recursive: true, force: true });
}
