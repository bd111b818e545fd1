import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { parseBmpHeader } from '../../src/processing/image/bmp-header.js';
import { DEFAULT_IMAGE_OPTIONS, deriveImage, type DerivedImage, type ImageOptions } from '../../src/processing/image/derive-image.js';
import { exifHasGps } from '../../src/processing/image/exif-gps.js';
import { classifyImageError } from '../../src/processing/image/image-errors.js';
import { readImageHeader } from '../../src/processing/image/image-header.js';
import { bmpToPngArgs, heifConvertArgs, makeIntermediate } from '../../src/processing/image/intermediate.js';
import { PermanentJobError } from '../../src/shared/errors.js';
import { SAMPLES } from '../support/harness.js';
import { pngDeclaring } from './image-fixtures.js';
import { readManifest, samplesOfKind } from './media-manifest.js';

const OPTIONS: ImageOptions = { ...DEFAULT_IMAGE_OPTIONS, timeoutMs: 60_000 };

interface Size {
  width: number;
  height: number;
}

interface Case {
  file: string;
  format: string;
  /** As displayed. */
  size: Size;
  /** has_alpha as the decoder reports it (a GIF always has an alpha channel). */
  alpha?: boolean;
  /** Some pixels really are transparent: every output but the JPEG poster must keep them. */
  transparent?: boolean;
  frames?: number;
  orientation?: number;
  exif?: boolean;
  gps?: boolean;
}

/** The size an image of `size` gets when fitted inside a `box` square, never enlarged. */
function fitted(size: Size, box: number): Size {
  const scale = Math.min(1, box / Math.max(size.width, size.height));
  return { width: Math.round(size.width * scale), height: Math.round(size.height * scale) };
}

async function sha256(file: string): Promise<string> {
  return createHash('sha256')
    .update(await fs.readFile(file))
    .digest('hex');
}

/** Everything under `dir`, as relative paths. */
async function listTree(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<PermanentJobError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof PermanentJobError, `a PermanentJobError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected a PermanentJobError ${code}`);
}

