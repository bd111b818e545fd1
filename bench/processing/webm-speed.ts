/**
 * WebM speed benchmark (not a test): which libvpx-vp9 `-deadline`/`-cpu-used` the WebM step
 * should use. Every case encodes with the step's own command (buildWebmCommand: rung, CRF and
 * rate cap as in production); only the speed settings differ. Quality is measured against the
 * source scaled to the rung's size the same way (PSNR and SSIM filters), so it is the
 * encoder's loss alone.
 *
 *   node --import tsx bench/processing/webm-speed.ts [--duration 20] [--runs 2]
 *        [--settings good:2,good:3,good:4,good:5,realtime:5,realtime:6,realtime:8] [--inputs bench/results/inputs]
 *        [--out bench/results/webm-speed.json] [--no-reference] [--no-real] [--no-curve]
 *
 * Clips: a synthetic one from ../shared/bench-reference/make-inputs.sh (1080p30 H.264 with fine
 * detail, motion and temporal grain, stereo AAC; made once into --inputs), hard enough that
 * every setting hits the 720p rate cap, so its quality numbers compare settings at equal rate;
 * and real footage (media-samples/h264-640x360-noaudio-beach.mkv, its own 360p rung), where the
 * CRF decides and the settings end at different rates. Unless --no-reference, each run also
 * times two reference cases from ../shared/bench-reference/cases.sh on the synthetic clip:
 * D_vp9_720_good4_cq2M (the reference VP9 720p command) and A (the H.264 ladder), so the cost
 * of the WebM step reads as a ratio to the ladder. Cases rotate from run to run; the median of
 * the runs is reported. Every ffmpeg runs under /usr/bin/time, so CPU seconds (user + sys, all
 * threads) are reported beside wall time: CPU time is what other jobs on the machine lose,
 * and it is less disturbed than wall time by other load (the load average is recorded).
 *
 * Then (unless --no-curve) rate-quality curves on the real footage: every setting at three
 * CRFs, plus the ladder's x264 (veryfast) at three, and the BD-rate of each against the first
 * setting: how many more bits it needs for the same PSNR. The suggested setting is the
 * cheapest that keeps 3/4 of the best setting's bit saving over x264 and loses at most 0.5
 * SSIM dB at the rate cap.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ffprobe } from '../../src/tools/ffprobe.js';
import { mediaFacts, type MediaFacts, type VideoFacts } from '../../src/processing/probe-facts.js';
import { outputFps } from '../../src/processing/video/video-command.js';
import { buildWebmCommand, planWebmRung, WEBM_SPEED, type VpxSpeed } from '../../src/processing/video/webm.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const REFERENCE = path.resolve(ROOT, '../shared/bench-reference');
const SAMPLES = path.resolve(ROOT, '../shared/media-samples');

const { values: argv } = parseArgs({
  options: {
    duration: { type: 'string', default: '20' },
    runs: { type: 'string', default: '2' },
    settings: { type: 'string', default: 'good:2,good:3,good:4,good:5,realtime:5,realtime:6,realtime:8' },
    inputs: { type: 'string', default: path.join(ROOT, 'bench/results/inputs') },
    out: { type: 'string', default: path.join(ROOT, 'bench/results/webm-speed.json') },
    'no-reference': { type: 'boolean', default: false },
    'no-real': { type: 'boolean', default: false },
    'no-curve': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (argv.help) {
  process.stdout.write(`${fs.readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]}*/\n`);
  process.exit(0);
}
const DURATION = Number(argv.duration);
const RUNS = Number(argv.runs);
if (!Number.isInteger(DURATION) || DURATION < 2 || !Number.isInteger(RUNS) || RUNS < 1)
  throw new Error('--duration (s, ≥ 2) and --runs must be positive integers');
const SETTINGS: VpxSpeed[] = argv.settings!.split(',').map((s) => {
  const [deadline, cpu] = s.trim().split(':');
  if (!['good', 'realtime', 'best'].includes(deadline ?? '') || !/^-?\d+$/.test(cpu ?? ''))
    throw new Error(`bad setting ${s}: want deadline:cpu-used, e.g. good:4`);
  return { deadline: deadline as VpxSpeed['deadline'], cpuUsed: Number(cpu) };
});

interface Measure {
  wallS: number;
  cpuS: number;
  maxRssMb: number;
  /** Video stream only, kb/s (1000 bits). */
  videoKbps: number;
  psnr: number;
  ssim: number;
  /** SSIM as dB: -10·log10(1 − SSIM). */
  ssimDb: number;
}

interface Case {
  name: string;
  kind: 'webm' | 'reference-vp9' | 'reference-ladder';
  speed?: VpxSpeed;
  runs: Measure[];
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): { stdout: string; stderr: string } {
  const res = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: opts.env ?? process.env });
  if (res.error) throw res.error;
  if (res.status !== 0) throw new Error(`${cmd} ${args.slice(0, 6).join(' ')} … exited with ${res.status}: ${res.stderr.slice(-2000)}`);
  return { stdout: res.stdout, stderr: res.stderr };
}

/** Runs a command under /usr/bin/time: wall, user+sys CPU (children included) and peak RSS. */
function timed(cmd: string, args: string[], env?: NodeJS.ProcessEnv): { wallS: number; cpuS: number; maxRssMb: number } {
  const timeFile = path.join(os.tmpdir(), `webm-speed-time-${process.pid}.txt`);
  run('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, cmd, ...args], { env });
  const [e, u, s, m] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number) as [number, number, number, number];
  fs.rmSync(timeFile, { force: true });
  return { wallS: e, cpuS: u + s, maxRssMb: Math.round(m / 1024) };
}

function videoKbps(file: string): number {
  const out = run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=size:format=duration', '-of', 'json', file]).stdout;
  const j = JSON.parse(out) as { packets: Array<{ size: string }>; format: { duration: string } };
  const bytes = j.packets.reduce((n, p) => n + Number(p.size), 0);
  return Math.round((bytes * 8) / Number(j.format.duration) / 1000);
}

/** PSNR (dB, average of the planes) and SSIM (All) of `encoded` against `source` scaled to its size the same way. */
function quality(encoded: string, source: string, width: number, height: number): { psnr: number; ssim: number; ssimDb: number } {
  const graph =
    `[0:v]setpts=PTS-STARTPTS,split[d1][d2];` +
    `[1:v]scale=${width}:${height}:flags=bicubic,setsar=1,format=yuv420p,setpts=PTS-STARTPTS,split[r1][r2];` +
    `[d1][r1]psnr;[d2][r2]ssim`;
  const { stderr } = run('ffmpeg', [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'info',
    '-i',
    encoded,
    '-i',
    source,
    '-filter_complex',
    graph,
    '-an',
    '-f',
    'null',
    '-',
  ]);
  const psnr = /PSNR y:[\d.]+ u:[\d.]+ v:[\d.]+ average:([\d.]+|inf)/.exec(stderr)?.[1];
  const ssim = /SSIM Y:[\d.]+ \([\d.inf]+\) U:[\d.]+ \([\d.inf]+\) V:[\d.]+ \([\d.inf]+\) All:([\d.]+)/.exec(stderr)?.[1];
  if (!psnr || !ssim) throw new Error(`no PSNR/SSIM in ffmpeg's output: ${stderr.slice(-1500)}`);
  const s = Number(ssim);
  return { psnr: Number(psnr), ssim: s, ssimDb: -10 * Math.log10(1 - s) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function medianOf(runs: Measure[]): Measure {
  const keys = Object.keys(runs[0]!) as Array<keyof Measure>;
  return Object.fromEntries(keys.map((k) => [k, median(runs.map((r) => r[k]))])) as unknown as Measure;
}

// ---------------------------------------------------------------------------------------------
// Input

fs.mkdirSync(argv.inputs!, { recursive: true });
const input = path.join(argv.inputs!, `input-1080p${DURATION}s.mp4`);
if (!fs.existsSync(input) || fs.statSync(input).size === 0) {
  process.stdout.write(`making ${path.relative(ROOT, input)} with make-inputs.sh (${DURATION} s; takes a while on 2 cores)…\n`);
  run('bash', [path.join(REFERENCE, 'make-inputs.sh'), String(DURATION)], { env: { ...process.env, BENCH_INPUTS: argv.inputs! } });
}
const threads = os.cpus().length;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'qasar-webm-speed-'));

