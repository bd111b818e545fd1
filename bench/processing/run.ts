/**
 * Processing benchmark (not a test): the video pipeline beside the reference ffmpeg commands
 * doing the same work, measured in the same run on the same input, compared as ratios.
 *
 *   node --import tsx bench/processing/run.ts [--seconds 60] [--cases pipeline,A,...] [--out bench/results/processing.json]
 *
 * Cases (every one under /usr/bin/time, so CPU seconds and peak RSS include all its processes):
 *   pipeline-ladder  our packaging step with thumbnails and posters off: the HLS+DASH ladder alone
 *   A                ../shared/bench-reference/cases.sh A: the raw one-pass ladder command
 *   pipeline-full    our whole video step: ladder + 25 thumbnails + sprite + poster (JPEG, WebP)
 *   A_all            the reference's one-decode ladder + thumbnails + sprite + poster
 *   B                one ffmpeg run per rung (PeerTube's way)
 *   C                an HLS ladder run plus a separate DASH ladder run (the naive way)
 *   E_thumbs_sprite  thumbnails + sprite in a separate decode (what sharing the decode saves)
 *   webm / D         our WebM step, and the reference VP9 720p command
 *   e2e              a real `qasar serve` on SQLite: upload, then complete → ready, peak RSS of the
 *                    process with its ffmpeg, and API latency idle vs during the transcode
 *   audio            our audio step on a 10-minute file: Opus WebM + AAC HLS + spectrogram + posters
 *   audio-no-hls     the same without the HLS rendition: the work G_opus_spectrogram does
 *   G_opus_spectrogram  the reference Opus + spectrogram command (one decode) on the same file
 *   image-24mp       our image step on a 24-megapixel JPEG: WebP + thumbnail + poster (WebP, JPEG)
 *   sharp-24mp       the same three outputs from plain sharp calls (no guards, no probing)
 * The input comes from ../shared/bench-reference/make-inputs.sh (1080p30, realistic detail).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { percentile, rssOfTree, waitForLine } from '../lib/processes.js';
import { shippedNodeFlags } from '../lib/shipped-node-flags.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const REFERENCE = path.resolve(ROOT, '../shared/bench-reference');

const { values: argv } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    cases: {
      type: 'string',
      default: 'pipeline-ladder,A,pipeline-full,A_all,B,C,E_thumbs_sprite,webm,D,e2e,audio,audio-no-hls,G_opus_spectrogram,image-24mp,sharp-24mp',
    },
    inputs: { type: 'string', default: path.join(ROOT, 'bench/results/inputs') },
    out: { type: 'string', default: path.join(ROOT, 'bench/results/processing.json') },
  },
});
const seconds = Number(argv.seconds);
const wanted = new Set(argv.cases!.split(','));

interface Measured {
  case: string;
  wall_s: number;
  cpu_s: number;
  peak_rss_mb: number;
  note?: string;
}

/** Runs a command under /usr/bin/time and returns wall, CPU (user+sys, all processes) and peak RSS. */
function timed(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Measured {
  const stats = path.join(os.tmpdir(), `qasar-bench-time-${process.pid}-${name}.txt`);
  const start = process.hrtime.bigint();
  const res = spawnSync('/usr/bin/time', ['-f', '%U %S %M', '-o', stats, cmd, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  if (res.status !== 0) throw new Error(`${name} failed (${res.status}): ${res.stderr.slice(-2000)}`);
  const [user, sys, rssKb] = fs.readFileSync(stats, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  fs.rmSync(stats, { force: true });
  return { case: name, wall_s: wall, cpu_s: user! + sys!, peak_rss_mb: rssKb! / 1024 };
}

function makeInput(): string {
  fs.mkdirSync(argv.inputs!, { recursive: true });
  const file = path.join(argv.inputs!, `input-1080p${seconds}s.mp4`);
  if (!fs.existsSync(file)) {
    process.stderr.write(`making a ${seconds} s 1080p30 input (once)…\n`);
    const res = spawnSync('bash', [path.join(REFERENCE, 'make-inputs.sh'), String(seconds)], {
      env: { ...process.env, BENCH_INPUTS: argv.inputs },
      stdio: 'inherit',
    });
    if (res.status !== 0) throw new Error('make-inputs.sh failed');
  }
  return file;
}

const SIDE_CASES = ['audio', 'audio-no-hls', 'G_opus_spectrogram', 'image-24mp', 'sharp-24mp'];

/** A 10-minute AAC file and a 24-megapixel JPEG, both cut from the video input (real detail, not noise). */
function makeSideInputs(video: string): { audio: string; jpeg: string } {
  const audio = path.join(argv.inputs!, 'audio-600s.m4a');
  const jpeg = path.join(argv.inputs!, 'photo-24mp.jpg');
  const ff = (args: string[]) => {
    const res = spawnSync('ffmpeg', ['-v', 'error', '-y', ...args], { stdio: 'inherit' });
    if (res.status !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed`);
  };
  if (!fs.existsSync(audio)) ff(['-stream_loop', '-1', '-i', video, '-map', '0:a:0', '-t', '600', '-c:a', 'aac', '-b:a', '160k', audio]);
  if (!fs.existsSync(jpeg))
    ff(['-ss', String(Math.min(10, seconds / 2)), '-i', video, '-frames:v', '1', '-vf', 'scale=6000:4000:flags=lanczos', '-q:v', '2', jpeg]);
  return { audio, jpeg };
}

/** A TypeScript snippet run as its own process under /usr/bin/time. */
function script(name: string, body: (out: string) => string): Measured {
  const out = scratch(name);
  const file = path.join(out, 'run.mts');
  fs.writeFileSync(file, body(out));
  try {
    return timed(name, process.execPath, ['--import', 'tsx', file], { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules') });
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

function audioPipeline(name: string, input: string, hls: boolean): Measured {
  return script(
    name,
    (out) => `import { packageAudio } from ${JSON.stringify(path.join(ROOT, 'src/processing/audio/package-audio.ts'))};
    await packageAudio(${JSON.stringify(input)}, ${JSON.stringify(out)}, { webm: true, hls: ${hls}, posters: true, thumbnails: true,
      hlsMinDuration: 60, thumbnailSize: 320, threads: 2, probeTimeoutMs: 60000, ffmpegTimeoutMs: 7200000, maxDurationSeconds: 43200 });`,
  );
}

function imagePipeline(input: string): Measured {
  return script(
    'image-24mp',
    (out) => `import { deriveImage } from ${JSON.stringify(path.join(ROOT, 'src/processing/image/derive-image.ts'))};
    await deriveImage(${JSON.stringify(input)}, ${JSON.stringify(out)}, { webp: true, thumbnails: true, posters: true, thumbnailSize: 320,
      posterSize: 1280, webpMaxSize: 16383, maxPixels: 100000000, timeoutMs: 120000 });`,
  );
}

function sharpReference(input: string): Measured {
  // Resolved from the project (the snippet lives in a scratch folder, where ESM would not find it).
  return script(
    'sharp-24mp',
    (out) => `import { createRequire } from 'node:module';
    const sharp = createRequire(${JSON.stringify(path.join(ROOT, 'package.json'))})('sharp');
    const src = ${JSON.stringify(input)};
    await sharp(src).rotate().webp().toFile(${JSON.stringify(path.join(out, 'image.webp'))});
    await sharp(src).rotate().resize(320, 320, { fit: 'inside' }).webp().toFile(${JSON.stringify(path.join(out, 'thumb.webp'))});
    await sharp(src).rotate().resize(1280, 1280, { fit: 'inside' }).webp().toFile(${JSON.stringify(path.join(out, 'poster.webp'))});
    await sharp(src).rotate().resize(1280, 1280, { fit: 'inside' }).jpeg().toFile(${JSON.stringify(path.join(out, 'poster.jpg'))});`,
  );
}

function scratch(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `qasar-bench-${name}-`));
  return dir;
}

/** Our packaging step as its own process, so /usr/bin/time sees node and ffmpeg together. */
function pipeline(name: string, input: string, full: boolean): Measured {
  const out = scratch(name);
  const script = path.join(out, 'run.mts');
  fs.writeFileSync(
    script,
    `import { packageVideo } from ${JSON.stringify(path.join(ROOT, 'src/processing/video/package-video.ts'))};
     import os from 'node:os';
     await packageVideo(${JSON.stringify(input)}, ${JSON.stringify(path.join(out, 'work'))}, {
       hls: true, dash: true, thumbnails: ${full}, posters: ${full}, thumbnailCount: 25,
       threads: os.availableParallelism(), probeTimeoutMs: 60000, ffmpegTimeoutMs: 7200000,
       maxDurationSeconds: 43200, maxPixels: 8192 * 4320 });`,
  );
  try {
    return timed(name, process.execPath, ['--import', 'tsx', script], { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules') });
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

function reference(name: string, input: string): Measured {
  const out = scratch(name);
  try {
    return timed(name, 'bash', [path.join(REFERENCE, 'cases.sh'), name, input, out, String(seconds)]);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

function webm(input: string): Measured | undefined {
  const module = path.join(ROOT, 'src/processing/video/webm.ts');
  if (!fs.existsSync(module)) return undefined;
  const out = scratch('webm');
  const script = path.join(out, 'run.mts');
  fs.writeFileSync(
    script,
    `import * as webm from ${JSON.stringify(module)};
     await (webm as any).makeWebm(${JSON.stringify(input)}, ${JSON.stringify(path.join(out, 'video.webm'))}, { threads: 2, ffmpegTimeoutMs: 7200000, probeTimeoutMs: 60000 });`,
  );
  try {
    return timed('webm', process.execPath, ['--import', 'tsx', script]);
  } catch (err) {
    return { case: 'webm', wall_s: NaN, cpu_s: NaN, peak_rss_mb: NaN, note: (err as Error).message.slice(0, 200) };
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

/**
 * A real `qasar serve` (API and worker in one process, SQLite): complete → ready, the peak RSS
 * of the process with its ffmpeg, and API latency idle vs while the transcode runs (ffmpeg is a
 * child process, so the event loop should stay free).
 */
async function endToEnd(input: string): Promise<Measured & Record<string, unknown>> {
  const dir = scratch('e2e');
  const env = {
    ...process.env,
    STORAGE_ROOT: path.join(dir, 'storage'),
    DATABASE_URL: `sqlite:${path.join(dir, 'q.sqlite')}`,
    REDIS_URL: '',
    PORT: '0',
    LOG_LEVEL: 'warn',
    ENABLE_WEBM: 'false',
  };
  const serve = spawn(process.execPath, [...shippedNodeFlags(ROOT), path.join(ROOT, 'bin/qasar.js'), 'serve'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const m = await waitForLine(serve, /QASAR_API_KEY=(\S+)[\s\S]*API docs: (http:\/\/[^/]+)\/docs/);
    const key = m[1]!;
    const base = m[2]!;
    const auth = { authorization: `Bearer ${key}` };
    const timedGet = async (url: string) => {
      const t0 = process.hrtime.bigint();
      const res = await fetch(url, { headers: auth });
      const body = await res.json();
      return { ms: Number(process.hrtime.bigint() - t0) / 1e6, body };
    };
    const idle: number[] = [];
    for (let i = 0; i < 50; i++) idle.push((await timedGet(`${base}/api/v1/me`)).ms);
    const data = fs.readFileSync(input);
    const chunk = 8 * 1024 * 1024;
    const s = (await (
      await fetch(`${base}/api/v1/upload`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ filename: 'bench.mp4', total_size: data.length, chunk_size: chunk }),
      })
    ).json()) as { session_id: string; chunk_count: number };
    for (let i = 0; i < s.chunk_count; i++) {
      await fetch(`${base}/api/v1/upload/${s.session_id}/chunk?index=${i}`, {
        method: 'PUT',
        headers: { ...auth, 'content-type': 'application/octet-stream' },
        body: data.subarray(i * chunk, (i + 1) * chunk),
      });
    }
    const done = (await (await fetch(`${base}/api/v1/upload/${s.session_id}/complete`, { method: 'POST', headers: auth })).json()) as { id: string };
    const start = process.hrtime.bigint();
    let peak = 0;
    const busy: number[] = [];
    for (;;) {
      peak = Math.max(peak, rssOfTree(serve.pid!));
      const r = await timedGet(`${base}/api/v1/media/${done.id}`);
      const status = (r.body as { status: string }).status;
      if (status === 'processing') busy.push(r.ms);
      if (status === 'ready') break;
      if (status === 'error') throw new Error(`e2e media failed: ${JSON.stringify((r.body as { error: unknown }).error)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    const wall = Number(process.hrtime.bigint() - start) / 1e9;
    return {
      case: 'e2e',
      wall_s: wall,
      cpu_s: NaN,
      peak_rss_mb: peak,
      complete_to_ready_s: wall,
      api_idle_p50_ms: percentile(idle, 50),
      api_idle_p95_ms: percentile(idle, 95),
      api_busy_p50_ms: percentile(busy, 50),
      api_busy_p95_ms: percentile(busy, 95),
      api_busy_samples: busy.length,
    };
  } finally {
    serve.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const input = makeInput();
  if (!fs.existsSync(path.join(ROOT, 'dist/cli/main.js'))) spawnSync('node_modules/.bin/tsc', ['-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
  const results: Record<string, Measured & Record<string, unknown>> = {};
  const run = async (name: string, fn: () => Measured | undefined | Promise<Measured | undefined>) => {
    if (!wanted.has(name)) return;
    process.stderr.write(`${name}…\n`);
    const r = await fn();
    if (r) results[name] = r as Measured & Record<string, unknown>;
  };
  await run('pipeline-ladder', () => pipeline('pipeline-ladder', input, false));
  await run('A', () => reference('A', input));
  await run('pipeline-full', () => pipeline('pipeline-full', input, true));
  await run('A_all', () => reference('A_all', input));
  await run('B', () => reference('B', input));
  await run('C', () => reference('C', input));
  await run('E_thumbs_sprite', () => reference('E_thumbs_sprite', input));
  await run('webm', () => webm(input));
  await run('D', () => reference('D_vp9_720_good4_cq2M', input));
  await run('e2e', () => endToEnd(input));
  const side = SIDE_CASES.some((c) => wanted.has(c)) ? makeSideInputs(input) : undefined;
  if (side) {
    await run('audio', () => audioPipeline('audio', side.audio, true));
    await run('audio-no-hls', () => audioPipeline('audio-no-hls', side.audio, false));
    await run('G_opus_spectrogram', () => reference('G_opus_spectrogram', side.audio));
    await run('image-24mp', () => imagePipeline(side.jpeg));
    await run('sharp-24mp', () => sharpReference(side.jpeg));
  }

  const a = results.A;
  const ratio = (x?: Measured, y?: Measured) => (x && y ? x.wall_s / y.wall_s : NaN);
  const rows = Object.values(results).map((r) => ({
    case: r.case,
    wall_s: r.wall_s.toFixed(1),
    realtime_x: SIDE_CASES.includes(r.case) ? (r.case.includes('24mp') ? '-' : (600 / r.wall_s).toFixed(1)) : (seconds / r.wall_s).toFixed(2),
    cpu_s: Number.isNaN(r.cpu_s) ? '-' : r.cpu_s.toFixed(1),
    vs_A: a && !SIDE_CASES.includes(r.case) ? (r.wall_s / a.wall_s).toFixed(2) : '-',
    peak_rss_mb: r.peak_rss_mb.toFixed(0),
  }));
  console.log(`\nProcessing benchmark: ${seconds} s 1080p30 input, ${os.cpus().length} CPUs, node ${process.version}`);
  console.table(rows);
  const summary = {
    pipeline_ladder_vs_A: ratio(results['pipeline-ladder'], a),
    pipeline_full_vs_A_all: ratio(results['pipeline-full'], results.A_all),
    thumbnails_extra_s: results['pipeline-full'] && results['pipeline-ladder'] ? results['pipeline-full'].wall_s - results['pipeline-ladder'].wall_s : NaN,
    B_vs_A: ratio(results.B, a),
    C_vs_A: ratio(results.C, a),
    webm_vs_A: ratio(results.webm, a),
    audio_no_hls_vs_G_opus_spectrogram: ratio(results['audio-no-hls'], results.G_opus_spectrogram),
    audio_10min: results.audio ? { wall_s: results.audio.wall_s, peak_rss_mb: results.audio.peak_rss_mb } : null,
    image_24mp: results['image-24mp'] ? { wall_s: results['image-24mp'].wall_s, peak_rss_mb: results['image-24mp'].peak_rss_mb } : null,
    image_vs_plain_sharp: ratio(results['image-24mp'], results['sharp-24mp']),
    complete_to_ready_s: results.e2e?.complete_to_ready_s ?? NaN,
    serve_peak_rss_mb_with_ffmpeg: results.e2e?.peak_rss_mb ?? NaN,
    api_latency_ms: results.e2e
      ? {
          idle_p50: results.e2e.api_idle_p50_ms,
          idle_p95: results.e2e.api_idle_p95_ms,
          transcoding_p50: results.e2e.api_busy_p50_ms,
          transcoding_p95: results.e2e.api_busy_p95_ms,
        }
      : null,
    goal: 'pipeline ÷ raw one-pass ≤ 1.10',
  };
  console.log(summary);
  console.log(`goal pipeline-ladder / A ≤ 1.10: ${summary.pipeline_ladder_vs_A.toFixed(2)} ${summary.pipeline_ladder_vs_A <= 1.1 ? 'MET' : 'NOT MET'}`);
  fs.mkdirSync(path.dirname(argv.out!), { recursive: true });
  fs.writeFileSync(
    argv.out!,
    JSON.stringify(
      {
        benchmark: 'processing',
        date: new Date().toISOString(),
        seconds,
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
