import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { XMLParser } from 'fast-xml-parser';
import { CaptionFormatError, parseCaptions } from '../../src/media/captions-format.js';
import { canonicalLanguage } from '../../src/media/captions-service.js';
import { parseMpd } from '../../src/processing/video/hls-from-mpd.js';
import { expectProblem, listFiles, SAMPLES, startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

const SRT = [
  '1',
  '00:00:01,000 --> 00:00:03,500',
  'Hello <i>there</i>, <font color="#ff0000">friend</font> & co',
  '',
  '2',
  '00:00:04,000 --> 00:00:06,000 X1:100 X2:200 Y1:10 Y2:50',
  '{\\an8}Up top',
  'a <weird> tag -->',
  '',
  '3',
  '00:00:07,250 --> 00:00:09,000',
  'Last line',
  '',
].join('\r\n');

const VTT = [
  'WEBVTT',
  '',
  'NOTE made by hand',
  '',
  'intro',
  '00:01.000 --> 00:03.000 line:90%',
  'Bonjour <b>à tous</b>',
  '',
  '00:00:05.000 --> 00:00:08.000',
  'Au revoir',
  '',
].join('\n');

const utf8 = (s: string) => Buffer.from(s, 'utf8');

function problemsOf(text: string | Buffer): CaptionFormatError {
  try {
    parseCaptions(typeof text === 'string' ? utf8(text) : text);
  } catch (err) {
    if (err instanceof CaptionFormatError) return err;
    throw err;
  }
  throw new Error('expected the file to be refused');
}

describe('SRT and WebVTT parsing', () => {
  it('converts SRT to WebVTT: dot timestamps, no numbers, b/i/u kept, font and ASS tags dropped, the rest escaped', () => {
    const p = parseCaptions(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8(SRT)]));
    assert.equal(p.format, 'srt');
    assert.equal(
      p.vtt,
      [
        'WEBVTT',
        '',
        '00:00:01.000 --> 00:00:03.500',
        'Hello <i>there</i>, friend &amp; co',
        '',
        '00:00:04.000 --> 00:00:06.000 line:0',
        'Up top',
        'a &lt;weird&gt; tag --&gt;',
        '',
        '00:00:07.250 --> 00:00:09.000',
        'Last line',
        '',
      ].join('\n'),
    );
    assert.equal(p.cues.length, 3);
    assert.deepEqual(
      p.cues.map((c) => [c.start, c.end]),
      [
        [1, 3.5],
        [4, 6],
        [7.25, 9],
      ],
    );
    assert.equal(p.plainText, 'Hello there, friend & co\nUp top a <weird> tag -->\nLast line');
  });

  it('keeps WebVTT as written (BOM stripped, line ends unified) and reads its cues', () => {
    const p = parseCaptions(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8(VTT.replace(/\n/g, '\r\n'))]));
    assert.equal(p.format, 'webvtt');
    assert.equal(p.vtt, VTT);
    assert.deepEqual(
      p.cues.map((c) => [c.start, c.end, c.lines.join('|')]),
      [
        [1, 3, 'Bonjour <b>à tous</b>'],
        [5, 8, 'Au revoir'],
      ],
    );
    assert.equal(p.plainText, 'Bonjour à tous\nAu revoir');
  });

  it('detects the format from the content: SRT without cue numbers is still SRT', () => {
    const p = parseCaptions(utf8('00:00:00,500 --> 00:00:01,000\nHi\n'));
    assert.equal(p.format, 'srt');
    assert.match(p.vtt, /^WEBVTT\n\n00:00:00\.500 --> 00:00:01\.000\nHi\n/);
  });

  it('refuses malformed cues, listing each with its line', () => {
    const bad = problemsOf(
      [
        '1',
        '00:00:01,000 --> 00:00:02,000',
        'ok',
        '',
        '2',
        '00:00:05,000 --> 00:00:04,000',
        'backwards',
        '',
        '3',
        '00:00:61,000 --> 00:01:00,000',
        'bad seconds',
        '',
        'x',
        'no timing',
        '',
      ].join('\n'),
    );
    assert.deepEqual(
      bad.problems.map((p) => p.line),
      [6, 10, 13],
    );
    assert.match(bad.problems[0]!.message, /ends .* before or when it starts/);
    assert.match(bad.problems[1]!.message, /not a valid timestamp/);
    assert.match(bad.message, /3 malformed cues; the first at line 6/);

    assert.deepEqual(
      problemsOf('1\n00:00:01,000 --> 00:00:02,000\n').problems.map((p) => p.line),
      [2],
      'a cue with no text',
    );
    assert.deepEqual(
      problemsOf('WEBVTT\n\n00:01.000 --> 00:02.000\nA\n00:03.000 --> 00:04.000\nB\n').problems.map((p) => p.line),
      [5],
      'a missing blank line',
    );
    assert.match(problemsOf('just some words\n').message, /neither WebVTT .* nor SRT/);
    assert.match(problemsOf(Buffer.from([0x31, 0x0a, 0xff, 0xfe])).message, /not valid UTF-8/);
    assert.match(problemsOf('WEBVTT\n\nNOTE nothing\n').message, /no cues/);
  });

  it('checks the shape of language tags and puts them in canonical case', () => {
    assert.equal(canonicalLanguage('en'), 'en');
    assert.equal(canonicalLanguage('EN-us'), 'en-US');
    assert.equal(canonicalLanguage('zh-hant-tw'), 'zh-Hant-TW');
    assert.equal(canonicalLanguage('es-419'), 'es-419');
    for (const bad of ['e', 'english!', 'en_US', '../x', 'en-', 'x'.repeat(40)]) assert.throws(() => canonicalLanguage(bad), /BCP 47/, bad);
  });
});