interface Clip {
  label: string;
  file: string;
  facts: MediaFacts & { video: VideoFacts };
  seconds: number;
  fps: number;
  rung: ReturnType<typeof planWebmRung>;
  cases: Case[];
}

const clipFiles: Array<{ label: string; file: string; references: boolean }> = [
  { label: 'synthetic 1080p30 (grain)', file: input, references: !argv['no-reference'] },
];
if (!argv['no-real']) clipFiles.push({ label: 'real footage 640x360', file: path.join(SAMPLES, 'h264-640x360-noaudio-beach.mkv'), references: false });
const clips: Clip[] = [];
for (const c of clipFiles) {
  const facts = mediaFacts(await ffprobe(c.file, 30_000)) as MediaFacts & { video: VideoFacts };
  const fps = outputFps(facts.video);
  const cases: Case[] = SETTINGS.map((speed) => ({ name: `${speed.deadline}/cpu-used ${speed.cpuUsed}`, kind: 'webm', speed, runs: [] }));
  if (c.references) {
    cases.push({ name: 'ref D_vp9_720_good4_cq2M', kind: 'reference-vp9', runs: [] });
    cases.push({ name: 'ref A (H.264 ladder)', kind: 'reference-ladder', runs: [] });
  }
  clips.push({ label: c.label, file: c.file, facts, seconds: facts.duration ?? DURATION, fps, rung: planWebmRung(facts.video, fps), cases });
}