describe('image derivation (real sharp, heif-convert and ffmpeg)', () => {
  let tmp: string;
  let made: string;
  let n = 0;
  /** A fresh parent folder holding only the work folder, so anything written beside it shows. */
  const freshWork = async () => {
    const parent = path.join(tmp, `case-${++n}`);
    await fs.mkdir(parent);
    return { parent, work: path.join(parent, 'work') };
  };

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-image-'));
    made = path.join(tmp, 'made');
    await fs.mkdir(made);
    // A BMP (ffmpeg writes it; sharp cannot) and an AVIF, both from the TIFF sample.
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-i',
      path.join(SAMPLES, 'tiff-photo-725x489.tif'),
      '-frames:v',
      '1',
      '-pix_fmt',
      'bgr24',
      '-y',
      path.join(made, 'photo-725x489.bmp'),
    ]);
    await sharp(path.join(SAMPLES, 'tiff-photo-725x489.tif')).avif({ effort: 0 }).toFile(path.join(made, 'photo-725x489.avif'));
    // An animated WebP from the GIF sample (44 frames x 90 ms).
    await sharp(path.join(SAMPLES, 'animated-gif-earth-400x400.gif'), { animated: true })
      .webp({ effort: 0 })
      .toFile(path.join(made, 'earth-animated-400x400.webp'));
    // 4 frames of 120x80 (90 ms each): a red square moving over a transparent background.
    const frame = { width: 120, height: 80 };
    const frames = 4;
    const rgba = Buffer.alloc(frame.width * frame.height * frames * 4);
    for (let f = 0; f < frames; f++) {
      for (let y = 20; y < 60; y++) {
        for (let x = 10 + f * 20; x < 50 + f * 20; x++) rgba.set([255, 0, 0, 255], ((f * frame.height + y) * frame.width + x) * 4);
      }
    }
    const strip = () => sharp(rgba, { raw: { width: frame.width, height: frame.height * frames, channels: 4, pageHeight: frame.height } });
    await strip()
      .gif({ delay: Array(frames).fill(90), loop: 0 })
      .toFile(path.join(made, 'transparent-animated-120x80.gif'));
    await strip()
      .webp({ delay: Array(frames).fill(90), loop: 0, lossless: true })
      .toFile(path.join(made, 'transparent-animated-120x80.webp'));
    // Stored 300x200, left half red, right half blue; EXIF orientation 6 (turn 90° clockwise to
    // display), so upright it is 200x300 with red on top; with a GPS position.
    const left = { r: 255, g: 0, b: 0 };
    const right = { r: 0, g: 0, b: 255 };
    const half = (c: typeof left) =>
      sharp({ create: { width: 150, height: 200, channels: 3, background: c } })
        .png()
        .toBuffer();
    await sharp({ create: { width: 300, height: 200, channels: 3, background: left } })
      .composite([{ input: await half(right), left: 150, top: 0 }])
      .jpeg({ quality: 95 })
      .withExif({
        IFD0: { Make: 'Qasar', Model: 'Test' },
        IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '48/1 51/1 24/1', GPSLongitudeRef: 'E', GPSLongitude: '2/1 21/1 8/1' },
      })
      .withMetadata({ orientation: 6 })
      .toFile(path.join(made, 'gps-orientation6-300x200.jpg'));
  });
  after(() => fs.rm(tmp, { recursive: true, force: true }));

  const CASES: Case[] = [
    { file: 'jpeg-exif-orientation6-1512x2016.jpg', format: 'jpeg', size: { width: 2016, height: 1512 }, orientation: 6, exif: true },
    { file: 'heic-iphone7-4032x3024.heic', format: 'heif', size: { width: 4032, height: 3024 }, exif: true },
    { file: 'png-rgba-alpha-2048x1536.png', format: 'png', size: { width: 2048, height: 1536 }, alpha: true, transparent: true },
    { file: 'webp-photo-600x315.webp', format: 'webp', size: { width: 600, height: 315 }, exif: true },
    { file: 'tiff-photo-725x489.tif', format: 'tiff', size: { width: 725, height: 489 } },
    { file: 'animated-gif-earth-400x400.gif', format: 'gif', size: { width: 400, height: 400 }, alpha: true, frames: 44 },
    { file: 'made/earth-animated-400x400.webp', format: 'webp', size: { width: 400, height: 400 }, alpha: true, frames: 44 },
    { file: 'made/transparent-animated-120x80.gif', format: 'gif', size: { width: 120, height: 80 }, alpha: true, transparent: true, frames: 4 },
    { file: 'made/transparent-animated-120x80.webp', format: 'webp', size: { width: 120, height: 80 }, alpha: true, transparent: true, frames: 4 },
    { file: 'made/photo-725x489.bmp', format: 'bmp', size: { width: 725, height: 489 } },
    { file: 'made/photo-725x489.avif', format: 'avif', size: { width: 725, height: 489 } },
    { file: 'made/gps-orientation6-300x200.jpg', format: 'jpeg', size: { width: 200, height: 300 }, orientation: 6, exif: true, gps: true },
  ];
  const GIANT = 'jpeg-giant-20000x14000.jpg';

  it('every image sample of MANIFEST.tsv is derived or refused here, at the stored size the manifest gives', () => {
    const fromSamples = CASES.filter((c) => !c.file.startsWith('made/'));
    assert.deepEqual([...fromSamples.map((c) => c.file), GIANT].sort(), samplesOfKind('image').sort());
    const manifest = readManifest();
    for (const c of fromSamples) {
      const row = manifest.find((r) => r.file === c.file)!;
      const quarter = (c.orientation ?? 1) >= 5;
      assert.deepEqual([row.width, row.height], quarter ? [c.size.height, c.size.width] : [c.size.width, c.size.height], c.file);
    }
  });

  const sourceOf = (file: string) => (file.startsWith('made/') ? path.join(made, file.slice(5)) : path.join(SAMPLES, file));

  for (const c of CASES) {
    it(`${path.basename(c.file)}: ${c.format}, ${c.size.width}x${c.size.height} upright in every output, no metadata`, async () => {
      const source = sourceOf(c.file);
      const before = await sha256(source);
      const { parent, work } = await freshWork();
      const result: DerivedImage = await deriveImage(source, work, OPTIONS);

      const f = result.facts;
      assert.equal(f.format, c.format);
      assert.deepEqual({ width: f.width, height: f.height }, c.size, 'facts as displayed');
      assert.equal(f.orientation, c.orientation ?? 1);
      const quarter = (c.orientation ?? 1) >= 5;
      assert.deepEqual({ width: f.stored_width, height: f.stored_height }, quarter ? { width: c.size.height, height: c.size.width } : c.size);
      assert.equal(f.has_alpha, c.alpha ?? false);
      assert.equal(f.animated, (c.frames ?? 1) > 1);
      assert.equal(f.frames, c.frames ?? 1);
      assert.equal(f.had_exif, c.exif ?? false);
      if (c.gps !== undefined) assert.equal(f.had_gps, c.gps);

      assert.deepEqual(result.files, {
        webp: 'webp/image.webp',
        thumbnail: 'thumbnails/thumb.webp',
        posterWebp: 'posters/poster.webp',
        posterJpeg: 'posters/poster.jpg',
      });
      assert.deepEqual(
        await listTree(work),
        ['posters/poster.jpg', 'posters/poster.webp', 'thumbnails/thumb.webp', 'webp/image.webp'],
        'only the derived files, no scratch left',
      );
      assert.deepEqual(await fs.readdir(parent), ['work'], 'nothing written beside the work folder');
      assert.equal(await sha256(source), before, 'the original is untouched');

      const expected: Record<string, { format: string; size: Size }> = {
        'webp/image.webp': { format: 'webp', size: c.size },
        'thumbnails/thumb.webp': { format: 'webp', size: fitted(c.size, 320) },
        'posters/poster.webp': { format: 'webp', size: fitted(c.size, 1280) },
        'posters/poster.jpg': { format: 'jpeg', size: fitted(c.size, 1280) },
      };
      for (const [rel, want] of Object.entries(expected)) {
        const file = path.join(work, rel);
        const m = await sharp(file, { animated: true }).metadata();
        assert.equal(m.format, want.format, rel);
        assert.deepEqual({ width: m.width, height: m.pageHeight ?? m.height }, want.size, `${rel} size`);
        assert.equal(m.exif, undefined, `${rel} carries no EXIF`);
        assert.equal(m.xmp, undefined, `${rel} carries no XMP`);
        assert.equal(m.orientation, undefined, `${rel} needs no orientation tag`);
        const animatedOutput = rel === 'webp/image.webp' && (c.frames ?? 1) > 1;
        assert.equal(m.pages ?? 1, animatedOutput ? c.frames : 1, `${rel} frames`);
        if (rel === 'posters/poster.jpg') assert.equal(m.hasAlpha, false, 'the JPEG poster is flattened');
        else if (c.transparent) assert.equal(m.hasAlpha, true, `${rel} keeps alpha`);
      }
      if (c.frames) {
        const m = await sharp(path.join(work, 'webp/image.webp'), { animated: true }).metadata();
        assert.equal(m.delay?.length, c.frames, 'frame delays kept');
        assert.ok(
          m.delay!.every((d) => d === 90),
          'each frame 90 ms as in the GIF',
        );
      }
      if (c.transparent) {
        // The top-left corner of every frame is transparent in these sources; so it stays, frame by frame.
        for (let page = 0; page < (c.frames ?? 1); page++) {
          const corner = await sharp(path.join(work, 'webp/image.webp'), { page })
            .ensureAlpha()
            .extract({ left: 0, top: 0, width: 1, height: 1 })
            .raw()
            .toBuffer();
          assert.equal(corner[3], 0, `frame ${page} of the WebP is transparent in its corner`);
        }
      }
    });
  }

  it('orientation turns the pixels, not only the size: red is on top of the upright image', async () => {
    const { work } = await freshWork();
    await deriveImage(sourceOf('made/gps-orientation6-300x200.jpg'), work, OPTIONS);
    for (const rel of ['webp/image.webp', 'thumbnails/thumb.webp', 'posters/poster.jpg']) {
      const { data, info } = await sharp(path.join(work, rel)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const at = (x: number, y: number) => [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)];
      const top = at(Math.floor(info.width / 2), Math.floor(info.height / 4));
      const bottom = at(Math.floor(info.width / 2), Math.floor((info.height * 3) / 4));
      assert.ok(top[0]! > 200 && top[2]! < 60, `${rel}: red on top, got ${top}`);
      assert.ok(bottom[2]! > 200 && bottom[0]! < 60, `${rel}: blue below, got ${bottom}`);
    }
  });

  it('the JPEG poster flattens transparency onto white; the WebP poster keeps it', async () => {
    const { work } = await freshWork();
    await deriveImage(path.join(SAMPLES, 'png-rgba-alpha-2048x1536.png'), work, OPTIONS);
    const corner = async (rel: string) => [...(await sharp(path.join(work, rel)).extract({ left: 0, top: 0, width: 1, height: 1 }).raw().toBuffer())];
    assert.deepEqual(
      (await sharp(path.join(SAMPLES, 'png-rgba-alpha-2048x1536.png')).extract({ left: 0, top: 0, width: 1, height: 1 }).raw().toBuffer())[3],
      0,
      'the sample corner is transparent',
    );
    assert.deepEqual(await corner('posters/poster.jpg'), [255, 255, 255]);
    assert.equal((await corner('posters/poster.webp'))[3], 0);
  });

  it('a WebP bigger than webpMaxSize is scaled down to it; disabled outputs are not made', async () => {
    const { work } = await freshWork();
    const result = await deriveImage(path.join(SAMPLES, 'png-rgba-alpha-2048x1536.png'), work, {
      ...OPTIONS,
      webpMaxSize: 1000,
      thumbnails: false,
      posters: false,
    });
    assert.deepEqual(result.files, { webp: 'webp/image.webp' });
    assert.deepEqual(await listTree(work), ['webp/image.webp']);
    const m = await sharp(path.join(work, 'webp/image.webp')).metadata();
    assert.deepEqual([m.width, m.height], [1000, 750]);
    assert.deepEqual([result.facts.width, result.facts.height], [2048, 1536], 'facts describe the original');
  });

  describe('refusals', () => {
    it('the 280-megapixel JPEG is too large, refused from its header', async () => {
      const { parent, work } = await freshWork();
      const err = await rejectsWith(deriveImage(path.join(SAMPLES, GIANT), work, OPTIONS), 'too-large');
      assert.match(err.message, /20000x14000/);
      assert.deepEqual(await listTree(parent), [], 'nothing written');
    });

    it('a PNG whose IHDR declares 100000x100000 is too large', async () => {
      const file = path.join(made, 'bomb-100000x100000.png');
      await fs.writeFile(file, pngDeclaring(100_000, 100_000));
      const m = await sharp(file, { limitInputPixels: false }).metadata();
      assert.deepEqual([m.format, m.width, m.height], ['png', 100_000, 100_000], 'the hand-made header is read as intended');
      const { parent, work } = await freshWork();
      await rejectsWith(deriveImage(file, work, OPTIONS), 'too-large');
      assert.deepEqual(await listTree(parent), []);
    });

    it('an animation counts every frame against the limit', async () => {
      const { work } = await freshWork();
      const err = await rejectsWith(
        deriveImage(path.join(SAMPLES, 'animated-gif-earth-400x400.gif'), work, { ...OPTIONS, maxPixels: 400 * 400 * 40 }),
        'too-large',
      );
      assert.match(err.message, /44 frames/);
    });

    it('a BMP over the limit is refused before ffmpeg runs', async () => {
      const { parent, work } = await freshWork();
      await rejectsWith(deriveImage(sourceOf('made/photo-725x489.bmp'), work, { ...OPTIONS, maxPixels: 725 * 489 - 1 }), 'too-large');
      assert.deepEqual(await listTree(parent), []);
    });

    const broken: Array<{ name: string; make: () => Promise<Buffer> }> = [
      {
        name: 'a JPEG whose header is followed by garbage',
        make: async () => {
          const jpeg = await fs.readFile(path.join(SAMPLES, 'jpeg-exif-orientation6-1512x2016.jpg'));
          const garbage = Buffer.alloc(200_000);
          for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919) % 251;
          return Buffer.concat([jpeg.subarray(0, 40_000), garbage]);
        },
      },
      { name: 'a truncated JPEG', make: async () => (await fs.readFile(path.join(SAMPLES, 'jpeg-exif-orientation6-1512x2016.jpg'))).subarray(0, 300_000) },
      { name: 'a truncated HEIC', make: async () => (await fs.readFile(path.join(SAMPLES, 'heic-iphone7-4032x3024.heic'))).subarray(0, 400_000) },
      { name: 'a truncated BMP', make: async () => (await fs.readFile(sourceOf('made/photo-725x489.bmp'))).subarray(0, 5_000) },
      { name: 'a text file', make: async () => Buffer.from('this is not an image\n'.repeat(50)) },
      { name: 'an empty file', make: async () => Buffer.alloc(0) },
      {
        name: 'an SVG (not an accepted format)',
        make: async () => Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'),
      },
    ];
    for (const b of broken) {
      it(`${b.name} is unreadable-media`, async () => {
        const file = path.join(made, `broken-${b.name.replace(/\W+/g, '-')}`);
        await fs.writeFile(file, await b.make());
        const { parent, work } = await freshWork();
        const err = await rejectsWith(deriveImage(file, work, OPTIONS), 'unreadable-media');
        assert.match(err.message, /image|decode/);
        assert.ok(!(await listTree(parent)).some((p) => !p.startsWith('work/')), 'nothing outside the work folder');
        assert.ok(!(await listTree(parent)).some((p) => p.includes('.decode-')), 'no scratch left');
      });
    }

    it('running out of time is a timeout', async () => {
      const { parent, work } = await freshWork();
      // A 12-megapixel HEVC decode cannot finish within 1 ms.
      await rejectsWith(deriveImage(path.join(SAMPLES, 'heic-iphone7-4032x3024.heic'), work, { ...OPTIONS, timeoutMs: 1 }), 'timeout');
      assert.ok(!(await listTree(parent)).some((p) => p.includes('.decode-')), 'no scratch left');
    });

    it('heif-convert killed at its time limit is a timeout', async () => {
      const source = path.join(SAMPLES, 'heic-iphone7-4032x3024.heic');
      const header = await readImageHeader(source);
      assert.equal(header.decoder, 'heif-convert');
      const { work } = await freshWork();
      await rejectsWith(makeIntermediate(header, source, work, { timeoutMs: 1, totalTimeoutMs: 1, maxPixels: OPTIONS.maxPixels }), 'timeout');
    });
  });

  describe('pure parts', () => {
    it('machine faults stay retryable; sharp timeouts and pixel limits are permanent', () => {
      const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      for (const e of [
        enospc,
        new Error('VipsForeignSave: unable to open "x.webp" for writing'),
        new Error('Too many open files'),
        new Error('Cannot allocate memory'),
      ]) {
        assert.ok(!(classifyImageError(e, 1000) instanceof PermanentJobError), e.message);
      }
      assert.equal((classifyImageError(new Error('timeout: 37% complete'), 1000) as PermanentJobError).code, 'timeout');
      assert.equal((classifyImageError(new Error('Input image exceeds pixel limit'), 1000) as PermanentJobError).code, 'too-large');
      assert.equal((classifyImageError(new Error('VipsJpeg: Premature end of input file'), 1000) as PermanentJobError).code, 'unreadable-media');
    });

    it('the BMP conversion opens one file with one demuxer', () => {
      const args = bmpToPngArgs('/in/a.bmp', '/out/decoded.png', 100_000_000);
      const input = args.indexOf('-i');
      const before = args.slice(0, input);
      assert.deepEqual(before.slice(before.indexOf('-protocol_whitelist'), before.indexOf('-protocol_whitelist') + 2), ['-protocol_whitelist', 'file']);
      assert.deepEqual(before.slice(before.indexOf('-format_whitelist'), before.indexOf('-format_whitelist') + 2), ['-format_whitelist', 'bmp_pipe']);
      assert.deepEqual(before.slice(before.indexOf('-f'), before.indexOf('-f') + 2), ['-f', 'bmp_pipe']);
      assert.deepEqual(before.slice(before.indexOf('-max_pixels'), before.indexOf('-max_pixels') + 2), ['-max_pixels', '100000000']);
      assert.equal(args[input + 1], 'file:/in/a.bmp');
      assert.equal(args.at(-1), 'file:/out/decoded.png');
      assert.deepEqual(heifConvertArgs('/in/a.heic', '/out/decoded.jpg'), ['--quiet', '-q', '92', '/in/a.heic', '/out/decoded.jpg']);
    });

    it('BMP headers: bottom-up, top-down and not a BMP', () => {
      const head = Buffer.alloc(30);
      head.write('BM', 0, 'latin1');
      head.writeUInt32LE(40, 14);
      head.writeInt32LE(640, 18);
      head.writeInt32LE(-480, 22);
      head.writeUInt16LE(32, 28);
      assert.deepEqual(parseBmpHeader(head), { width: 640, height: 480, bitsPerPixel: 32 });
      head.writeInt32LE(480, 22);
      assert.deepEqual(parseBmpHeader(head), { width: 640, height: 480, bitsPerPixel: 32 });
      assert.equal(parseBmpHeader(Buffer.from('GIF89a'.padEnd(30, '\0'))), undefined);
    });

    it('EXIF without a GPS directory has no GPS', async () => {
      const { exif } = await sharp(path.join(SAMPLES, 'jpeg-exif-orientation6-1512x2016.jpg')).metadata();
      assert.ok(exif);
      assert.equal(exifHasGps(exif), false);
      assert.equal(exifHasGps((await sharp(sourceOf('made/gps-orientation6-300x200.jpg')).metadata()).exif), true);
    });
  });
});