/** Uploads through the chunked API. */
async function upload(client: SessionClient, data: Buffer, filename: string): Promise<string> {
  const { completed } = await client.uploadWhole(data, { filename, chunkSize: 256 * 1024 });
  assert.equal(completed.statusCode, 201, completed.body);
  return completed.json().id;
}

const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (n) => ['Period', 'AdaptationSet', 'Representation'].includes(n) });

function textSets(mpd: string): Array<Record<string, any>> {
  const doc = xml.parse(mpd);
  return doc.MPD.Period.flatMap((p: { AdaptationSet: Array<Record<string, any>> }) => p.AdaptationSet).filter(
    (a: { contentType: string }) => a.contentType === 'text',
  );
}

/** #EXT-X-MEDIA attribute lists of the SUBTITLES group, parsed. */
function subtitleMedia(master: string): Array<Record<string, string>> {
  return master
    .split('\n')
    .filter((l) => l.startsWith('#EXT-X-MEDIA:') && l.includes('TYPE=SUBTITLES'))
    .map((l) => Object.fromEntries([...l.slice(13).matchAll(/([A-Z-]+)=("[^"]*"|[^,]*)/g)].map((m) => [m[1]!, m[2]!.replace(/^"|"$/g, '')])));
}

describe('caption tracks through the API', () => {
  let t: TestApp;
  let client: SessionClient;
  let videoId: string;
  let dir: string;
  const captions = (id: string, lang: string, body: string | Buffer, opts: { key?: string; type?: string; query?: string } = {}) =>
    t.app.inject({
      method: 'PUT',
      url: `/api/v1/media/${id}/captions/${lang}${opts.query ? `?${opts.query}` : ''}`,
      headers: { ...t.auth(opts.key ?? t.tenant.userKey), 'content-type': opts.type ?? 'application/x-subrip' },
      payload: body,
    });
  const file = (rel: string) => fs.readFile(path.join(dir, rel), 'utf8');
  const media = async (id: string) => (await t.app.inject({ url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey) })).json();

  before(async () => {
    t = await startTestApp({ CAPTION_MAX_SIZE: '64KiB' }, { worker: true });
    client = new SessionClient(t.app, t.tenant.userKey);
    videoId = await upload(client, await fs.readFile(path.join(SAMPLES, 'h264-640x272-noaudio-bikes.mp4')), 'bikes.mp4');
    const m = await waitFor(
      'video ready',
      async () => {
        const x = await media(videoId);
        return ['ready', 'error'].includes(x.status) && x;
      },
      60_000,
    );
    assert.equal(m.status, 'ready', JSON.stringify(m.error));
    dir = t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: videoId });
  });
  after(() => t.close());

  it('stores an SRT track as WebVTT and a WebVTT track as sent', async () => {
    const en = await captions(videoId, 'en', SRT);
    assert.equal(en.statusCode, 201, en.body);
    assert.deepEqual(
      { ...(en.json() as object), created_at: undefined, updated_at: undefined },
      {
        language: 'en',
        label: 'English',
        kind: 'subtitles',
        source: 'user',
        cue_count: 3,
        url: `/api/v1/media/${videoId}/files/transcripts/en.vtt`,
        created_at: undefined,
        updated_at: undefined,
      },
    );
    assert.equal(await file('transcripts/en.vtt'), parseCaptions(utf8(SRT)).vtt);

    const fr = await captions(videoId, 'FR-ca', VTT, { type: 'text/vtt; charset=utf-8', query: 'label=Fran%C3%A7ais&kind=captions' });
    assert.equal(fr.statusCode, 201, fr.body);
    assert.equal(fr.json().language, 'fr-CA');
    assert.equal(fr.json().label, 'Français');
    assert.equal(fr.json().kind, 'captions');
    assert.equal(await file('transcripts/fr-CA.vtt'), VTT);

    // Replacing a language answers 200 and keeps one track.
    const again = await captions(videoId, 'en', SRT.replace('Last line', 'Final line'), { type: 'text/plain' });
    assert.equal(again.statusCode, 200, again.body);
    assert.match(await file('transcripts/en.vtt'), /Final line/);

    const list = await t.app.inject({ url: `/api/v1/media/${videoId}/captions`, headers: t.auth(t.tenant.userKey) });
    assert.deepEqual(
      list.json().items.map((x: { language: string }) => x.language),
      ['en', 'fr-CA'],
    );
    const row = await t.ctx.database.db
      .selectFrom('caption_tracks')
      .selectAll()
      .where('media_id', '=', videoId)
      .where('language', '=', 'en')
      .executeTakeFirstOrThrow();
    assert.equal(row.text, 'Hello there, friend & co\nUp top a <weird> tag -->\nFinal line');
    assert.equal(row.tenant_id, t.tenant.id);
    const rec = await media(videoId);
    assert.deepEqual(
      rec.caption_tracks.map((x: { language: string }) => x.language),
      ['en', 'fr-CA'],
    );
    const served = await t.app.inject({ url: rec.caption_tracks[0].url, headers: t.auth(t.tenant.userKey) });
    assert.equal(served.statusCode, 200);
    assert.equal(served.headers['content-type'], 'text/vtt; charset=utf-8');
  });

  it('offers the tracks in the HLS master, its subtitle playlists, the DASH manifest and the package', async () => {
    const master = await file('hls/master.m3u8');
    const subs = subtitleMedia(master);
    assert.deepEqual(
      subs.map((s) => [s.GROUP_ID ?? s['GROUP-ID'], s.LANGUAGE, s.NAME, s.URI]),
      [
        ['subs', 'en', 'English', 'subs_en.m3u8'],
        ['subs', 'fr-CA', 'Français', 'subs_fr-CA.m3u8'],
      ],
    );
    assert.match(subs[1]!.CHARACTERISTICS!, /transcribes-spoken-dialog/);
    const variants = master.split('\n').filter((l) => l.startsWith('#EXT-X-STREAM-INF:'));
    assert.ok(variants.length >= 1);
    for (const v of variants) assert.match(v, /,SUBTITLES="subs"/);

    const playlist = await file('hls/subs_en.m3u8');
    const lines = playlist.trim().split('\n');
    assert.equal(lines[0], '#EXTM3U');
    assert.ok(lines.includes('#EXT-X-PLAYLIST-TYPE:VOD') && lines.at(-1) === '#EXT-X-ENDLIST');
    const extinf = lines.find((l) => l.startsWith('#EXTINF:'))!;
    assert.ok(Math.abs(Number(/#EXTINF:([\d.]+)/.exec(extinf)![1]) - 10) < 0.2, extinf);
    assert.equal(lines[lines.indexOf(extinf) + 1], '../transcripts/en.vtt');

    const mpd = await file('dash/manifest.mpd');
    const sets = textSets(mpd);
    assert.deepEqual(
      sets.map((s) => [s.lang, s.mimeType, s.Representation[0].BaseURL, s.Role.value, s.Label]),
      [
        ['en', 'text/vtt', '../transcripts/en.vtt', 'subtitle', 'English'],
        ['fr-CA', 'text/vtt', '../transcripts/fr-CA.vtt', 'caption', 'Français'],
      ],
    );
    assert.ok(
      parseMpd(mpd).some((r) => r.contentType === 'video'),
      'the video representations are intact',
    );

    const pkg = (await t.app.inject({ url: `/api/v1/media/${videoId}/package`, headers: t.auth(t.tenant.userKey) })).json();
    assert.deepEqual(
      pkg.captions.map((c: { language: string; kind: string }) => [c.language, c.kind]),
      [
        ['en', 'subtitles'],
        ['fr-CA', 'captions'],
      ],
    );
    // The signed URLs serve the files, and the relative URIs of the playlists resolve under the token.
    const vtt = await t.app.inject({ url: new URL(pkg.captions[0].url).pathname });
    assert.equal(vtt.statusCode, 200);
    assert.match(vtt.body, /^WEBVTT/);
    const subsPlaylist = new URL('subs_en.m3u8', pkg.hls);
    const viaMaster = new URL('../transcripts/en.vtt', subsPlaylist);
    assert.equal((await t.app.inject({ url: viaMaster.pathname })).body, vtt.body);
  });

  it('keeps the tracks across a reprocess', async () => {
    const res = await t.app.inject({ method: 'POST', url: `/api/v1/media/${videoId}/reprocess`, headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 202, res.body);
    expectProblem(await captions(videoId, 'de', SRT), 409, 'conflict');
    const m = await waitFor(
      'ready again',
      async () => {
        const x = await media(videoId);
        return ['ready', 'error'].includes(x.status) && x.status_history.length > 3 && x;
      },
      60_000,
    );
    assert.equal(m.status, 'ready');
    assert.deepEqual(
      subtitleMedia(await file('hls/master.m3u8')).map((s) => s.LANGUAGE),
      ['en', 'fr-CA'],
    );
    assert.deepEqual(
      textSets(await file('dash/manifest.mpd')).map((s) => s.lang),
      ['en', 'fr-CA'],
    );
    assert.match(await file('hls/subs_fr-CA.m3u8'), /\.\.\/transcripts\/fr-CA\.vtt/);
    assert.match(await file('transcripts/en.vtt'), /Final line/);
  });

  it('removes a track from the files, the manifests and the list', async () => {
    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${videoId}/captions/fr-ca`, headers: t.auth(t.tenant.userKey) });
    assert.equal(del.statusCode, 204, del.body);
    const files = await listFiles(dir);
    assert.ok(!files.includes('transcripts/fr-CA.vtt') && !files.includes('hls/subs_fr-CA.m3u8'), files.join(' '));
    assert.deepEqual(
      subtitleMedia(await file('hls/master.m3u8')).map((s) => s.LANGUAGE),
      ['en'],
    );
    assert.deepEqual(
      textSets(await file('dash/manifest.mpd')).map((s) => s.lang),
      ['en'],
    );
    expectProblem(
      await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${videoId}/captions/fr-CA`, headers: t.auth(t.tenant.userKey) }),
      404,
      'not-found',
    );
  });

  it('refuses bad files and bad requests with a problem and writes nothing', async () => {
    const before = await listFiles(dir);
    const masterBefore = await file('hls/master.m3u8');
    const bad = await captions(videoId, 'de', '1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:03,000 -> 00:00:04,000\nbroken arrow\n');
    const body = expectProblem(bad, 422, 'invalid-captions');
    assert.deepEqual(body.errors, [{ line: 6, message: 'expected a timing line "start --> end", got "00:00:03,000 -> 00:00:04,000"' }]);
    expectProblem(await captions(videoId, 'de', Buffer.from([0xff, 0xfe, 0x00, 0x31])), 422, 'invalid-captions');
    expectProblem(await captions(videoId, 'not_a_language', SRT), 400, 'validation-failed');
    expectProblem(await captions(videoId, 'de', SRT, { query: 'kind=karaoke' }), 400, 'validation-failed');
    expectProblem(await captions(videoId, 'de', SRT, { type: 'image/png' }), 415, 'unsupported-media-type');
    const big = `${Array.from({ length: 2000 }, (_v, i) => `${i + 1}\n00:00:01,000 --> 00:00:02,000\n${'x'.repeat(30)}\n`).join('\n')}`;
    assert.ok(big.length > 64 * 1024);
    expectProblem(await captions(videoId, 'de', big), 413, 'payload-too-large');
    assert.deepEqual(await listFiles(dir), before);
    assert.equal(await file('hls/master.m3u8'), masterBefore);
  });

  it('lets only the owner or an admin change tracks, only on ready video; another tenant gets 404', async () => {
    const bob = (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' })).key;
    expectProblem(await captions(videoId, 'de', SRT, { key: bob }), 403, 'forbidden');
    assert.equal((await t.app.inject({ url: `/api/v1/media/${videoId}/captions`, headers: t.auth(bob) })).statusCode, 200);
    const asAdmin = await captions(videoId, 'de', SRT, { key: t.tenant.adminKey });
    assert.equal(asAdmin.statusCode, 201, asAdmin.body);

    for (const key of [t.other.adminKey, t.other.userKey]) {
      expectProblem(await captions(videoId, 'es', SRT, { key }), 404, 'not-found');
      expectProblem(await t.app.inject({ url: `/api/v1/media/${videoId}/captions`, headers: t.auth(key) }), 404, 'not-found');
      expectProblem(await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${videoId}/captions/de`, headers: t.auth(key) }), 404, 'not-found');
    }
    const pkg = await t.app.inject({ url: `/api/v1/media/${videoId}/package`, headers: t.auth(t.other.adminKey) });
    expectProblem(pkg, 404, 'not-found');
    assert.ok(!(await listFiles(dir)).includes('transcripts/es.vtt'));

    const other = await upload(client, randomBytes(2048), 'blob.bin');
    expectProblem(await captions(other, 'en', SRT), 409, 'conflict');
  });
});