const loadBefore = os.loadavg();
process.stdout.write(`${threads} threads; ${RUNS} run(s); load ${loadBefore.map((l) => l.toFixed(2)).join(' ')}\n`);
for (const clip of clips) {
  const v = clip.facts.video;
  process.stdout.write(
    `${clip.label}: ${path.relative(ROOT, clip.file)} ${v.width}x${v.height} ${clip.fps} fps, ${clip.seconds.toFixed(1)} s; ` +
      `rung ${clip.rung.width}x${clip.rung.height} crf ${clip.rung.crf} cap ${clip.rung.maxBitrate / 1000} kb/s\n`,
  );
}

for (let r = 0; r < RUNS; r++) {
  for (const clip of clips) {
    const { cases, rung, facts, fps } = clip;
    const order = cases.map((_c, i) => cases[(i + r) % cases.length]!);
    for (const c of order) {
      const outDir = path.join(work, `${c.kind}-${c.speed?.deadline ?? ''}${c.speed?.cpuUsed ?? ''}-${r}`);
      fs.mkdirSync(outDir, { recursive: true });
      let t: { wallS: number; cpuS: number; maxRssMb: number };
      let encoded: string | undefined;
      if (c.kind === 'webm') {
        encoded = path.join(outDir, 'video.webm');
        t = timed('ffmpeg', buildWebmCommand({ input: clip.file, output: encoded, facts, rung, fps, keyframeSeconds: 4, threads, speed: c.speed! }));
      } else if (c.kind === 'reference-vp9') {
        encoded = path.join(outDir, 'video.webm');
        t = timed('bash', [path.join(REFERENCE, 'cases.sh'), 'D_vp9_720_good4_cq2M', clip.file, outDir, String(clip.seconds)]);
      } else {
        t = timed('bash', [path.join(REFERENCE, 'cases.sh'), 'A', clip.file, outDir, String(clip.seconds)]);
      }
      const m: Measure = encoded
        ? { ...t, videoKbps: videoKbps(encoded), ...quality(encoded, clip.file, rung.width, rung.height) }
        : { ...t, videoKbps: NaN, psnr: NaN, ssim: NaN, ssimDb: NaN };
      c.runs.push(m);
      fs.rmSync(outDir, { recursive: true, force: true });
      process.stdout.write(
        `  run ${r + 1}/${RUNS} ${clip.label.slice(0, 14).padEnd(14)} ${c.name.padEnd(26)} ${t.wallS.toFixed(1)} s wall, ${t.cpuS.toFixed(1)} s CPU` +
          `${encoded ? `, ${m.videoKbps} kb/s, PSNR ${m.psnr.toFixed(2)} dB, SSIM ${m.ssim.toFixed(4)}` : ''}\n`,
      );
    }
  }
}
fs.rmSync(work, { recursive: true, force: true });

