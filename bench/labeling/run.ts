/**
 * Labeling benchmark (not a test): the local models, and what labeling costs a real server.
 *
 *   node --import tsx bench/labeling/run.ts [--seconds 60] [--cases models,video,e2e] [--out bench/results/labeling.json]
 *
 * Cases:
 *   models  load time of each model and its latency per item (the photos of scripts/test-fixtures.sh);
 *           the speech models, when the model process has them, on a spoken clip (espeak-ng)
 *   video   on the 1080p input of ../shared/bench-reference/make-inputs.sh: our whole video step (ladder,
 *           thumbnails, sprite, poster) and the labeling of the same file at LABELING_FPS=1 (frames decoded
 *           by one ffmpeg run, then both vision models on each), each as its own process under
 *           /usr/bin/time; labeling ÷ ladder (goal < 1), labeling ÷ duration, peak RSS of the model process
 *   e2e     a real `qasar serve` (SQLite, labeling on): complete → ready of the clip, ready → moderation
 *           decision (goal < 15 s), peak RSS of the server with its model process and ffmpeg (goal < 1.5 GB),
 *           and complete → ready of a short clip uploaded while the first one is labeled, against the same
 *           clip on an idle server (labeling never delays a new upload)
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
const PHOTOS = path.join(ROOT, '.cache/fixtures/photos');

const { values: argv } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    cases: { type: 'string', default: 'models,video,e2e' },
    inputs: { type: 'string', default: path.join(ROOT, 'bench/results/inputs') },
    out: { type: 'string', default: path.join(ROOT, 'bench/results/labeling.json') },
  },
});
const seconds = Number(argv.seconds);
const wanted = new Set(argv.cases!.split(','));

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

/** A short clip cut from the input (the upload that must not wait for labeling). */
function shortClip(input: string): string {
  const file = path.join(argv.inputs!, 'input-1080p5s.mp4');
  if (!fs.existsSync(file)) {
    const res = spawnSync('ffmpeg', ['-v', 'error', '-y', '-i', input, '-t', '5', '-c', 'copy', file], { stdio: 'inherit' });
    if (res.status !== 0) throw new Error('cutting the short clip failed');
  }
  return file;
}

interface Timed {
  wall_s: number;
  cpu_s: number;
  peak_rss_mb: number;
  stdout: string;
}

