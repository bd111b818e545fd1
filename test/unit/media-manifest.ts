import { readFileSync } from 'node:fs';
import path from 'node:path';
import { SAMPLES } from '../support/harness.js';

/** One row of the samples' MANIFEST.tsv (the columns the tests use). */
export interface SampleRow {
  file: string;
  kind: string;
  container: string;
  codecs: string;
  width: number | null;
  height: number | null;
  duration: number | null;
}

/** Every row of ../shared/media-samples/MANIFEST.tsv. */
export function readManifest(): SampleRow[] {
  const [header, ...lines] = readFileSync(path.join(SAMPLES, 'MANIFEST.tsv'), 'utf8')
    .split('\n')
    .filter((l) => l.trim());
  const cols = header!.split('\t');
  const at = (cells: string[], name: string) => {
    const i = cols.indexOf(name);
    if (i < 0) throw new Error(`MANIFEST.tsv has no ${name} column`);
    return cells[i] ?? '';
  };
  const numOrNull = (s: string) => (s.trim() === '' ? null : Number(s));
  return lines.map((line) => {
    const cells = line.split('\t');
    return {
      file: at(cells, 'file'),
      kind: at(cells, 'kind'),
      container: at(cells, 'container'),
      codecs: at(cells, 'codecs'),
      width: numOrNull(at(cells, 'width')),
      height: numOrNull(at(cells, 'height')),
      duration: numOrNull(at(cells, 'duration_s')),
    };
  });
}

/** The files of one kind (audio, image, document…) in the manifest. */
export function samplesOfKind(kind: string): string[] {
  return readManifest()
    .filter((r) => r.kind === kind)
    .map((r) => r.file);
}

/** Codec, sample rate and channels of a row's audio stream, from a codecs cell like `mp3 22050Hz 1ch,mjpeg(cover 256x256)`. */
export function audioStreamOf(row: SampleRow): { codec: string; sampleRate: number; channels: number } {
  for (const part of row.codecs.split(',')) {
    const m = /^(\S+) (\d+)Hz (\d+)ch$/.exec(part.trim());
    if (m) return { codec: m[1]!, sampleRate: Number(m[2]), channels: Number(m[3]) };
  }
  throw new Error(`${row.file}: no audio stream in MANIFEST.tsv codecs "${row.codecs}"`);
}