// ---------------------------------------------------------------------------------------------
// Report

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

const header = ['case', 'wall s', 'CPU s', 'x realtime', 'CPU / ladder', 'RSS MB', 'video kb/s', 'PSNR dB', 'SSIM', 'SSIM dB'];
const report = clips.map((clip) => {
  const ladder = clip.cases.find((c) => c.kind === 'reference-ladder');
  const ladderCpu = ladder ? medianOf(ladder.runs).cpuS : undefined;
  const rows = clip.cases.map((c) => {
    const m = medianOf(c.runs);
    return {
      case: c.name,
      kind: c.kind,
      ...(c.speed ? { deadline: c.speed.deadline, cpuUsed: c.speed.cpuUsed } : {}),
      wallS: round(m.wallS, 1),
      cpuS: round(m.cpuS, 1),
      realtimeX: round(clip.seconds / m.wallS, 2),
      cpuVsLadder: ladderCpu ? round(m.cpuS / ladderCpu, 2) : null,
      maxRssMb: m.maxRssMb,
      videoKbps: Number.isNaN(m.videoKbps) ? null : m.videoKbps,
      psnrDb: Number.isNaN(m.psnr) ? null : round(m.psnr, 2),
      ssim: Number.isNaN(m.ssim) ? null : round(m.ssim, 4),
      ssimDb: Number.isNaN(m.ssimDb) ? null : round(m.ssimDb, 2),
      runs: c.runs,
    };
  });
  const table = rows.map((r) => [
    r.case,
    r.wallS.toFixed(1),
    r.cpuS.toFixed(1),
    r.realtimeX.toFixed(2),
    r.cpuVsLadder?.toFixed(2) ?? '-',
    String(r.maxRssMb),
    r.videoKbps?.toString() ?? '-',
    r.psnrDb?.toFixed(2) ?? '-',
    r.ssim?.toFixed(4) ?? '-',
    r.ssimDb?.toFixed(2) ?? '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  process.stdout.write(
    `\n${clip.label}, ${clip.rung.width}x${clip.rung.height}, ${clip.seconds.toFixed(1)} s (medians of ${RUNS})\n` +
      `${line(header)}\n|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|\n${table.map(line).join('\n')}\n`,
  );
  return {
    label: clip.label,
    input: { file: path.relative(ROOT, clip.file), width: clip.facts.video.width, height: clip.facts.video.height, fps: clip.fps, seconds: clip.seconds },
    rung: clip.rung,
    cases: rows,
  };
});

// ---------------------------------------------------------------------------------------------
// Rate-quality curves (real footage only: its encodes are quick and CRF-bound, so the settings
// end at different rates and PSNR alone would flatter the ones that spend more bits). Each
// setting encodes at three CRFs; BD-rate is the average extra rate a setting needs for the
// same PSNR as the first setting, over the PSNR range both curves cover.

interface CurvePoint {
  crf: number;
  kbps: number;
  psnr: number;
  ssim: number;
  cpuS: number;
}

/** Piecewise-linear log(rate) as a function of PSNR, averaged over the overlap: Bjøntegaard-style, without the cubic fit. */
function bdRate(ref: CurvePoint[], test: CurvePoint[]): number | null {
  const curve = (pts: CurvePoint[]) => [...pts].sort((x, y) => x.psnr - y.psnr).map((p) => [p.psnr, Math.log(p.kbps)] as const);
  const r = curve(ref);
  const t = curve(test);
  const lo = Math.max(r[0]![0], t[0]![0]);
  const hi = Math.min(r[r.length - 1]![0], t[t.length - 1]![0]);
  if (!(hi > lo)) return null;
  const at = (c: ReadonlyArray<readonly [number, number]>, q: number) => {
    for (let i = 1; i < c.length; i++) {
      const [q0, l0] = c[i - 1]!;
      const [q1, l1] = c[i]!;
      if (q <= q1) return q1 === q0 ? l1 : l0 + ((l1 - l0) * (q - q0)) / (q1 - q0);
    }
    return c[c.length - 1]![1];
  };
  const n = 200;
  let sum = 0;
  for (let i = 0; i <= n; i++) {
    const q = lo + ((hi - lo) * i) / n;
    sum += at(t, q) - at(r, q);
  }
  return (Math.exp(sum / (n + 1)) - 1) * 100;
}

const curveClip = clips.find((c) => c.file.includes('media-samples'));
interface Curve {
  setting: string;
  deadline?: string;
  cpuUsed?: number;
  points: CurvePoint[];
  bdRatePct: number | null;
}
const curves: Curve[] = [];
/** The H.264 ladder's own encoder settings (video-command.ts: veryfast, High, closed 2 s GOPs) around its CRF 22. */
let x264Curve: Curve | undefined;
if (curveClip && !argv['no-curve']) {
  const crfs = [curveClip.rung.crf - 6, curveClip.rung.crf, curveClip.rung.crf + 6];
  const cdir = fs.mkdtempSync(path.join(os.tmpdir(), 'qasar-webm-curve-'));
  const { rung: base, facts, fps } = curveClip;
  for (const speed of SETTINGS) {
    const points: CurvePoint[] = [];
    for (const crf of crfs) {
      const out = path.join(cdir, `${speed.deadline}${speed.cpuUsed}-${crf}.webm`);
      const rung = { ...base, crf };
      const t = timed('ffmpeg', buildWebmCommand({ input: curveClip.file, output: out, facts, rung, fps, keyframeSeconds: 4, threads, speed }));
      const q = quality(out, curveClip.file, rung.width, rung.height);
      points.push({ crf, kbps: videoKbps(out), psnr: round(q.psnr, 2), ssim: round(q.ssim, 4), cpuS: t.cpuS });
      fs.rmSync(out, { force: true });
    }
    curves.push({ setting: `${speed.deadline}/cpu-used ${speed.cpuUsed}`, deadline: speed.deadline, cpuUsed: speed.cpuUsed, points, bdRatePct: null });
  }
  const x264Points: CurvePoint[] = [];
  const gop = String(Math.round(fps * 2));
  for (const crf of [18, 22, 26]) {
    const out = path.join(cdir, `x264-${crf}.mp4`);
    const t = timed('ffmpeg', [
      '-hide_banner',
      '-nostdin',
      '-y',
      '-loglevel',
      'error',
      '-i',
      curveClip.file,
      '-map',
      '0:v:0',
      '-vf',
      `scale=${base.width}:${base.height}:flags=bicubic,setsar=1,format=yuv420p`,
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-profile:v',
      'high',
      '-crf',
      String(crf),
      '-g',
      gop,
      '-keyint_min',
      gop,
      '-sc_threshold',
      '0',
      '-threads',
      String(threads),
      '-f',
      'mp4',
      out,
    ]);
    const q = quality(out, curveClip.file, base.width, base.height);
    x264Points.push({ crf, kbps: videoKbps(out), psnr: round(q.psnr, 2), ssim: round(q.ssim, 4), cpuS: t.cpuS });
    fs.rmSync(out, { force: true });
  }
  x264Curve = { setting: 'ref x264 veryfast (ladder)', points: x264Points, bdRatePct: null };
  fs.rmSync(cdir, { recursive: true, force: true });
  for (const c of [...curves, x264Curve]) {
    const b = c === curves[0] ? 0 : bdRate(curves[0]!.points, c.points);
    c.bdRatePct = b === null ? null : round(b, 1);
  }
  const head = ['setting', 'kb/s / PSNR dB at 3 CRFs', 'CPU s (3)', `BD-rate vs ${curves[0]!.setting}`];
  const body = [...curves, x264Curve].map((c) => [
    c.setting,
    c.points.map((p) => `crf ${p.crf}: ${p.kbps} / ${p.psnr.toFixed(2)}`).join(', '),
    c.points.reduce((n, p) => n + p.cpuS, 0).toFixed(1),
    c.bdRatePct === null ? '-' : `${c.bdRatePct >= 0 ? '+' : ''}${c.bdRatePct.toFixed(1)} %`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const ln = (cells: string[]) => `| ${cells.map((c, i) => (i <= 1 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ')} |`;
  process.stdout.write(
    `\nrate-quality curves, ${curveClip.label} at ${base.width}x${base.height} (one run)\n` +
      `${ln(head)}\n|${w.map((x, i) => (i <= 1 ? '-'.repeat(x + 2) : `${'-'.repeat(x + 1)}:`)).join('|')}|\n${body.map(ln).join('\n')}\n`,
  );
}

// Suggestion. A VP9 rendition is worth making for its bits: the H.264 ladder is made anyway.
// So a setting must keep at least 3/4 of the best setting's bit saving over the ladder's x264
// (BD-rate, real footage) and, on a clip where every setting hits the rate cap, lose at most
// 0.5 SSIM dB to the best; of those, the cheapest in CPU (summed over the clips), settings
// within 5 % of it counting as equally cheap (then the most efficient wins).
function savingOverX264(c: Curve | undefined): number | null {
  if (!c || !x264Curve || c.bdRatePct === null || x264Curve.bdRatePct === null) return null;
  return 1 - (100 + c.bdRatePct) / (100 + x264Curve.bdRatePct);
}
const bestSaving = Math.max(...curves.map((c) => savingOverX264(c) ?? -Infinity));
const candidates = SETTINGS.map((speed) => {
  const mine = report.map((clip) => clip.cases.find((r) => r.kind === 'webm' && r.deadline === speed.deadline && r.cpuUsed === speed.cpuUsed)!);
  const capOk = report.every((clip, i) => {
    const webm = clip.cases.filter((r) => r.kind === 'webm');
    const atCap = webm.every((r) => (r.videoKbps ?? 0) >= (clip.rung.maxBitrate / 1000) * 0.95);
    if (!atCap) return true;
    const best = Math.max(...webm.map((r) => r.ssimDb ?? -Infinity));
    return (mine[i]!.ssimDb ?? -Infinity) >= best - 0.5;
  });
  const curve = curves.find((c) => c.deadline === speed.deadline && c.cpuUsed === speed.cpuUsed);
  const saving = savingOverX264(curve);
  const savingOk = saving === null || !Number.isFinite(bestSaving) || saving >= 0.75 * bestSaving;
  return { speed, ok: capOk && savingOk, cpuS: mine.reduce((n, r) => n + r.cpuS, 0), bd: curve?.bdRatePct ?? 0 };
});
const passing = candidates.filter((c) => c.ok).sort((a, b) => a.cpuS - b.cpuS);
const suggested = passing.filter((c) => c.cpuS <= passing[0]!.cpuS * 1.05).sort((a, b) => (a.bd ?? 0) - (b.bd ?? 0))[0]?.speed;
const loadAfter = os.loadavg();
process.stdout.write(
  `\nsuggested (cheapest keeping 3/4 of the best bit saving over x264, ≤ 0.5 SSIM dB lost at the cap): ` +
    `${suggested ? `${suggested.deadline}/cpu-used ${suggested.cpuUsed}` : 'none'}; in use (WEBM_SPEED): ${WEBM_SPEED.deadline}/cpu-used ${WEBM_SPEED.cpuUsed}\n` +
    `load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}\n`,
);

const ffmpegVersion = run('ffmpeg', ['-version']).stdout.split('\n')[0];
const result = {
  when: new Date().toISOString(),
  host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadBefore, loadAfter },
  ffmpeg: ffmpegVersion,
  threads,
  runs: RUNS,
  inUse: WEBM_SPEED,
  suggested: suggested ?? null,
  clips: report,
  curves: x264Curve ? [...curves, x264Curve] : curves,
};
fs.mkdirSync(path.dirname(argv.out!), { recursive: true });
fs.writeFileSync(argv.out!, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`wrote ${path.relative(ROOT, argv.out!)}\n`);