/** A TypeScript snippet as its own process under /usr/bin/time: wall, CPU of every process and peak RSS (of the largest). */
function timedScript(name: string, body: string): Timed {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `qasar-bench-${name}-`));
  const file = path.join(dir, 'run.mts');
  const stats = path.join(dir, 'time.txt');
  fs.writeFileSync(file, body.replaceAll('$OUT', JSON.stringify(dir)));
  try {
    const start = process.hrtime.bigint();
    const res = spawnSync('/usr/bin/time', ['-f', '%U %S %M', '-o', stats, process.execPath, '--import', 'tsx', file], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules') },
      maxBuffer: 64 * 1024 * 1024,
    });
    const wall = Number(process.hrtime.bigint() - start) / 1e9;
    if (res.status !== 0) throw new Error(`${name} failed (${res.status}): ${res.stderr.slice(-2000)}`);
    const [user, sys, rssKb] = fs.readFileSync(stats, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    return { wall_s: wall, cpu_s: user! + sys!, peak_rss_mb: rssKb! / 1024, stdout: res.stdout };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const src = (rel: string) => JSON.stringify(path.join(ROOT, 'src', rel));

const SPOKEN =
  'Here is my new bike, parked next to the red car. Later we watched the horses running across the green field near the river. ' +
  'The weather was cold in the morning, but by noon the sun came out and everyone sat on the grass to eat lunch together.';

/** A 720p frame with a subtitle drawn on it, and about 30 s of speech (espeak-ng) as 16 kHz float32 samples. */
function speechInputs(): { sign: string; speechPcm: string } {
  const sign = path.join(argv.inputs!, 'subtitled-720p.png');
  const wav = path.join(argv.inputs!, 'speech.wav');
  const speechPcm = path.join(argv.inputs!, 'speech.f32');
  const run = (cmd: string, args: string[]) => {
    const res = spawnSync(cmd, args, { stdio: 'inherit' });
    if (res.status !== 0) throw new Error(`${cmd} failed`);
  };
  if (!fs.existsSync(sign)) {
    run('ffmpeg', [
      ...['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:duration=1'],
      ...[
        '-vf',
        "drawtext=font='DejaVu Sans':text='BIKE SHOP OPEN TODAY':fontsize=56:fontcolor=white:box=1:boxcolor=black@0.8:x=(w-tw)/2:y=h-th-60",
        '-frames:v',
        '1',
        sign,
      ],
    ]);
  }
  if (!fs.existsSync(speechPcm)) {
    run('espeak-ng', ['-v', 'en-us', '-s', '150', '-w', wav, `${SPOKEN} ${SPOKEN}`]);
    run('ffmpeg', ['-v', 'error', '-y', '-i', wav, '-ac', '1', '-ar', '16000', '-f', 'f32le', speechPcm]);
  }
  return { sign, speechPcm };
}

/** Load times and per-item latency of each model, in the model processes. */
function models(): Record<string, unknown> {
  const photos = fs.existsSync(PHOTOS) ? fs.readdirSync(PHOTOS).filter((n) => /\.(jpe?g|png)$/.test(n)) : [];
  if (!photos.length) throw new Error('no photos: run scripts/test-fixtures.sh');
  const { sign, speechPcm } = speechInputs();
  const run = timedScript(
    'models',
    `import { ModelHost } from ${src('models/model-host.ts')};
     const host = new ModelHost({ requestTimeoutMs: 600000 });
     const started = Date.now();
     const load = await host.warmUp('vision', ['coco-ssd', 'nsfwjs']);
     const firstCallMs = Date.now() - started;
     const objects = [], nsfw = [], whole = [];
     for (let round = 0; round < 3; round++) {
       for (const p of ${JSON.stringify(photos.map((p) => path.join(PHOTOS, p)))}) {
         const t0 = Date.now();
         const r = await host.vision(p);
         whole.push(Date.now() - t0);
         objects.push(r.ms.objects);
         nsfw.push(r.ms.nsfw);
       }
     }
     const visionStats = await host.stats('vision');
     const ocr = [];
     for (const p of ${JSON.stringify(photos.map((p) => path.join(PHOTOS, p)))}) ocr.push((await host.ocr(p)).ms);
     const signOcr = [];
     for (let i = 0; i < 3; i++) signOcr.push((await host.ocr(${JSON.stringify(sign)})).ms);
     const ocrStats = await host.stats('vision');
     const embed = [];
     for (const text of ['a dog next to a bicycle', 'bike', 'horse riding lessons', 'the red car', 'violence', 'a cup of coffee']) embed.push((await host.embed([text])).ms);
     const t1 = Date.now();
     const speech = await host.speech(${JSON.stringify(speechPcm)});
     const vadMs = Date.now() - t1;
     const t2 = Date.now();
     const transcript = await host.transcribe(${JSON.stringify(speechPcm)}, { windows: speech.segments, model: 'base' });
     const whisperMs = Date.now() - t2;
     const speechStats = await host.stats('speech');
     const textStats = await host.stats('text');
     await host.close();
     console.log(JSON.stringify({ load, firstCallMs, objects, nsfw, whole, peakRssMb: visionStats.peakRssMb, ocr, signOcr, ocrPeakRssMb: ocrStats.peakRssMb,
       embed, soundSeconds: speech.duration, speechSeconds: speech.segments.reduce((s, w) => s + w.end - w.start, 0), vadMs, whisperMs,
       cues: transcript.cues.length, speechLoad: speechStats.loaded, speechPeakRssMb: speechStats.peakRssMb, textLoad: textStats.loaded, textPeakRssMb: textStats.peakRssMb }));`,
  );
  const r = JSON.parse(run.stdout.trim().split('\n').pop()!);
  return {
    load_ms: r.load,
    start_and_load_ms: r.firstCallMs,
    per_item_ms: {
      'coco-ssd': { p50: percentile(r.objects, 50), p95: percentile(r.objects, 95) },
      nsfwjs: { p50: percentile(r.nsfw, 50), p95: percentile(r.nsfw, 95) },
      vision_call_with_decode: { p50: percentile(r.whole, 50), p95: percentile(r.whole, 95) },
    },
    items: r.whole.length,
    vision_process_peak_rss_mb: r.peakRssMb,
    ocr_ms: { photo_p50: percentile(r.ocr, 50), photo_p95: percentile(r.ocr, 95), subtitled_720p_frame_p50: percentile(r.signOcr, 50) },
    vision_process_with_ocr_peak_rss_mb: r.ocrPeakRssMb,
    embed_ms_per_sentence: { p50: percentile(r.embed, 50), p95: percentile(r.embed, 95) },
    text_load_ms: r.textLoad,
    text_process_peak_rss_mb: r.textPeakRssMb,
    speech: {
      sound_s: r.soundSeconds,
      speech_s: r.speechSeconds,
      vad_realtime_x: r.soundSeconds / (r.vadMs / 1000),
      whisper_base_realtime_x: r.speechSeconds / (r.whisperMs / 1000),
      transcript_realtime_factor: (r.vadMs + r.whisperMs) / 1000 / r.soundSeconds,
      cues: r.cues,
      load_ms: r.speechLoad,
      speech_process_peak_rss_mb: r.speechPeakRssMb,
    },
  };
}

/** Our whole video step, and the labeling of the same file, as separate processes. */
function video(input: string): Record<string, unknown> {
  const ladder = timedScript(
    'ladder',
    `import { packageVideo } from ${src('processing/video/package-video.ts')};
     import os from 'node:os';
     await packageVideo(${JSON.stringify(input)}, $OUT + '/work', { hls: true, dash: true, thumbnails: true, posters: true, thumbnailCount: 25,
       threads: os.availableParallelism(), probeTimeoutMs: 60000, ffmpegTimeoutMs: 7200000, maxDurationSeconds: 43200, maxPixels: 8192 * 4320 });`,
  );
  const labeling = timedScript(
    'labeling',
    `import { streamVideoFrames } from ${src('processing/labeling/frames.ts')};
     import { ModelHost } from ${src('models/model-host.ts')};
     const host = new ModelHost({ requestTimeoutMs: 600000 });
     await host.warmUp();
     const t0 = Date.now();
     let frames = 0;
     // As the labeling step does: the models look at each frame as soon as ffmpeg has decoded it.
     for await (const f of streamVideoFrames(${JSON.stringify(input)}, $OUT + '/frames', { fps: 1, duration: ${seconds}, maxFrames: 3600, timeoutMs: 3600000 })) {
       await host.vision(f.file, { minObjectScore: 0.6 });
       frames++;
     }
     const labelMs = Date.now() - t0;
     const stats = await host.stats();
     await host.close();
     console.log(JSON.stringify({ frames, labelMs, peakRssMb: stats.peakRssMb }));`,
  );
  const l = JSON.parse(labeling.stdout.trim().split('\n').pop()!);
  return {
    ladder_wall_s: ladder.wall_s,
    ladder_cpu_s: ladder.cpu_s,
    labeling_wall_s: labeling.wall_s,
    labeling_cpu_s: labeling.cpu_s,
    frames: l.frames,
    labeling_after_model_load_s: l.labelMs / 1000,
    labeling_vs_ladder: labeling.wall_s / ladder.wall_s,
    labeling_per_media_second: labeling.wall_s / seconds,
    model_process_peak_rss_mb: l.peakRssMb,
  };
}

/** A real server with labeling on: ready, ready → moderation decision, and a new upload while one is labeled. */
async function endToEnd(input: string, short: string): Promise<Record<string, unknown>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qasar-bench-labeling-e2e-'));
  const env = {
    ...process.env,
    STORAGE_ROOT: path.join(dir, 'storage'),
    DATABASE_URL: `sqlite:${path.join(dir, 'q.sqlite')}`,
    REDIS_URL: '',
    PORT: '0',
    LOG_LEVEL: 'warn',
    ENABLE_WEBM: 'false',
    ENABLE_WORKER_LABELING: 'true',
    ENABLE_TRANSCRIPTS: 'true',
  };
  const serve = spawn(process.execPath, [...shippedNodeFlags(ROOT), path.join(ROOT, 'bin/qasar.js'), 'serve'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let peak = 0;
  let modelsPeak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssOfTree(serve.pid!));
    modelsPeak = Math.max(
      modelsPeak,
      rssOfTree(serve.pid!, (cmdline) => cmdline.includes('model-process')),
    );
  }, 100);
  try {
    const m = await waitForLine(serve, /QASAR_API_KEY=(\S+)[\s\S]*API docs: (http:\/\/[^/]+)\/docs/);
    const auth = { authorization: `Bearer ${m[1]}` };
    const base = m[2]!;
    const get = async (url: string) => (await fetch(`${base}/api/v1${url}`, { headers: auth })).json() as Promise<any>;
    const upload = async (file: string): Promise<{ id: string; completedAt: bigint }> => {
      const data = fs.readFileSync(file);
      const chunk = 8 * 1024 * 1024;
      const s = (await (
        await fetch(`${base}/api/v1/upload`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify({ filename: path.basename(file), total_size: data.length, chunk_size: chunk }),
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
      return { id: done.id, completedAt: process.hrtime.bigint() };
    };
    const until = async (what: string, fn: () => Promise<boolean>): Promise<bigint> => {
      const deadline = Date.now() + 15 * 60_000;
      for (;;) {
        if (await fn()) return process.hrtime.bigint();
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const secondsBetween = (a: bigint, b: bigint) => Number(b - a) / 1e9;
    const isReady = (id: string) => async () => {
      const r = await get(`/media/${id}`);
      if (r.status === 'error') throw new Error(`media failed: ${JSON.stringify(r.error)}`);
      return r.status === 'ready';
    };

    // The short clip on an idle server (its own labeling then runs; wait for it to end).
    const idle = await upload(short);
    const idleReady = await until('idle short clip ready', isReady(idle.id));
    await until('idle short clip labeled', async () => (await get(`/media/${idle.id}/labels`)).labeling.state !== 'pending');

    const big = await upload(input);
    const bigReady = await until('clip ready', isReady(big.id));
    const decidedAt = await until('the clip moderated', async () => (await get(`/media/${big.id}/moderation`)).state !== 'pending');
    await until('the clip labeled', async () => (await get(`/media/${big.id}/labels`)).labeling.state !== 'pending');
    // A new upload while the clip is labeled again (a recompute): it must not wait for the labeling.
    await fetch(`${base}/api/v1/media/${big.id}/labels/recompute`, { method: 'POST', headers: auth });
    await until('labeling under way', async () => (await get(`/media/${big.id}/labels`)).labeling.state === 'pending');
    const busy = await upload(short);
    const busyReadyAt = await until('the new upload ready', isReady(busy.id));
    const labelingStillRan = (await get(`/media/${big.id}/labels`)).labeling.state === 'pending';
    await until('the clip labeled again', async () => (await get(`/media/${big.id}/labels`)).labeling.state !== 'pending');
    // Speech: a spoken clip, transcribed by Whisper base (the speech process replaces the vision one).
    const spoken = path.join(argv.inputs!, 'speech.m4a');
    if (!fs.existsSync(spoken))
      spawnSync('ffmpeg', ['-v', 'error', '-y', '-i', path.join(argv.inputs!, 'speech.wav'), '-c:a', 'aac', spoken], { stdio: 'inherit' });
    const audio = await upload(spoken);
    const transcribedAt = await until('the spoken clip transcribed', async () => {
      const r = await get(`/media/${audio.id}`);
      return r.status === 'ready' && r.file_metadata?.transcript?.state !== undefined;
    });
    const audioRecord = await get(`/media/${audio.id}`);
    const labeled = await get(`/media/${big.id}/labels`);
    const busyRecord = await get(`/media/${busy.id}`);
    const queueWait = (Date.parse(busyRecord.processing_started_at) - Date.parse(busyRecord.created_at)) / 1000;
    return {
      clip_complete_to_ready_s: secondsBetween(big.completedAt, bigReady),
      clip_ready_to_moderation_decision_s: secondsBetween(bigReady, decidedAt),
      clip_frames_labeled: labeled.labeling.frames,
      short_clip_complete_to_ready_idle_s: secondsBetween(idle.completedAt, idleReady),
      short_clip_complete_to_ready_while_labeling_s: secondsBetween(busy.completedAt, busyReadyAt),
      labeling_still_running_when_it_was_ready: labelingStillRan,
      short_clip_queue_wait_while_labeling_s: queueWait,
      server_peak_rss_mb_with_models_and_ffmpeg: peak,
      model_processes_peak_rss_mb: modelsPeak,
      spoken_clip_complete_to_transcript_s: secondsBetween(audio.completedAt, transcribedAt),
      spoken_clip_cues: audioRecord.file_metadata?.transcript?.cues ?? null,
    };
  } finally {
    clearInterval(sampler);
    serve.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1000));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const input = makeInput();
  if (!fs.existsSync(path.join(ROOT, 'dist/cli/main.js'))) spawnSync('node_modules/.bin/tsc', ['-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
  const results: Record<string, Record<string, unknown>> = {};
  if (wanted.has('models')) {
    process.stderr.write('models…\n');
    results.models = models();
  }
  if (wanted.has('video')) {
    process.stderr.write('video…\n');
    results.video = video(input);
  }
  if (wanted.has('e2e')) {
    process.stderr.write('e2e…\n');
    speechInputs();
    results.e2e = await endToEnd(input, shortClip(input));
  }
  console.log(`\nLabeling benchmark: ${seconds} s 1080p30 input, ${os.cpus().length} CPUs, node ${process.version}`);
  const m = results.models as any;
  if (m) {
    console.table(
      Object.entries(m.per_item_ms).map(([model, v]: [string, any]) => ({ model, load_ms: m.load_ms[model] ?? '-', p50_ms: v.p50, p95_ms: v.p95 })),
    );
  }
  const v = results.video as any;
  const e = results.e2e as any;
  const goals = {
    'labeling wall < ladder wall': v ? { value: Number(v.labeling_vs_ladder.toFixed(2)), met: v.labeling_vs_ladder < 1 } : null,
    'ready → moderation decision < 15 s': e
      ? { value: Number(e.clip_ready_to_moderation_decision_s.toFixed(1)), met: e.clip_ready_to_moderation_decision_s < 15 }
      : null,
    'model processes peak RSS < 1536 MB (Whisper base)': e
      ? { value: Math.round(e.model_processes_peak_rss_mb), met: e.model_processes_peak_rss_mb < 1536 }
      : null,
    'a new upload waits < 1 s in the queue while one is labeled': e
      ? { value: Number(e.short_clip_queue_wait_while_labeling_s.toFixed(2)), met: e.short_clip_queue_wait_while_labeling_s < 1 }
      : null,
    'a new upload is ready as fast as on an idle server (ratio, < 1.5)': e
      ? {
          value: Number((e.short_clip_complete_to_ready_while_labeling_s / e.short_clip_complete_to_ready_idle_s).toFixed(2)),
          met: e.short_clip_complete_to_ready_while_labeling_s / e.short_clip_complete_to_ready_idle_s < 1.5,
        }
      : null,
  };
  console.log(JSON.stringify({ models: m, video: v, e2e: e }, null, 2));
  console.table(Object.entries(goals).map(([goal, g]) => ({ goal, value: g?.value ?? '-', met: g ? (g.met ? 'MET' : 'NOT MET') : '-' })));
  fs.mkdirSync(path.dirname(argv.out!), { recursive: true });
  fs.writeFileSync(
    argv.out!,
    JSON.stringify({ at: new Date().toISOString(), node: process.version, cpus: os.cpus().length, seconds, results, goals }, null, 2),
  );
  console.log(`written: ${path.relative(ROOT, argv.out!)}`);
}

await main();
