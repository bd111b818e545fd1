import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';

/*
 * A Matroska file that lies about its length: its frames run to 1800 s, while its Segment
 * Duration and its DURATION tag are overwritten in place to say `declaredSeconds`.
 */

const SEGMENT = 0x18538067;
const INFO = 0x1549a966;
const TIMESTAMP_SCALE = 0x2ad7b1;
const DURATION = 0x4489;
const TAGS = 0x1254c367;
const TAG = 0x7373;
const SIMPLE_TAG = 0x67c8;
const TAG_NAME = 0x45a3;
const TAG_STRING = 0x4487;

interface Element {
  id: number;
  /** Where the payload starts and ends. */
  start: number;
  end: number;
}

function readVint(buf: Buffer, pos: number, keepMarker: boolean): { value: number; length: number; unknown: boolean } {
  const first = buf[pos]!;
  let length = 1;
  while (length <= 8 && !(first & (0x80 >> (length - 1)))) length++;
  if (length > 8) throw new Error(`bad EBML length at ${pos}`);
  let value = keepMarker ? first : first & (0xff >> length);
  let allOnes = value === 0xff >> length;
  for (let i = 1; i < length; i++) {
    value = value * 256 + buf[pos + i]!;
    if (buf[pos + i] !== 0xff) allOnes = false;
  }
  return { value, length, unknown: !keepMarker && allOnes };
}

function* children(buf: Buffer, start: number, end: number): Generator<Element> {
  let pos = start;
  while (pos < end) {
    const id = readVint(buf, pos, true);
    const size = readVint(buf, pos + id.length, false);
    const payload = pos + id.length + size.length;
    const stop = size.unknown ? end : Math.min(end, payload + size.value);
    yield { id: id.value, start: payload, end: stop };
    pos = stop;
  }
}

function find(buf: Buffer, parent: { start: number; end: number }, id: number): Element[] {
  return [...children(buf, parent.start, parent.end)].filter((e) => e.id === id);
}

/** hh:mm:ss.nnnnnnnnn, as ffmpeg writes the DURATION tag. */
function durationTag(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${s.toFixed(9).padStart(12, '0')}`;
}

/**
 * Overwrites, in place, the Segment Info Duration (a float in TimestampScale units) and every
 * DURATION SimpleTag (a string, padded with NULs to its old size) to say `seconds`.
 */
export function patchMkvDuration(buf: Buffer, seconds: number): Buffer {
  const out = Buffer.from(buf);
  const segment = find(out, { start: 0, end: out.length }, SEGMENT)[0];
  if (!segment) throw new Error('no Matroska Segment');
  let patched = 0;
  for (const info of find(out, segment, INFO)) {
    const scaleEl = find(out, info, TIMESTAMP_SCALE)[0];
    const scale = scaleEl ? out.readUIntBE(scaleEl.start, scaleEl.end - scaleEl.start) : 1_000_000;
    for (const d of find(out, info, DURATION)) {
      const units = (seconds * 1e9) / scale;
      if (d.end - d.start === 8) out.writeDoubleBE(units, d.start);
      else if (d.end - d.start === 4) out.writeFloatBE(units, d.start);
      else throw new Error('a Duration that is not a 4- or 8-byte float');
      patched++;
    }
  }
  for (const tags of find(out, segment, TAGS)) {
    for (const tag of find(out, tags, TAG)) {
      for (const simple of find(out, tag, SIMPLE_TAG)) {
        const name = find(out, simple, TAG_NAME)[0];
        const value = find(out, simple, TAG_STRING)[0];
        if (!name || !value || out.toString('utf8', name.start, name.end) !== 'DURATION') continue;
        const text = Buffer.from(durationTag(seconds));
        if (text.length > value.end - value.start) throw new Error('the DURATION tag has no room for the new value');
        out.fill(0, value.start, value.end);
        text.copy(out, value.start);
        patched++;
      }
    }
  }
  if (patched < 2) throw new Error(`expected a Segment Duration and a DURATION tag, patched ${patched}`);
  return out;
}

/**
 * The attack's file: six 1080p frames, five 10 ms apart and the sixth at 1800 s, H.264 in
 * Matroska (about 2 KB), then declared to last `declaredSeconds`.
 */
export async function makeLyingMkv(file: string, declaredSeconds = 10): Promise<void> {
  execFileSync('ffmpeg', [
    '-v',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    'color=s=1920x1080:r=100',
    '-frames:v',
    '6',
    '-vf',
    "setpts='if(lt(N,5),N*0.01/TB,1800/TB)'",
    '-fps_mode',
    'passthrough',
    '-c:v',
    'libx264',
    file,
  ]);
  await fs.writeFile(file, patchMkvDuration(await fs.readFile(file), declaredSeconds));
}
