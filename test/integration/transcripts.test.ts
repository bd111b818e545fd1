import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';
import { photo, wordErrorRate } from '../support/model-fixtures.js';

const API = '/api/v1';
const SPOKEN = 'Here is my new bike, parked next to the red car. Later we watched the horses running across the green field near the river.';

/** The words of a WebVTT file's cues. */
function vttText(vtt: string): string {
  return vtt
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('WEBVTT') && !l.includes('-->') && !/^\d+$/.test(l.trim()))
    .join(' ');
}

describe('transcripts and on-screen text by the local models', () => {
  let t: TestApp;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qasar-transcripts-'));
  const ff = (args: string[]) => execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args]);

  before(async () => {
    t = await startTestApp({ ENABLE_WORKER_LABELING: 'true', ENABLE_TRANSCRIPTS: 'true', ENABLE_WEBM: 'false' }, { worker: true });
  });
  after(async () => {
    await t.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const call = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
    t.app.inject({
      method,
      url: `${API}${url}`,
      headers: t.auth(t.tenant.adminKey),
      ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}),
    });

  async function upload(file: string, extra: Record<string, unknown> = {}): Promise<string> {
    const { completed } = await new SessionClient(t.app, t.tenant.userKey).uploadWhole(fs.readFileSync(file), {
      filename: path.basename(file),
      chunkSize: 1024 * 1024,
      extra,
    });
    assert.equal(completed.statusCode, 201, completed.body);
    return completed.json().id;
  }

  /** Waits until the media is ready and both follow-ups are done; returns its record. */
  const settled = (id: string) =>
    waitFor(
      `media ${id} labeled and transcribed`,
      async () => {
        const r = (await call('GET', `/media/${id}`)).json();
        if (r.status === 'error') throw new Error(`media failed: ${JSON.stringify(r.error)}`);
        if (r.status !== 'ready' || r.pending.length) return undefined;
        return r;
      },
      300_000,
    );

  function speech(text: string, name: string): string {
    const wav = path.join(tmp, `${name}.wav`);
    execFileSync('espeak-ng', ['-v', 'en-us', '-s', '150', '-w', wav, text]);
    return wav;
  }

  it('reads burned-in words, transcribes the speech into a caption track, and finds a bank phrase in both', async () => {
    const bank = await call('POST', '/label-banks', { name: 'hobbies', entries: [{ name: 'Cycling', phrases: ['bike'] }] });
    assert.equal(bank.statusCode, 201, bank.body);
    const voice = speech(SPOKEN, 'voice');
    const video = path.join(tmp, 'story.mp4');
    const still = ['-loop', '1', '-t', '5', '-framerate', '25'];
    const text = (words: string) =>
      `drawtext=font='DejaVu Sans':text='${words}':fontsize=56:fontcolor=white:box=1:boxcolor=black@0.8:boxborderw=12:x=(w-tw)/2:y=h-th-40`;
    const fit = 'scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2,setsar=1';
    ff([
      ...[...still, '-i', photo('dog.jpg'), ...still, '-i', photo('horses.jpg'), '-i', voice],
      ...['-filter_complex', `[0]${fit},${text('BIKE SHOP OPEN TODAY')}[a];[1]${fit},${text('HORSE RIDING LESSONS')}[b];[a][b]concat=n=2:v=1[v];[2]apad[s]`],
      ...['-map', '[v]', '-map', '[s]', '-t', '10', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', video],
    ]);
    const id = await upload(video);
    const record = await settled(id);
    assert.equal(record.labeling.state, 'done');
    assert.equal(record.moderation_state, 'none');

    const { items } = (await call('GET', `/media/${id}/labels`)).json();
    const of = (name: string, source: string) => items.find((l: any) => l.name === name && l.source === source);
    const dog = of('Dog', 'model');
    const horse = of('Horse', 'model');
    assert.ok(dog && horse, `dog and horse among ${items.map((l: any) => `${l.name}/${l.source}`).join(', ')}`);
    assert.ok(
      dog.last_timestamp < 5 && horse.first_timestamp >= 4.9,
      `dog ${dog.first_timestamp}-${dog.last_timestamp}, horse ${horse.first_timestamp}-${horse.last_timestamp}`,
    );

    assert.ok(of('Cycling', 'model'), 'the detected bicycle matches Cycling by meaning');
    // On-screen text: read, searchable, and the bank phrase found in it while it was on screen.
    const ocr = of('Cycling', 'ocr');
    assert.ok(ocr, `"bike" read on screen matches Cycling: ${items.map((l: any) => `${l.name}/${l.source}`).join(', ')}`);
    assert.ok(
      ocr.frames.every((f: any) => f.t < 5),
      'at the times the words were on screen',
    );
    const found = (await call('GET', '/search?q=lessons')).json();
    assert.ok(
      found.items.some((m: any) => m.id === id),
      'a burned-in word is found by search',
    );

    // Speech: an automatic caption track, in the manifests, close to what was said.
    const tracks = (await call('GET', `/media/${id}/captions`)).json();
    const track = tracks.items.find((c: any) => c.language === 'en');
    assert.ok(track, JSON.stringify(tracks));
    assert.equal(track.source, 'auto');
    assert.equal(track.kind, 'captions');
    const trackUrl = new URL(track.url, 'http://localhost');
    const vtt = (await t.app.inject({ url: trackUrl.pathname + trackUrl.search, headers: t.auth(t.tenant.adminKey) })).body;
    assert.match(vtt, /^WEBVTT/);
    const wer = wordErrorRate(SPOKEN, vttText(vtt));
    console.log(`# transcript word error rate: ${(wer * 100).toFixed(1)} % ("${vttText(vtt)}")`);
    assert.ok(wer < 0.15, `word error rate ${(wer * 100).toFixed(1)} %`);
    assert.ok(of('Cycling', 'transcript'), 'the spoken "bike" matches Cycling');
    const pkg = (await call('GET', `/media/${id}/package`)).json();
    const master = await (await t.app.inject({ url: new URL(pkg.hls).pathname + new URL(pkg.hls).search })).body;
    assert.match(master, /TYPE=SUBTITLES.*LANGUAGE="en"/);
    assert.ok(
      (await call('GET', '/search?q=river')).json().items.some((m: any) => m.id === id),
      'the spoken words are searchable',
    );
    assert.equal(record.file_metadata.transcript.state, 'done');

    // An uploaded track of the language replaces the automatic one for good, file and all.
    const mine = 'WEBVTT\n\n00:00:00.000 --> 00:00:04.000\nMy own words\n';
    const put = await t.app.inject({
      method: 'PUT',
      url: `${API}/media/${id}/captions/en?kind=captions`,
      headers: { ...t.auth(t.tenant.adminKey), 'content-type': 'text/vtt' },
      payload: mine,
    });
    assert.equal(put.statusCode, 200, put.body);
    assert.equal(put.json().source, 'user');
    const mineUrl = new URL(put.json().url, 'http://localhost');
    assert.match((await t.app.inject({ url: mineUrl.pathname + mineUrl.search, headers: t.auth(t.tenant.adminKey) })).body, /My own words/);
    const autoGone = await t.app.inject({ url: trackUrl.pathname + trackUrl.search, headers: t.auth(t.tenant.adminKey) });
    assert.equal(autoGone.statusCode, 404, 'the automatic file went with its track');
  });

  it('transcribes audio with speech, and makes up nothing for silence or music', async () => {
    const spoken = path.join(tmp, 'spoken.m4a');
    ff(['-i', speech(SPOKEN, 'audio'), '-af', 'apad=pad_dur=2', '-c:a', 'aac', spoken]);
    const silence = path.join(tmp, 'silence.m4a');
    ff(['-f', 'lavfi', '-i', 'anullsrc=r=44100:cl=stereo', '-t', '20', '-c:a', 'aac', silence]);
    const music = path.join(tmp, 'music.m4a');
    ff([
      ...['-f', 'lavfi', '-i', "aevalsrc='0.2*sin(2*PI*220*t)+0.15*sin(2*PI*277*t)+0.12*sin(2*PI*330*t)*(1+sin(2*PI*2*t))/2':s=44100:d=20"],
      ...['-c:a', 'aac', music],
    ]);
    const ids = { spoken: await upload(spoken, { language: 'EN-gb' }), silence: await upload(silence), music: await upload(music) };
    for (const id of Object.values(ids)) await settled(id);
    const trackOf = async (id: string) => {
      return (await call('GET', `/media/${id}/captions`)).json().items as any[];
    };
    const spokenTracks = await trackOf(ids.spoken);
    assert.equal(spokenTracks.length, 1, 'speech gets a transcript');
    assert.equal(spokenTracks[0].source, 'auto');
    assert.equal(spokenTracks[0].language, 'en-GB', 'in the language the upload declared');
    const bad = await new SessionClient(t.app, t.tenant.userKey).create({ filename: 'x.m4a', total_size: 10, language: 'not a language' });
    assert.equal(bad.statusCode, 400, bad.body);
    for (const name of ['silence', 'music'] as const) {
      assert.deepEqual(await trackOf(ids[name]), [], `${name} gets no transcript`);
      const record = (await call('GET', `/media/${ids[name]}`)).json();
      assert.equal(record.file_metadata.transcript.state, 'done');
      assert.equal(record.file_metadata.transcript.cues, 0);
    }
  });
});
