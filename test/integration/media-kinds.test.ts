import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import type { MediaToProcess } from '../../src/processing/media-to-process.js';
import { runAudioStep } from '../../src/processing/steps/audio-step.js';
import { runDocumentStep } from '../../src/processing/steps/document-step.js';
import { runImageStep } from '../../src/processing/steps/image-step.js';
import { PermanentJobError } from '../../src/shared/errors.js';
import { listFiles, SAMPLES, startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';
import { pngDeclaring } from '../unit/image-fixtures.js';
import { chapterBombEpub } from '../unit/zip-fixtures.js';

interface Upload {
  name: string;
  data: Buffer;
  id?: string;
}

describe('audio, images and documents through the worker', () => {
  let t: TestApp;
  let tmp: string;
  const uploads = new Map<string, Upload>();
  const sample = (file: string) => fs.readFile(path.join(SAMPLES, file));

  async function media(id: string) {
    return (await t.app.inject({ url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey) })).json();
  }
  async function pkg(id: string) {
    const res = await t.app.inject({ url: `/api/v1/media/${id}/package`, headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 200, res.body);
    return res.json();
  }
  /** Fetches a signed URL of the package and returns its bytes and content type. */
  async function fetchSigned(url: string): Promise<{ body: Buffer; type: string }> {
    const res = await t.app.inject({ url: new URL(url).pathname });
    assert.equal(res.statusCode, 200, `${url}: ${res.body.slice(0, 200)}`);
    return { body: res.rawPayload, type: String(res.headers['content-type']) };
  }
  async function done(key: string) {
    const u = uploads.get(key)!;
    return media(u.id!);
  }

  before(async () => {
    t = await startTestApp({ ENABLE_WEBM: 'true', AUDIO_HLS_MIN_DURATION: '30s', IMAGE_MAX_PIXELS: '100000000' }, { worker: true });
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-kinds-'));
    const flac = await sample('flac-192khz-32bit-7s.flac');
    const jpeg = await sample('jpeg-exif-orientation6-1512x2016.jpg');
    const pdf = await sample('pdf-117-pages-geotopo.pdf');
    const tagged = path.join(tmp, 'tagged.mp3');
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-nostdin',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=330:duration=2',
      '-c:a',
      'libmp3lame',
      '-metadata',
      'title=Harbour at Dawn',
      '-metadata',
      'artist=The Qasar Trio',
      '-metadata',
      'album=Field Recordings',
      '-y',
      tagged,
    ]);
    const files: Upload[] = [
      { name: 'song.mp3', data: await sample('mp3-id3v2-cover-art-1s.mp3') },
      { name: 'whale.ogg', data: await sample('vorbis-humpback-whale-song.ogg') },
      { name: 'memo.m4a', data: await sample('m4a-aac-cover-art.m4a') },
      { name: 'hires.flac', data: flac },
      { name: 'tagged.mp3', data: await fs.readFile(tagged) },
      { name: 'photo.jpg', data: jpeg },
      { name: 'iphone.heic', data: await sample('heic-iphone7-4032x3024.heic') },
      { name: 'alpha.png', data: await sample('png-rgba-alpha-2048x1536.png') },
      { name: 'earth.gif', data: await sample('animated-gif-earth-400x400.gif') },
      { name: 'scan.tif', data: await sample('tiff-photo-725x489.tif') },
      { name: 'notes.pdf', data: await sample('pdf-117-pages-geotopo.pdf') },
      { name: 'book.epub', data: await sample('epub2-with-cover-dark-world.epub') },
      { name: 'readme.txt', data: Buffer.from('plain words, nothing to derive\n') },
      // Broken on purpose.
      { name: 'cut.flac', data: flac.subarray(0, Math.floor(flac.length * 0.4)) },
      { name: 'corrupt.jpg', data: Buffer.concat([jpeg.subarray(0, 2000), Buffer.alloc(50_000, 0x5a)]) },
      { name: 'bomb.png', data: pngDeclaring(100_000, 100_000) },
      { name: 'giant.jpg', data: await sample('jpeg-giant-20000x14000.jpg') },
      { name: 'fake.pdf', data: Buffer.from('this is not a PDF at all, just text named like one\n'.repeat(20)) },
      { name: 'cut.pdf', data: pdf.subarray(0, 4096) },
      { name: 'bomb.epub', data: await chapterBombEpub(200 * 1024 * 1024) },
    ];
    const client = new SessionClient(t.app, t.tenant.userKey);
    for (const f of files) {
      uploads.set(f.name, f);
      const { completed } = await client.uploadWhole(f.data, { filename: f.name, chunkSize: 256 * 1024 });
      assert.equal(completed.statusCode, 201, `${f.name}: ${completed.body}`);
      f.id = completed.json().id;
    }
    await waitFor(
      'every upload processed',
      async () => {
        for (const f of uploads.values()) {
          if (f.id && !['ready', 'error'].includes((await media(f.id)).status)) return false;
        }
        return true;
      },
      180_000,
    );
  });
  after(async () => {
    await t?.close();
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  describe('audio', () => {
    it('mp3 with cover art: Opus WebM, spectrogram poster, the cover offered, tags and facts recorded', async () => {
      const m = await done('song.mp3');
      assert.equal(m.status, 'ready', JSON.stringify(m));
      assert.equal(m.kind, 'audio');
      const fm = m.file_metadata;
      assert.equal(fm.audio.codec, 'mp3');
      assert.equal(fm.audio.sample_rate, 22050);
      assert.equal(fm.audio.channels, 1);
      assert.ok(fm.audio.bit_rate > 0);
      assert.equal(fm.audio.tags.title, 'image-encoding');
      assert.ok(Math.abs(fm.duration - 1.071) < 0.05);
      assert.equal(fm.artifacts.hls, undefined, 'a one-second file needs no streaming rendition');
      const p = await pkg(m.id);
      const webm = await fetchSigned(p.webm);
      assert.equal(webm.type, 'audio/webm');
      const file = path.join(tmp, 'song.webm');
      await fs.writeFile(file, webm.body);
      const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-of', 'json', '-show_streams', '-show_format', file], { encoding: 'utf8' }));
      assert.deepEqual(
        probe.streams.map((s: any) => s.codec_name),
        ['opus'],
      );
      const spectrogram = await sharp((await fetchSigned(p.spectrogram)).body).metadata();
      assert.deepEqual([spectrogram.format, spectrogram.width, spectrogram.height], ['png', 1280, 480]);
      const poster = await sharp((await fetchSigned(p.poster.webp)).body).metadata();
      assert.equal(poster.format, 'webp');
      const cover = await sharp((await fetchSigned(p.cover.jpeg)).body).metadata();
      assert.deepEqual([cover.format, cover.width, cover.height], ['jpeg', 256, 256]);
      assert.equal(p.thumbnails.length, 1);
    });

    it('long audio also streams: an AAC HLS rendition in fMP4', async () => {
      const m = await done('whale.ogg');
      assert.equal(m.status, 'ready', JSON.stringify(m));
      assert.equal(m.file_metadata.audio.codec, 'vorbis');
      const p = await pkg(m.id);
      const master = await fetchSigned(p.hls);
      assert.equal(master.type, 'application/vnd.apple.mpegurl');
      const variant = master.body
        .toString()
        .split('\n')
        .find((l) => l.endsWith('.m3u8'))!;
      const playlist = (await fetchSigned(new URL(variant, p.hls).href)).body.toString();
      const total = [...playlist.matchAll(/#EXTINF:([\d.]+)/g)].reduce((n, x) => n + Number(x[1]), 0);
      assert.ok(Math.abs(total - 64.8) < 0.3, `${total} s in the playlist`);
      const seg = playlist.split('\n').find((l) => l.endsWith('.m4s'))!;
      const segment = await fetchSigned(new URL(seg, new URL(variant, p.hls)).href);
      assert.equal(segment.type, 'video/mp4');
    });

    it('high-resolution FLAC and AAC with two covers are packaged', async () => {
      const flac = await done('hires.flac');
      assert.equal(flac.status, 'ready', JSON.stringify(flac));
      assert.deepEqual([flac.file_metadata.audio.codec, flac.file_metadata.audio.sample_rate, flac.file_metadata.audio.channels], ['flac', 192000, 2]);
      assert.equal(flac.file_metadata.title, 'Test 192khz 32bits');
      assert.equal(flac.file_metadata.artist, 'Antonio Larrosa');
      assert.equal(flac.file_metadata.album, undefined, 'no album tag, no album');
      const m4a = await done('memo.m4a');
      assert.equal(m4a.status, 'ready', JSON.stringify(m4a));
      assert.deepEqual([m4a.file_metadata.audio.codec, m4a.file_metadata.audio.sample_rate, m4a.file_metadata.audio.channels], ['aac', 8000, 1]);
      assert.equal(m4a.file_metadata.audio.has_cover, true);
      assert.equal(m4a.file_metadata.artist, 'test1');
      assert.equal(m4a.file_metadata.title, undefined);
    });

    it('title, artist and album tags are recorded in file_metadata', async () => {
      const m = await done('tagged.mp3');
      assert.equal(m.status, 'ready', JSON.stringify(m));
      const fm = m.file_metadata;
      assert.deepEqual([fm.title, fm.artist, fm.album], ['Harbour at Dawn', 'The Qasar Trio', 'Field Recordings']);
      assert.deepEqual(fm.audio.tags, { title: 'Harbour at Dawn', artist: 'The Qasar Trio', album: 'Field Recordings' });
    });

    it('a truncated FLAC ends in error with the reason; nothing of it is published', async () => {
      const m = await done('cut.flac');
      assert.equal(m.status, 'error');
      assert.equal(m.error.code, 'truncated-media');
      assert.match(m.error.reason, /truncated/);
      const files = await listFiles(t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: m.id }));
      assert.deepEqual(
        files.filter((f) => !f.startsWith('media/')),
        [],
        `only the original is kept: ${files}`,
      );
    });
  });

  describe('images', () => {
    it('a phone photo with EXIF orientation 6 becomes upright WebP, thumbnail and poster without EXIF', async () => {
      const m = await done('photo.jpg');
      assert.equal(m.status, 'ready', JSON.stringify(m));
      assert.equal(m.kind, 'image');
      assert.deepEqual([m.file_metadata.width, m.file_metadata.height], [2016, 1512]);
      const p = await pkg(m.id);
      const full = await sharp((await fetchSigned(p.webp)).body).metadata();
      assert.deepEqual([full.format, full.width, full.height, full.exif], ['webp', 2016, 1512, undefined]);
      const thumb = await sharp((await fetchSigned(p.thumbnails[0])).body).metadata();
      assert.ok(thumb.width! > thumb.height!, 'the thumbnail is landscape, as displayed');
      assert.equal(thumb.exif, undefined);
      const poster = await sharp((await fetchSigned(p.poster.jpeg)).body).metadata();
      assert.ok(poster.format === 'jpeg' && poster.width! > poster.height! && poster.exif === undefined);
      const original = await fs.readFile(path.join(t.ctx.layout.root, m.file_metadata.original.path));
      assert.deepEqual(original, uploads.get('photo.jpg')!.data, 'the original is kept as uploaded');
    });

    it('HEIC from an iPhone, PNG with alpha, animated GIF and TIFF', async () => {
      const heic = await done('iphone.heic');
      assert.equal(heic.status, 'ready', JSON.stringify(heic));
      assert.deepEqual([heic.file_metadata.width, heic.file_metadata.height], [4032, 3024]);
      const png = await done('alpha.png');
      assert.equal(png.status, 'ready', JSON.stringify(png));
      const pngWebp = await sharp((await fetchSigned((await pkg(png.id)).webp)).body).metadata();
      assert.equal(pngWebp.hasAlpha, true, 'alpha is kept');
      const gif = await done('earth.gif');
      assert.equal(gif.status, 'ready', JSON.stringify(gif));
      const gifWebp = await sharp((await fetchSigned((await pkg(gif.id)).webp)).body, { pages: -1 }).metadata();
      assert.equal(gifWebp.pages, 44, 'still animated');
      const tif = await done('scan.tif');
      assert.equal(tif.status, 'ready', JSON.stringify(tif));
      assert.deepEqual([tif.file_metadata.width, tif.file_metadata.height], [725, 489]);
    });

    it('a corrupt JPEG, a declared 100000x100000 PNG and a 280-megapixel JPEG end in error with clear reasons', async () => {
      const corrupt = await done('corrupt.jpg');
      assert.equal(corrupt.status, 'error');
      assert.equal(corrupt.error.code, 'unreadable-media', corrupt.error.reason);
      assert.match(corrupt.error.reason, /^the (file is not a readable image|image could not be decoded): \S/);
      for (const name of ['bomb.png', 'giant.jpg']) {
        const m = await done(name);
        assert.equal(m.status, 'error', name);
        assert.equal(m.error.code, 'too-large', `${name}: ${m.error.reason}`);
        assert.match(m.error.reason, /pixels/);
      }
    });
  });

  describe('documents', () => {
    it('a 117-page PDF gets its first page as poster and thumbnail, and its page count', async () => {
      const m = await done('notes.pdf');
      assert.equal(m.status, 'ready', JSON.stringify(m));
      assert.equal(m.kind, 'document');
      assert.equal(m.file_metadata.pages, 117);
      assert.ok(m.file_metadata.document.text_chars > 100_000, 'its text layer is read');
      assert.equal(m.file_metadata.document.text_truncated, false);
      const p = await pkg(m.id);
      const poster = await sharp((await fetchSigned(p.poster.webp)).body).metadata();
      assert.ok(poster.height! > poster.width!, 'an A4 page is portrait');
      assert.ok(Math.abs(poster.height! / poster.width! - 841.89 / 595.276) < 0.02);
      assert.equal(p.thumbnails.length, 1);
    });

    it('an EPUB gets its cover, title and author', async () => {
      const m = await done('book.epub');
      assert.equal(m.status, 'ready', JSON.stringify(m));
      assert.equal(m.file_metadata.document.title, 'The Dark World');
      assert.match(m.file_metadata.document.author, /Kuttner/);
      assert.equal(m.file_metadata.document.cover_source, 'manifest-cover', 'its own cover, not a drawn one');
      assert.ok(m.file_metadata.document.text_chars > 200_000, 'its chapters are read');
      const poster = await sharp((await fetchSigned((await pkg(m.id)).poster.jpeg)).body).metadata();
      assert.equal(poster.format, 'jpeg');
    });

    it('a damaged PDF (the sample cut to its first 4 KB) ends in error with the reason; only the original is kept', async () => {
      const m = await done('cut.pdf');
      assert.equal(m.kind, 'document', 'it starts with %PDF, so it is taken for one');
      assert.equal(m.status, 'error');
      assert.equal(m.error.code, 'unreadable-media', m.error.reason);
      assert.match(m.error.reason, /PDF|pdfinfo/i);
      const files = await listFiles(t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: m.id }));
      assert.deepEqual(
        files.filter((f) => !f.startsWith('media/')),
        [],
        `only the original is kept: ${files}`,
      );
    });

    it('a zip-bomb EPUB (a chapter of 200 MB of zeros) ends in error as too large; only the original is kept', async () => {
      const m = await done('bomb.epub');
      assert.equal(m.kind, 'document');
      assert.equal(m.status, 'error');
      assert.equal(m.error.code, 'too-large', m.error.reason);
      assert.match(m.error.reason, /chapter1\.xhtml in the EPUB is compressed over 200:1 \(a zip bomb\?\)/);
      const files = await listFiles(t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: m.id }));
      assert.deepEqual(
        files.filter((f) => !f.startsWith('media/')),
        [],
        `only the original is kept: ${files}`,
      );
    });

    it('a file named .pdf that is not one is refused as unrecognized content', async () => {
      const m = await done('fake.pdf');
      assert.equal(m.status, 'error');
      assert.equal(m.error.code, 'unrecognized-content');
    });
  });

  describe('processing again with outputs turned off (as after a restart with new settings)', () => {
    const db = () => t.ctx.database.db;
    const publishes = (step: string) => t.ctx.worker.pipeline.step(step)!.publishes;
    async function row(key: string): Promise<MediaToProcess> {
      return db()
        .selectFrom('mediaassets')
        .select(['id', 'tenant_id', 'user_id', 'kind', 'status'])
        .where('id', '=', uploads.get(key)!.id!)
        .executeTakeFirstOrThrow();
    }
    const folders = async (id: string) => {
      const files = await listFiles(t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: id }));
      return [...new Set(files.map((f) => f.split('/')[0]))].sort();
    };

    it('an image without WebP drops its old webp/ folder and keeps the rest', async () => {
      const media = await row('photo.jpg');
      assert.deepEqual(await folders(media.id), ['media', 'posters', 'thumbnails', 'webp']);
      await runImageStep(
        { db: db(), store: t.ctx.store, layout: t.ctx.layout, changes: t.ctx.changes, settings: { ...t.ctx.settings, enableWebp: false } },
        media,
        publishes('image'),
      );
      assert.deepEqual(await folders(media.id), ['media', 'posters', 'thumbnails']);
      const m = await done('photo.jpg');
      assert.equal(m.file_metadata.artifacts.webp, undefined);
      const p = await pkg(m.id);
      assert.equal(p.webp, null, 'the package offers no WebP');
      assert.equal((await sharp((await fetchSigned(p.poster.jpeg)).body).metadata()).format, 'jpeg', 'the poster is still served');
    });

    it('audio with every output off drops webm/, hls/, posters/ and thumbnails/, and keeps its facts', async () => {
      const media = await row('whale.ogg');
      assert.deepEqual(await folders(media.id), ['hls', 'media', 'posters', 'thumbnails', 'webm']);
      const off = { ...t.ctx.settings, enableWebm: false, enableHls: false, enablePosters: false, enableThumbnails: false };
      await runAudioStep({ db: db(), store: t.ctx.store, layout: t.ctx.layout, changes: t.ctx.changes, settings: off }, media, publishes('audio'));
      assert.deepEqual(await folders(media.id), ['media']);
      const m = await done('whale.ogg');
      assert.deepEqual(m.file_metadata.artifacts, {});
      assert.equal(m.file_metadata.audio.codec, 'vorbis');
      assert.ok(Math.abs(m.file_metadata.duration - 64.809) < 0.05);
    });

    it('a document without posters drops its old posters/ folder and keeps the thumbnail', async () => {
      const media = await row('book.epub');
      assert.deepEqual(await folders(media.id), ['media', 'posters', 'thumbnails']);
      await runDocumentStep(
        { db: db(), store: t.ctx.store, layout: t.ctx.layout, changes: t.ctx.changes, settings: { ...t.ctx.settings, enablePosters: false } },
        media,
        publishes('document'),
      );
      assert.deepEqual(await folders(media.id), ['media', 'thumbnails']);
      const m = await done('book.epub');
      assert.equal(m.file_metadata.artifacts.poster, undefined);
      assert.equal(m.file_metadata.artifacts.thumbnails.length, 1);
      assert.equal(m.file_metadata.document.title, 'The Dark World');
    });

    it('a truncated FLAC still fails as truncated with every output off: it is decoded all the same', async () => {
      const media = await row('cut.flac');
      const off = { ...t.ctx.settings, enableWebm: false, enableHls: false, enablePosters: false, enableThumbnails: false };
      await assert.rejects(
        runAudioStep({ db: db(), store: t.ctx.store, layout: t.ctx.layout, changes: t.ctx.changes, settings: off }, media, publishes('audio')),
        (err: unknown) => {
          assert.ok(err instanceof PermanentJobError, String(err));
          assert.equal(err.code, 'truncated-media');
          return true;
        },
      );
      assert.deepEqual(await folders(media.id), ['media']);
    });
  });

  it('a file with nothing to derive is ready at once with its size and detected type', async () => {
    const m = await done('readme.txt');
    assert.equal(m.status, 'ready');
    assert.equal(m.kind, 'other');
    assert.equal(m.mime_type, 'text/plain');
    assert.equal(m.size, uploads.get('readme.txt')!.data.length);
  });

  it('the worker stayed up through every broken file: a new upload is processed after them', async () => {
    const client = new SessionClient(t.app, t.tenant.userKey);
    const { completed } = await client.uploadWhole(await sample('wav-pcm16-48khz-mono-8s.wav'), { filename: 'after.wav' });
    const id = completed.json().id;
    const m = await waitFor(
      'processed after the broken ones',
      async () => {
        const x = await media(id);
        return ['ready', 'error'].includes(x.status) ? x : undefined;
      },
      60_000,
    );
    assert.equal(m.status, 'ready', JSON.stringify(m));
  });
});
