/**
 * Raw 16 kHz mono float32 little-endian sound files (ffmpeg -ac 1 -ar 16000 -f f32le), read in parts:
 * the speech methods never hold a whole file in memory.
 */
import fs from 'node:fs';
import { BadInput } from './inputs.js';
import { BYTES_PER_SAMPLE, SAMPLE_RATE } from './speech-windows.js';

const NOT_PCM = 'The sound could not be read as 16 kHz mono 32-bit float PCM.';

export class PcmFile {
  private constructor(
    private readonly fd: number,
    /** Number of samples. */
    readonly samples: number,
  ) {}

  static open(file: string): PcmFile {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      throw new BadInput(NOT_PCM, String(err));
    }
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size % BYTES_PER_SAMPLE !== 0) {
      fs.closeSync(fd);
      throw new BadInput(NOT_PCM, st.isFile() ? `${st.size} bytes is not a whole number of float32 samples` : 'not a regular file');
    }
    return new PcmFile(fd, st.size / BYTES_PER_SAMPLE);
  }

  get duration(): number {
    return this.samples / SAMPLE_RATE;
  }

  /** Samples [from, to) (clamped to the file), copied into a new array; NaN and infinities become 0. */
  read(from: number, to: number): Float32Array {
    const start = Math.max(0, Math.min(this.samples, Math.floor(from)));
    const end = Math.max(start, Math.min(this.samples, Math.floor(to)));
    const out = new Float32Array(end - start);
    const bytes = new Uint8Array(out.buffer);
    let done = 0;
    while (done < bytes.length) {
      const n = fs.readSync(this.fd, bytes, done, bytes.length - done, start * BYTES_PER_SAMPLE + done);
      if (n === 0) throw new BadInput(NOT_PCM, 'the file got shorter while it was read');
      done += n;
    }
    for (let i = 0; i < out.length; i++) if (!Number.isFinite(out[i]!)) out[i] = 0;
    return out;
  }

  /** The samples between two times (seconds). */
  readSeconds(start: number, end: number): Float32Array {
    return this.read(Math.round(start * SAMPLE_RATE), Math.round(end * SAMPLE_RATE));
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
