import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SAMPLES } from '../support/harness.js';
import { pngDeclaring } from './image-fixtures.js';
import { chapterBombEpub } from './zip-fixtures.js';

/** Generous: the child peaks near 100 MB (Node, the TypeScript loader, sharp); a decoded bomb would take gigabytes. */
const PEAK_RSS_BOUND_MB = 400;

const CHILD = path.join(import.meta.dirname, 'hostile-input-child.ts');

interface Outcome {
  code: string;
  message: string;
  peakRssMb: number;
}

/** Peak resident memory (VmHWM) of a live process, in MiB. */
function peakRssMb(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, `VmHWM in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

/**
 * Runs one derivation in a child process; once it has printed its outcome (and before it may
 * exit) reads its peak RSS from /proc, then lets it go.
 */
async function deriveInChild(what: 'image' | 'epub' | 'audio', file: string, work: string): Promise<Outcome> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, what, file, work], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString('utf8');
      if (stdout.includes('\n')) resolve(stdout.slice(0, stdout.indexOf('\n')));
    });
    void exited.then((code) => reject(new Error(`the child exited with ${code} before reporting: ${stderr.slice(-2000)}`)));
  });
  const peak = peakRssMb(child.pid!);
  child.stdin.end();
  assert.equal(await exited, 0, stderr);
  return { ...(JSON.parse(line) as { code: string; message: string }), peakRssMb: peak };
}

describe('hostile inputs are refused with bounded memory (peak RSS of a child process)', () => {
  let tmp: string;
  const inputs: Record<string, string> = {};
  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-hostile-'));
    inputs.pngBomb = path.join(tmp, 'bomb-100000x100000.png');
    await fs.writeFile(inputs.pngBomb, pngDeclaring(100_000, 100_000));
    inputs.epubBomb = path.join(tmp, 'chapter-bomb.epub');
    await fs.writeFile(inputs.epubBomb, await chapterBombEpub(200 * 1024 * 1024));
    const flac = await fs.readFile(path.join(SAMPLES, 'flac-192khz-32bit-7s.flac'));
    inputs.cutFlac = path.join(tmp, 'cut.flac');
    await fs.writeFile(inputs.cutFlac, flac.subarray(0, Math.floor(flac.length * 0.4)));
  });
  after(() => fs.rm(tmp, { recursive: true, force: true }));

  const cases: Array<{ name: string; what: 'image' | 'epub' | 'audio'; input: () => string; code: string; reason: RegExp }> = [
    { name: 'a PNG declaring 100000x100000', what: 'image', input: () => inputs.pngBomb!, code: 'too-large', reason: /100000x100000.*pixels/ },
    {
      name: 'the 280-megapixel JPEG sample',
      what: 'image',
      input: () => path.join(SAMPLES, 'jpeg-giant-20000x14000.jpg'),
      code: 'too-large',
      reason: /20000x14000.*pixels/,
    },
    { name: 'an EPUB whose chapter is 200 MB of zeros', what: 'epub', input: () => inputs.epubBomb!, code: 'too-large', reason: /chapter1\.xhtml.*zip bomb/ },
    { name: 'a FLAC cut to 40 %', what: 'audio', input: () => inputs.cutFlac!, code: 'truncated-media', reason: /truncated/ },
  ];
  for (const c of cases) {
    it(`${c.name} is ${c.code}, the child staying under ${PEAK_RSS_BOUND_MB} MB`, async () => {
      const work = await fs.mkdtemp(path.join(tmp, 'work-'));
      const out = await deriveInChild(c.what, c.input(), work);
      assert.equal(out.code, c.code, out.message);
      assert.match(out.message, c.reason);
      assert.ok(out.peakRssMb > 0 && out.peakRssMb < PEAK_RSS_BOUND_MB, `peak RSS ${out.peakRssMb.toFixed(0)} MB`);
    });
  }
});
