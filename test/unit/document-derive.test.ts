import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { deriveEpub, derivePdf, type DerivedDocument, type DocumentOptions } from '../../src/processing/document/derive-document.js';
import { coverLine, DRAWN_AUTHOR_MAX, DRAWN_TITLE_MAX, escapeMarkup } from '../../src/processing/document/drawn-cover.js';
import { chooseCover, parseContainer, parseOpf, resolveHref, spineTextItems } from '../../src/processing/document/epub-package.js';
import { parsePdfInfo, pdfinfoArgs, pdftoppmArgs, pdftotextArgs, popplerFailure } from '../../src/processing/document/pdf-tools.js';
import { ToolFailure } from '../../src/tools/tool-failure.js';
import { PermanentJobError } from '../../src/shared/errors.js';
import { SAMPLES } from '../support/harness.js';
import { samplesOfKind } from './media-manifest.js';
import { textPdf } from './pdf-fixtures.js';
import { buildZip, chapterBombEpub, deflatedZeros, epubBook, xhtmlChapter, type ZipItem } from './zip-fixtures.js';

sharp.cache(false);

const OPTIONS: DocumentOptions = {
  thumbnails: true,
  posters: true,
  thumbnailSize: 320,
  posterSize: 1280,
  timeoutMs: 60_000,
  maxPixels: 100_000_000,
  epubMaxEntries: 10_000,
  epubMaxEntryBytes: 50 * 1024 * 1024,
  epubMaxTotalBytes: 2 * 1024 ** 3,
  epubMaxRatio: 200,
  textMaxChars: 1_000_000,
};

const CONTAINER = `<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>`;

function opf(manifest: string, extraMeta = '', padding = ''): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="id">urn:uuid:0f0e0d0c-0b0a-4000-8000-000000000001</dc:identifier>
    <dc:title>Made &amp; Tested</dc:title>
    <dc:creator>Ada Lovelace</dc:creator>
    <dc:creator>Charles Babbage</dc:creator>
    <dc:language>fr</dc:language>
    <dc:publisher>Qasar Press</dc:publisher>
    ${extraMeta}
  </metadata>${padding}
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    ${manifest}
  </manifest>
  <spine><itemref idref="nav"/></spine>
</package>`;
}

function epub(opfText: string, files: ZipItem[] = [], container = CONTAINER): Buffer {
  return buildZip([
    { name: 'mimetype', data: 'application/epub+zip', store: true },
    { name: 'META-INF/container.xml', data: container },
    { name: 'OEBPS/content.opf', data: opfText },
    { name: 'OEBPS/nav.xhtml', data: '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>Hi</p></body></html>' },
    ...files,
  ]);
}

function solid(width: number, height: number, background: string, format: 'png' | 'jpeg'): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background } })
    [format]()
    .toBuffer();
}

// ---- a PDF encrypted by hand: Standard security handler, revision 2 (RC4, 40-bit key) ----

const PDF_PAD = Buffer.from('28bf4e5e4e758a4164004e56fffa01082e2e00b6d0683e802f0ca9fe6453697a', 'hex');

function rc4(key: Buffer, data: Buffer): Buffer {
  const s = Array.from({ length: 256 }, (_, i) => i);
  for (let i = 0, j = 0; i < 256; i++) {
    j = (j + s[i]! + key[i % key.length]!) & 255;
    [s[i], s[j]] = [s[j]!, s[i]!];
  }
  const out = Buffer.alloc(data.length);
  for (let n = 0, i = 0, j = 0; n < data.length; n++) {
    i = (i + 1) & 255;
    j = (j + s[i]!) & 255;
    [s[i], s[j]] = [s[j]!, s[i]!];
    out[n] = data[n]! ^ s[(s[i]! + s[j]!) & 255]!;
  }
  return out;
}

const md5 = (...parts: Buffer[]) => createHash('md5').update(Buffer.concat(parts)).digest();
const padded = (password: string) => Buffer.concat([Buffer.from(password, 'latin1'), PDF_PAD]).subarray(0, 32);

/** A one-page 200x100 pt PDF filled blue, its content stream RC4-encrypted for `userPassword`. */
function encryptedPdf(userPassword: string): Buffer {
  const id = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const permissions = -44;
  const o = rc4(md5(padded('owner-secret')).subarray(0, 5), padded(userPassword));
  const p = Buffer.alloc(4);
  p.writeInt32LE(permissions);
  const key = md5(padded(userPassword), o, p, id).subarray(0, 5);
  const u = rc4(key, PDF_PAD);
  const objectKey = md5(key, Buffer.from([4, 0, 0, 0, 0])).subarray(0, 10);
  const content = rc4(objectKey, Buffer.from('0 0 1 rg 0 0 200 100 re f\n', 'latin1'));
  const objects: Buffer[] = [
    Buffer.from('<< /Type /Catalog /Pages 2 0 R >>'),
    Buffer.from('<< /Type /Pages /Kids [3 0 R] /Count 1 >>'),
    Buffer.from('<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R /Resources << >> >>'),
    Buffer.concat([Buffer.from(`<< /Length ${content.length} >>\nstream\n`), content, Buffer.from('\nendstream')]),
    Buffer.from(`<< /Filter /Standard /V 1 /R 2 /O <${o.toString('hex')}> /U <${u.toString('hex')}> /P ${permissions} >>`),
  ];
  const chunks: Buffer[] = [Buffer.from('%PDF-1.4\n')];
  let length = chunks[0]!.length;
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(length);
    const obj = Buffer.concat([Buffer.from(`${i + 1} 0 obj\n`), body, Buffer.from('\nendobj\n')]);
    chunks.push(obj);
    length += obj.length;
  });
  const xref = [`xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`, ...offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`)].join('');
  const trailer = `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R /Encrypt 5 0 R /ID [<${id.toString('hex')}> <${id.toString('hex')}>] >>\nstartxref\n${length}\n%%EOF\n`;
  return Buffer.concat([...chunks, Buffer.from(xref + trailer)]);
}

// ---- checks ----

type PictureMetadata = Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;

async function decoded(file: string): Promise<PictureMetadata> {
  const meta = await sharp(file).metadata();
  await sharp(file).raw().toBuffer(); // every pixel decodes
  return meta;
}

async function meanColour(file: string): Promise<[number, number, number]> {
  const { channels } = await sharp(file).stats();
  return [channels[0]!.mean, channels[1]!.mean, channels[2]!.mean];
}

async function listTree(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

/** The document samples of MANIFEST.tsv, each with its own tests below. */
const PDF_SAMPLE = path.join(SAMPLES, 'pdf-117-pages-geotopo.pdf');
const EPUB_SAMPLE = path.join(SAMPLES, 'epub2-with-cover-dark-world.epub');

describe('document derivation (real poppler, sharp and zips)', () => {
  it('every document sample of MANIFEST.tsv has its tests here', () => {
    assert.deepEqual([PDF_SAMPLE, EPUB_SAMPLE].map((f) => path.basename(f)).sort(), samplesOfKind('document').sort());
  });

  let tmp: string;
  let count = 0;
  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-document-'));
    await fs.mkdir(path.join(tmp, 'src'));
  });
  after(() => fs.rm(tmp, { recursive: true, force: true }));

  /** A fresh case folder whose only child is the work folder; the source lives elsewhere. */
  async function workDir(): Promise<{ caseDir: string; work: string }> {
    const caseDir = path.join(tmp, `case-${++count}`);
    const work = path.join(caseDir, 'work');
    await fs.mkdir(work, { recursive: true });
    return { caseDir, work };
  }

  async function source(name: string, bytes: Buffer | string): Promise<string> {
    const file = path.join(tmp, 'src', name);
    await fs.writeFile(file, bytes);
    return file;
  }

  /** Runs a derivation that must fail permanently with `code`, and leaves nothing behind. */
  async function refused(
    derive: typeof derivePdf,
    file: string,
    code: string,
    opts: Partial<DocumentOptions> = {},
    message?: RegExp,
  ): Promise<PermanentJobError> {
    const { caseDir, work } = await workDir();
    let refusal: PermanentJobError | undefined;
    await assert.rejects(derive(file, work, { ...OPTIONS, ...opts }), (err: unknown) => {
      assert.ok(err instanceof PermanentJobError, `a PermanentJobError, got ${String(err)}`);
      assert.equal(err.code, code, err.message);
      if (message) assert.match(err.message, message);
      refusal = err;
      return true;
    });
    assert.deepEqual(await fs.readdir(caseDir), ['work']);
    assert.deepEqual(await listTree(work), []);
    return refusal!;
  }

  describe('PDF', () => {
    it('the 117-page A4 sample: facts, A4 poster (JPEG + WebP) and thumbnail', async () => {
      const { caseDir, work } = await workDir();
      const result = await derivePdf(PDF_SAMPLE, work, OPTIONS);
      assert.equal(result.facts.format, 'pdf');
      assert.equal(result.facts.pages, 117);
      assert.equal(result.facts.title, 'Geometrie und Topologie');
      assert.equal(result.facts.author, 'Martin Thoma');
      assert.equal(result.facts.encrypted, false);
      assert.equal(result.facts.cover_source, 'first-page');
      assert.ok(Math.abs(result.facts.page_width_pt! - 595.276) < 1 && Math.abs(result.facts.page_height_pt! - 841.89) < 1);
      assert.deepEqual(result.files, { posterWebp: 'posters/poster.webp', posterJpeg: 'posters/poster.jpg', thumbnail: 'thumbnails/thumb.webp' });
      assert.deepEqual(await listTree(work), ['posters/poster.jpg', 'posters/poster.webp', 'thumbnails/thumb.webp'], 'the render scratch is gone');
      assert.deepEqual(await fs.readdir(caseDir), ['work']);

      for (const [file, format] of [
        ['posters/poster.jpg', 'jpeg'],
        ['posters/poster.webp', 'webp'],
      ] as const) {
        const m = await decoded(path.join(work, file));
        assert.equal(m.format, format);
        assert.equal(m.height, 1280, 'the longest side is the poster size');
        assert.ok(Math.abs(m.height! / m.width! - Math.SQRT2) < 0.01, `portrait A4 aspect, got ${m.width}x${m.height}`);
        const [r, g, b] = await meanColour(path.join(work, file));
        assert.ok(r > 200 && g > 200 && b > 200, 'a page of text on white');
        const { channels } = await sharp(path.join(work, file)).stats();
        assert.ok(channels[0]!.min < 80, 'with dark print on it');
      }
      const t = await decoded(path.join(work, 'thumbnails/thumb.webp'));
      assert.equal(t.format, 'webp');
      assert.equal(Math.max(t.width!, t.height!), 320);
    });

    it('only a thumbnail when posters are off, and no render at all when both are off', async () => {
      const a = await workDir();
      const thumbOnly = await derivePdf(PDF_SAMPLE, a.work, { ...OPTIONS, posters: false, thumbnailSize: 200 });
      assert.deepEqual(thumbOnly.files, { thumbnail: 'thumbnails/thumb.webp' });
      const m = await sharp(path.join(a.work, 'thumbnails/thumb.webp')).metadata();
      assert.equal(m.height, 200);
      const b = await workDir();
      const none = await derivePdf(PDF_SAMPLE, b.work, { ...OPTIONS, posters: false, thumbnails: false });
      assert.equal(none.facts.pages, 117);
      assert.equal(none.facts.cover_source, undefined);
      assert.deepEqual(await listTree(b.work), []);
    });

    it('an encrypted PDF with an empty user password opens: encrypted, first page rendered (blue, 2:1)', async () => {
      const file = await source('open-encrypted.pdf', encryptedPdf(''));
      const { work } = await workDir();
      const result = await derivePdf(file, work, OPTIONS);
      assert.equal(result.facts.encrypted, true);
      assert.equal(result.facts.pages, 1);
      const m = await decoded(path.join(work, 'posters/poster.jpg'));
      assert.equal(m.width, 1280);
      assert.equal(m.height, 640);
      const [r, g, b] = await meanColour(path.join(work, 'posters/poster.webp'));
      assert.ok(b > 200 && r < 40 && g < 40, `the decrypted content draws blue, got ${r},${g},${b}`);
    });

    it('an encrypted PDF that needs a password is unreadable-media', async () => {
      await refused(derivePdf, await source('locked.pdf', encryptedPdf('s3cret')), 'unreadable-media', {}, /password/);
    });

    it('a file that is not a PDF, and an empty one, are unreadable-media', async () => {
      await refused(derivePdf, await source('not.pdf', 'Just some text, not a PDF at all.\n'.repeat(50)), 'unreadable-media');
      await refused(derivePdf, await source('empty.pdf', ''), 'unreadable-media');
    });

    it('a PDF cut after its first 4 KB is unreadable-media', async () => {
      const whole = await fs.readFile(PDF_SAMPLE);
      await refused(derivePdf, await source('cut.pdf', whole.subarray(0, 4096)), 'unreadable-media');
    });

    it('a tool run past its time limit is a timeout', async () => {
      await refused(derivePdf, PDF_SAMPLE, 'timeout', { timeoutMs: 1 });
    });

    it('a PDF made here: its title, author and text layer (words that are only drawn on its pages)', async () => {
      const file = await source(
        'text-layer.pdf',
        textPdf({
          title: 'Almanac of Brackish Tides',
          author: 'Oona Quillfeather',
          pages: [
            ['The first page speaks of tides.', 'A second line (with parentheses) and a backslash \\ too.'],
            ['Page two holds the word zymurgorrax, nowhere else.'],
          ],
        }),
      );
      const { work } = await workDir();
      const result = await derivePdf(file, work, OPTIONS);
      assert.equal(result.facts.pages, 2);
      assert.equal(result.facts.title, 'Almanac of Brackish Tides');
      assert.equal(result.facts.author, 'Oona Quillfeather');
      assert.equal(
        result.text,
        'The first page speaks of tides.\nA second line (with parentheses) and a backslash \\ too.\n\nPage two holds the word zymurgorrax, nowhere else.',
      );
      assert.equal(result.facts.text_chars, result.text!.length);
      assert.equal(result.facts.text_truncated, false);
      assert.equal(result.facts.text_error, undefined);
      assert.deepEqual(await listTree(work), ['posters/poster.jpg', 'posters/poster.webp', 'thumbnails/thumb.webp'], 'no text file is left in the work folder');
    });

    it("the 117-page sample's text layer: whole by default, cut at the limit (never inside a word) and marked so, none when off", async () => {
      const whole = await derivePdf(PDF_SAMPLE, (await workDir()).work, { ...OPTIONS, posters: false, thumbnails: false });
      assert.ok(whole.text!.length > 100_000, `${whole.text!.length} characters`);
      assert.match(whole.text!, /Geometrie und Topologie/);
      assert.equal(whole.facts.text_truncated, false);
      const cut = await derivePdf(PDF_SAMPLE, (await workDir()).work, { ...OPTIONS, posters: false, thumbnails: false, textMaxChars: 5000 });
      assert.ok(cut.text!.length <= 5000 && cut.text!.length > 4900, `${cut.text!.length} characters`);
      assert.equal(cut.facts.text_chars, cut.text!.length);
      assert.equal(cut.facts.text_truncated, true);
      assert.ok(whole.text!.startsWith(cut.text!), 'the beginning of the same text');
      assert.match(whole.text!.slice(cut.text!.length), /^\s/, 'cut between words');
      const off = await derivePdf(PDF_SAMPLE, (await workDir()).work, { ...OPTIONS, posters: false, thumbnails: false, textMaxChars: 0 });
      assert.equal(off.text, undefined);
      assert.deepEqual([off.facts.text_chars, off.facts.text_truncated, off.facts.text_error], [undefined, undefined, undefined]);
    });

    describe('a pdftotext that hangs, fails or writes without end (a stand-in on PATH)', () => {
      const pdf = () => source('for-fake-tools.pdf', textPdf({ title: 'Stand-in', pages: [['Only a little text.']] }));
      async function withFakePdftotext<T>(script: string, fn: () => Promise<T>): Promise<T> {
        const bin = await fs.mkdtemp(path.join(tmp, 'bin-'));
        await fs.writeFile(path.join(bin, 'pdftotext'), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
        const saved = process.env.PATH;
        process.env.PATH = `${bin}${path.delimiter}${saved}`;
        try {
          return await fn();
        } finally {
          process.env.PATH = saved;
        }
      }

      it('one past its time limit: the PDF is derived with its pages and poster, the text left out and why recorded', async () => {
        const file = await pdf();
        const { work } = await workDir();
        const started = Date.now();
        const result = await withFakePdftotext('exec sleep 60', () => derivePdf(file, work, { ...OPTIONS, timeoutMs: 3000 }));
        assert.ok(Date.now() - started < 30_000, 'stopped at its time limit');
        assert.equal(result.facts.pages, 1);
        assert.equal(result.facts.title, 'Stand-in');
        assert.equal(result.text, undefined);
        assert.equal(result.facts.text_chars, undefined);
        assert.equal(result.facts.text_error, 'reading the text layer took longer than 3 s');
        assert.ok(result.textFailure instanceof PermanentJobError && result.textFailure.code === 'timeout');
        assert.deepEqual(await listTree(work), ['posters/poster.jpg', 'posters/poster.webp', 'thumbnails/thumb.webp']);
      });

      it('one that fails: derived without text; its message (which may name files) stays out of the facts', async () => {
        const file = await pdf();
        const { work } = await workDir();
        const result = await withFakePdftotext('echo "Syntax Error: Couldn\'t read /srv/secret/place.pdf" >&2; exit 1', () => derivePdf(file, work, OPTIONS));
        assert.equal(result.facts.pages, 1);
        assert.equal(result.text, undefined);
        assert.equal(result.facts.text_error, 'the text layer could not be read');
        assert.ok(result.textFailure instanceof ToolFailure && /secret/.test(result.textFailure.detail), 'the tool output is kept for the logs');
      });

      it('one that writes without end: stopped once the limit is reached, the text cut there', async () => {
        const file = await pdf();
        const { work } = await workDir();
        const started = Date.now();
        const result = await withFakePdftotext("exec yes 'lorem ipsum dolor sit amet'", () =>
          derivePdf(file, work, { ...OPTIONS, posters: false, thumbnails: false, textMaxChars: 10_000 }),
        );
        assert.ok(Date.now() - started < 20_000);
        assert.equal(result.facts.text_truncated, true);
        assert.ok(result.text!.length <= 10_000 && result.text!.length > 9_900, `${result.text!.length} characters`);
        assert.match(result.text!, /^lorem ipsum dolor sit amet\nlorem/);
        assert.equal(result.facts.text_error, undefined);
      });
    });

    it('argv is plain data: first page only, bounded size, the file last', () => {
      assert.deepEqual(pdfinfoArgs('/m/a.pdf'), ['-enc', 'UTF-8', '/m/a.pdf']);
      assert.deepEqual(pdftoppmArgs('/m/a.pdf', '/w/.render/page', 1280), [
        '-f',
        '1',
        '-l',
        '1',
        '-singlefile',
        '-cropbox',
        '-png',
        '-scale-to',
        '1280',
        '/m/a.pdf',
        '/w/.render/page',
      ]);
      assert.deepEqual(pdftotextArgs('/m/a.pdf'), ['-enc', 'UTF-8', '-eol', 'unix', '/m/a.pdf', '-']);
      assert.throws(() => pdftoppmArgs('/m/a.pdf', '/w/p', 0), RangeError);
      assert.throws(() => pdftoppmArgs('/m/a.pdf', '/w/p', 12.5), RangeError);
    });

    it('pdfinfo output: a multi-line title cannot forge the page count', () => {
      const info = parsePdfInfo(
        'Title:           Line one\nPages: 999\nAuthor:          Someone\nPages:           3\nEncrypted:       yes (print:yes copy:no)\nPage size:       612 x 792 pts (letter)\nPage rot:        90\n',
      );
      assert.deepEqual(info, { pages: 3, title: 'Line one', author: 'Someone', encrypted: true, page_width_pt: 612, page_height_pt: 792, page_rotation: 90 });
      assert.throws(
        () => parsePdfInfo('Pages: 0\n'),
        (e: unknown) => e instanceof PermanentJobError && e.code === 'unreadable-media',
      );
    });

    it('failures are classified: timeout, password, unreadable are permanent; disk, memory, signals are retried', () => {
      const res = (over: Partial<Parameters<typeof popplerFailure>[1]>) => ({ stdout: '', stderr: '', code: 1, signal: null, timedOut: false, ...over });
      const code = (e: Error) => (e instanceof PermanentJobError ? e.code : 'retry');
      assert.equal(code(popplerFailure('pdftoppm', res({ timedOut: true, code: null, signal: 'SIGKILL' }), 60_000)), 'timeout');
      assert.equal(code(popplerFailure('pdfinfo', res({ stderr: 'Command Line Error: Incorrect password' }), 1)), 'unreadable-media');
      assert.equal(code(popplerFailure('pdfinfo', res({ stderr: "Syntax Error: Couldn't read xref table" }), 1)), 'unreadable-media');
      assert.equal(code(popplerFailure('pdftoppm', res({ code: 2, stderr: "Couldn't open file '/w/p.png': No space left on device." }), 1)), 'retry');
      assert.equal(code(popplerFailure('pdftoppm', res({ stderr: 'Out of memory' }), 1)), 'retry');
      assert.equal(code(popplerFailure('pdftoppm', res({ code: null, signal: 'SIGSEGV' }), 1)), 'retry');
      assert.equal(code(popplerFailure('pdfinfo', res({ code: 99, stderr: 'Command Line Error: Wrong page range given' }), 1)), 'unreadable-media');
      assert.equal(code(popplerFailure('pdftoppm', res({ code: 2 }), 1)), 'retry');
    });
  });

  describe('EPUB', () => {
    it('the EPUB 2 sample: Dublin Core facts and the cover from its meta, not the first image', async () => {
      const { caseDir, work } = await workDir();
      const result: DerivedDocument = await deriveEpub(EPUB_SAMPLE, work, OPTIONS);
      assert.equal(result.facts.format, 'epub');
      assert.equal(result.facts.title, 'The Dark World');
      assert.equal(result.facts.author, 'Henry Kuttner');
      assert.equal(result.facts.language, 'en');
      assert.equal(result.facts.publisher, 'Feedbooks');
      assert.equal(result.facts.encrypted, false);
      assert.equal(result.facts.cover_source, 'manifest-cover');
      assert.deepEqual(await listTree(work), ['posters/poster.jpg', 'posters/poster.webp', 'thumbnails/thumb.webp']);
      assert.deepEqual(await fs.readdir(caseDir), ['work']);
      const poster = await decoded(path.join(work, 'posters/poster.jpg'));
      // The manifest lists Feedbooks logos before the cover; the cover is a portrait 520x800.
      assert.deepEqual([poster.format, poster.width, poster.height], ['jpeg', 520, 800]);
      const webp = await decoded(path.join(work, 'posters/poster.webp'));
      assert.deepEqual([webp.format, webp.width, webp.height], ['webp', 520, 800]);
      const thumb = await decoded(path.join(work, 'thumbnails/thumb.webp'));
      assert.equal(Math.max(thumb.width!, thumb.height!), 320);
    });

    it('EPUB 3 cover-image item wins over an earlier image; hrefs are percent-decoded and relative to the OPF', async () => {
      const manifest = `<item id="fig" href="images/figure.png" media-type="image/png"/>
        <item id="c" href="images/my%20cover.jpg" media-type="image/jpeg" properties="cover-image"/>`;
      const file = await source(
        'epub3.epub',
        epub(opf(manifest), [
          { name: 'OEBPS/images/figure.png', data: await solid(64, 64, '#0000ff', 'png') },
          { name: 'OEBPS/images/my cover.jpg', data: await solid(300, 450, '#ff0000', 'jpeg') },
        ]),
      );
      const { work } = await workDir();
      const result = await deriveEpub(file, work, OPTIONS);
      assert.equal(result.facts.title, 'Made & Tested');
      assert.equal(result.facts.author, 'Ada Lovelace, Charles Babbage');
      assert.equal(result.facts.language, 'fr');
      assert.equal(result.facts.publisher, 'Qasar Press');
      assert.equal(result.facts.cover_source, 'manifest-cover');
      const m = await decoded(path.join(work, 'posters/poster.webp'));
      assert.deepEqual([m.width, m.height], [300, 450], 'a small cover is not enlarged');
      const [r, g, b] = await meanColour(path.join(work, 'posters/poster.jpg'));
      assert.ok(r > 200 && g < 50 && b < 50, 'the red cover, not the blue figure');
      const t = await decoded(path.join(work, 'thumbnails/thumb.webp'));
      assert.deepEqual([t.width, t.height], [213, 320]);
    });

    it('no cover metadata: the first raster image of the manifest (SVG skipped), transparency on white', async () => {
      const manifest = `<item id="s" href="art.svg" media-type="image/svg+xml"/>
        <item id="p" href="plate.png" media-type="image/png"/>`;
      const transparent = await sharp({ create: { width: 100, height: 80, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
        .png()
        .toBuffer();
      const file = await source(
        'first-image.epub',
        epub(opf(manifest), [
          { name: 'OEBPS/art.svg', data: '<svg xmlns="http://www.w3.org/2000/svg"/>' },
          { name: 'OEBPS/plate.png', data: transparent },
        ]),
      );
      const { work } = await workDir();
      const result = await deriveEpub(file, work, OPTIONS);
      assert.equal(result.facts.cover_source, 'first-image');
      const [r, g, b] = await meanColour(path.join(work, 'posters/poster.jpg'));
      assert.ok(r > 250 && g > 250 && b > 250, 'flattened on white');
    });

    it('no images: a cover drawn from the title and author, as poster (JPEG + WebP) and thumbnail at the image sizes', async () => {
      const file = await source('no-images.epub', epub(opf('')));
      const { work } = await workDir();
      const result = await deriveEpub(file, work, OPTIONS);
      assert.equal(result.facts.title, 'Made & Tested');
      assert.equal(result.facts.cover_source, 'drawn');
      assert.equal(result.facts.cover_skipped, undefined, 'there was no cover to skip');
      assert.deepEqual(result.files, { posterWebp: 'posters/poster.webp', posterJpeg: 'posters/poster.jpg', thumbnail: 'thumbnails/thumb.webp' });
      assert.deepEqual(await listTree(work), ['posters/poster.jpg', 'posters/poster.webp', 'thumbnails/thumb.webp']);
      for (const [file, format] of [
        ['posters/poster.jpg', 'jpeg'],
        ['posters/poster.webp', 'webp'],
      ] as const) {
        const m = await decoded(path.join(work, file));
        assert.deepEqual([m.format, m.width, m.height], [format, 853, 1280], 'a 2:3 portrait cover at the poster size');
        const { channels } = await sharp(path.join(work, file)).stats();
        assert.ok(channels[0]!.mean > 180, 'mostly paper');
        assert.ok(channels[0]!.min < 80, 'with dark lettering on it');
      }
      const t = await decoded(path.join(work, 'thumbnails/thumb.webp'));
      assert.deepEqual([t.format, t.width, t.height], ['webp', 213, 320]);

      const small = await workDir();
      const thumbOnly = await deriveEpub(file, small.work, { ...OPTIONS, posters: false, thumbnailSize: 200 });
      assert.deepEqual(thumbOnly.files, { thumbnail: 'thumbnails/thumb.webp' });
      const st = await decoded(path.join(small.work, 'thumbnails/thumb.webp'));
      assert.deepEqual([st.width, st.height], [133, 200]);
      const none = await workDir();
      assert.deepEqual((await deriveEpub(file, none.work, { ...OPTIONS, posters: false, thumbnails: false })).files, {});
      assert.deepEqual(await listTree(none.work), []);
    });

    it('a drawn cover takes any title and author as text: markup, controls and great lengths drawn safely, within bounds', async () => {
      const hostile = '&lt;span foreground="red" size="900000"&gt;BIG&lt;/span&gt; &amp;amp; &lt;b&gt;';
      const longTitle = `${'Interminable '.repeat(2000)}End`;
      const file = await source(
        'hostile-title.epub',
        epubBook({ title: `${hostile} ${longTitle}`, creators: [`${'Author '.repeat(500)}\n\t`, '&lt;/span&gt;'], chapters: [xhtmlChapter('<p>x</p>')] }),
      );
      const { work } = await workDir();
      const result = await deriveEpub(file, work, { ...OPTIONS, posterSize: 600 });
      assert.equal(result.facts.cover_source, 'drawn');
      const m = await decoded(path.join(work, 'posters/poster.jpg'));
      assert.deepEqual([m.width, m.height], [400, 600]);

      assert.equal(escapeMarkup(`<span a="1">&'</span>`), '&lt;span a=&quot;1&quot;&gt;&amp;&apos;&lt;/span&gt;');
      assert.equal(coverLine('  A\n\tB\u0000C  ', 100), 'A B C');
      assert.equal(coverLine(undefined, 10), '');
      const cut = coverLine(longTitle, DRAWN_TITLE_MAX);
      assert.equal(cut.length, DRAWN_TITLE_MAX);
      assert.ok(cut.endsWith('…'));
      const emoji = coverLine('😀'.repeat(DRAWN_AUTHOR_MAX), DRAWN_AUTHOR_MAX);
      assert.ok(emoji.endsWith('😀…'), 'never cut inside a surrogate pair');
      assert.equal(coverLine('a\ud800b', 10), 'ab', 'a lone surrogate is dropped');
    });

    it('an SVG cover is not rendered; a cover that is not a picture is skipped', async () => {
      const svg = await source(
        'svg-cover.epub',
        epub(opf('<item id="c" href="c.svg" media-type="image/svg+xml" properties="cover-image"/>'), [
          { name: 'OEBPS/c.svg', data: '<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>' },
        ]),
      );
      const a = await workDir();
      const r1 = await deriveEpub(svg, a.work, OPTIONS);
      assert.equal(r1.facts.cover_source, 'drawn', 'a cover is drawn instead');
      assert.match(r1.facts.cover_skipped!, /svg/);
      const drawn = await decoded(path.join(a.work, 'posters/poster.jpg'));
      assert.deepEqual([drawn.width, drawn.height], [853, 1280]);

      const fake = await source(
        'fake-cover.epub',
        epub(opf('<item id="c" href="c.png" media-type="image/png"/>', '<meta name="cover" content="c"/>'), [
          { name: 'OEBPS/c.png', data: '<svg xmlns="http://www.w3.org/2000/svg"/>' },
        ]),
      );
      const b = await workDir();
      const r2 = await deriveEpub(fake, b.work, OPTIONS);
      assert.equal(r2.facts.cover_source, 'drawn');
      assert.match(r2.facts.cover_skipped!, /not a JPEG, PNG, GIF or WebP/);
    });

    it('a cover over the pixel limit is skipped, not rendered', async () => {
      const file = await source(
        'big-cover.epub',
        epub(opf('<item id="c" href="c.png" media-type="image/png" properties="cover-image"/>'), [
          { name: 'OEBPS/c.png', data: await solid(1000, 1000, '#00ff00', 'png') },
        ]),
      );
      const { work } = await workDir();
      const result = await deriveEpub(file, work, { ...OPTIONS, maxPixels: 500_000 });
      assert.equal(result.facts.cover_source, 'drawn');
      assert.match(result.facts.cover_skipped!, /limit of 500000 pixels/);
      const m = await decoded(path.join(work, 'posters/poster.webp'));
      assert.ok(m.width! * m.height! <= 500_000, `the drawn cover keeps within the pixel limit too (${m.width}x${m.height})`);
      const [r, g, b] = await meanColour(path.join(work, 'posters/poster.webp'));
      assert.ok(!(g > 200 && r < 50 && b < 50), 'not the green cover that was skipped');
    });

    it('DRM (encryption.xml beyond font obfuscation) is reported as encrypted', async () => {
      const encryption = `<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#">
        <enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/></enc:EncryptedData></encryption>`;
      const file = await source('drm.epub', epub(opf(''), [{ name: 'META-INF/encryption.xml', data: encryption }]));
      const { work } = await workDir();
      assert.equal((await deriveEpub(file, work, OPTIONS)).facts.encrypted, true);
    });

    it('an OPF over the entry limit is too-large, whether its size is declared or not', async () => {
      // Random text: it does not compress, so only the entry size limit is at stake, not the ratio.
      const bloated = opf('', '', `<!--${randomBytes(1536 * 1024).toString('base64')}-->`);
      await refused(deriveEpub, await source('big-opf.epub', epub(bloated)), 'too-large', { epubMaxEntryBytes: 256 * 1024 }, /declares/);
      // The same entry claiming 1000 bytes: the count while inflating stops it.
      const lying = buildZip([
        { name: 'META-INF/container.xml', data: CONTAINER },
        { name: 'OEBPS/content.opf', data: bloated, declaredSize: 1000 },
      ]);
      await refused(deriveEpub, await source('lying-opf.epub', lying), 'too-large', { epubMaxEntryBytes: 256 * 1024 }, /inflates past/);
    });

    it('a zip bomb in a chapter that is never read (200 MB of zeros in about 200 KB) is too-large from the central directory', async () => {
      const bomb = await chapterBombEpub(200 * 1024 * 1024);
      assert.ok(bomb.length < 400 * 1024, `a small file (${bomb.length} bytes)`);
      await refused(deriveEpub, await source('chapter-bomb.epub', bomb), 'too-large', {}, /OEBPS\/chapter1\.xhtml in the EPUB is compressed over 200:1/);
    });

    it('a bomb spread over many entries, each under the ratio floor, is caught on the whole zip', async () => {
      const mib = await deflatedZeros(1024 * 1024);
      const parts = Array.from({ length: 40 }, (_, i) => ({ name: `OEBPS/part${i}.xhtml`, data: mib }));
      await refused(deriveEpub, await source('spread-bomb.epub', epub(opf(''), parts)), 'too-large', {}, /the EPUB as a whole is compressed over 200:1/);
    });

    it('entries declaring more than the total limit together are too-large, though each is small and incompressible', async () => {
      const parts = Array.from({ length: 3 }, (_, i) => ({ name: `OEBPS/blob${i}.bin`, data: randomBytes(400 * 1024), store: true }));
      await refused(
        deriveEpub,
        await source('total.epub', epub(opf(''), parts)),
        'too-large',
        { epubMaxTotalBytes: 1024 * 1024 },
        /would unpack to over 1048576 bytes/,
      );
    });

    it('a cover compressed past the ratio limit is too-large, declared or found while inflating', async () => {
      const zeros = await deflatedZeros(4 * 1024 * 1024);
      const manifest = opf('<item id="c" href="c.png" media-type="image/png" properties="cover-image"/>');
      await refused(
        deriveEpub,
        await source('ratio.epub', epub(manifest, [{ name: 'OEBPS/c.png', data: zeros }])),
        'too-large',
        {},
        /c\.png in the EPUB is compressed over 200:1/,
      );
      // Claiming 1000 bytes gets it past the central directory; the count while inflating stops it.
      const lying = epub(manifest, [{ name: 'OEBPS/c.png', data: zeros, declaredSize: 1000 }]);
      await refused(deriveEpub, await source('lying-ratio.epub', lying), 'too-large', {}, /c\.png in the EPUB is compressed over 200:1/);
    });

    it('more entries than the limit is too-large', async () => {
      const extra = Array.from({ length: 30 }, (_, i) => ({ name: `OEBPS/t${i}.xhtml`, data: '<html/>' }));
      await refused(deriveEpub, await source('many.epub', epub(opf(''), extra)), 'too-large', { epubMaxEntries: 20 }, /over the limit of 20/);
    });

    it('an entry whose size lies on the small side is damaged', async () => {
      const zip = buildZip([
        { name: 'META-INF/container.xml', data: CONTAINER },
        { name: 'OEBPS/content.opf', data: opf(''), declaredSize: 100_000 },
      ]);
      await refused(deriveEpub, await source('short.epub', zip), 'unreadable-media', {}, /declared/);
    });

    it('broken zips are unreadable-media: truncated, not a zip, corrupt deflate data', async () => {
      const whole = await fs.readFile(EPUB_SAMPLE);
      await refused(deriveEpub, await source('truncated.epub', whole.subarray(0, Math.floor(whole.length / 2))), 'unreadable-media');
      await refused(deriveEpub, await source('text.epub', 'This is plain text named .epub\n'), 'unreadable-media');
      await refused(deriveEpub, await source('zero.epub', ''), 'unreadable-media');
      const good = epub(opf(''));
      const opfAt = good.indexOf('OEBPS/content.opf') + 'OEBPS/content.opf'.length;
      const corrupt = Buffer.from(good);
      for (let i = opfAt + 4; i < opfAt + 40; i++) corrupt[i] = 0xff;
      await refused(deriveEpub, await source('corrupt.epub', corrupt), 'unreadable-media');
    });

    it('accepts a DOCTYPE that only names its DTD, as legacy OEB 1.x packages have, and an internal entity', async () => {
      const oebDoctype = '<!DOCTYPE package PUBLIC "+//ISBN 0-9673008-1-9//DTD OEB 1.0.1 Package//EN" "http://openebook.org/dtds/oeb-1.0.1/oebpkg101.dtd">';
      const legacy = `<?xml version="1.0"?>
${oebDoctype}
<package unique-identifier="id">
  <metadata><dc-metadata xmlns:dc="http://purl.org/dc/elements/1.0/"><dc:Title>Old Book</dc:Title></dc-metadata></metadata>
  <manifest><item id="c1" href="c1.html" media-type="text/x-oeb1-document"/></manifest>
</package>`;
      assert.deepEqual(
        parseOpf(legacy).items.map((i) => i.href),
        ['c1.html'],
      );
      const containerDoctype = '<!DOCTYPE container PUBLIC "-//EXAMPLE//DTD Container//EN" "http://example.invalid/container.dtd">';
      const withDoctype = opf('').replace('?>\n', `?>\n${oebDoctype}\n`);
      const { work } = await workDir();
      const result = await deriveEpub(
        await source('oeb-doctype.epub', epub(withDoctype, [], CONTAINER.replace('?>\n', `?>\n${containerDoctype}\n`))),
        work,
        OPTIONS,
      );
      assert.equal(result.facts.title, 'Made & Tested');
      const internal = opf('').replace('?>\n', '?>\n<!DOCTYPE package [<!ENTITY press "Entity Press">]>\n').replace('Qasar Press', '&press;');
      assert.equal(parseOpf(internal).publisher, 'Entity Press');
    });

    it('refuses entity declarations that name outside files, and parameter entities, as unreadable-media', () => {
      const declarations = [
        '<!ENTITY xxe SYSTEM "file:///etc/passwd">',
        '<!ENTITY xxe PUBLIC "-//EXAMPLE//ENTITIES x//EN" "http://example.invalid/x.ent">',
        '<!ENTITY\n  xxe\n  SYSTEM "file:///etc/passwd">',
        '<!ENTITY % dtd SYSTEM "http://example.invalid/evil.dtd"> %dtd;',
        '<!ENTITY % inner "<!ENTITY y \'z\'>"> %inner;',
      ];
      for (const declaration of declarations) {
        const refusedAs = (e: unknown) => e instanceof PermanentJobError && e.code === 'unreadable-media' && /external entity/.test(e.message);
        assert.throws(() => parseOpf(opf('').replace('?>\n', `?>\n<!DOCTYPE package [${declaration}]>\n`)), refusedAs, `OPF: ${declaration}`);
        assert.throws(
          () => parseContainer(CONTAINER.replace('?>\n', `?>\n<!DOCTYPE container PUBLIC "-//x//DTD y//EN" "c.dtd" [${declaration}]>\n`)),
          refusedAs,
          `container: ${declaration}`,
        );
      }
    });

    it("says what is wrong with a broken EPUB in plain words, the zip library's and XML parser's messages kept for the logs", async () => {
      const whole = await fs.readFile(EPUB_SAMPLE);
      const good = epub(opf(''));
      const opfAt = good.indexOf('OEBPS/content.opf') + 'OEBPS/content.opf'.length;
      const corrupt = Buffer.from(good);
      for (let i = opfAt + 4; i < opfAt + 40; i++) corrupt[i] = 0xff;
      const cases: Array<[string, Buffer | string, RegExp]> = [
        ['truncated.epub', whole.subarray(0, Math.floor(whole.length / 2)), /^the file is not a readable EPUB \(zip\)$/],
        ['text.epub', 'This is plain text named .epub\n', /^the file is not a readable EPUB \(zip\)$/],
        ['corrupt.epub', corrupt, /^OEBPS\/content\.opf in the EPUB (is damaged|cannot be read)$/],
        ['bad-opf.epub', epub('<package><manifest><item href="a"></package>'), /^the EPUB's package document \(OPF\) is not well-formed XML \(line \d+\)$/],
      ];
      for (const [name, data, reason] of cases) {
        const err = await refused(deriveEpub, await source(name, data), 'unreadable-media', {}, reason);
        assert.ok(err instanceof ToolFailure && err.detail.length > 0, `${name}: the library's message is kept as detail`);
        assert.ok(!err.message.includes(err.detail), `${name}: ${JSON.stringify(err.message)} repeats ${JSON.stringify(err.detail)}`);
      }
    });

    it('a zip without container.xml, or whose OPF is missing or not XML, is unreadable-media', async () => {
      const noContainer = buildZip([
        { name: 'mimetype', data: 'application/epub+zip', store: true },
        { name: 'OEBPS/content.opf', data: opf('') },
      ]);
      await refused(deriveEpub, await source('no-container.epub', noContainer), 'unreadable-media', {}, /container\.xml/);
      const missingOpf = buildZip([{ name: 'META-INF/container.xml', data: CONTAINER }]);
      await refused(deriveEpub, await source('no-opf.epub', missingOpf), 'unreadable-media', {}, /OEBPS\/content\.opf is missing/);
      await refused(deriveEpub, await source('bad-opf.epub', epub('<package><manifest><item href="a"></package>')), 'unreadable-media', {}, /not well-formed/);
      await refused(deriveEpub, await source('not-opf.epub', epub('<html><body/></html>')), 'unreadable-media', {}, /no package manifest/);
    });

    it('an href climbing out of the zip with ../ is refused', async () => {
      const file = await source('escape.epub', epub(opf('<item id="c" href="../../../etc/cover.png" media-type="image/png" properties="cover-image"/>')));
      await refused(deriveEpub, file, 'unreadable-media', {}, /outside/);
      const container = CONTAINER.replace('OEBPS/content.opf', '../content.opf');
      await refused(deriveEpub, await source('escape-opf.epub', epub(opf(''), [], container)), 'unreadable-media', {}, /outside/);
    });

    it("the spine's chapters in reading order become the text: the head, scripts, styles and comments left out, references decoded", async () => {
      const chapters = [
        xhtmlChapter(
          `<h1>Chapter One</h1><p>Caf&eacute; &amp; cr&#232;me&#x2014;the <em>mar</em>malade&nbsp;jar.</p>
           <script>var hiddenscriptword = "<p>no</p>";</script><style>p { color: hiddenstyleword }</style>
           <!-- hiddencommentword --><p><![CDATA[literal <cdata> words]]></p><p>Unknown &zork; stays</p>`,
          '<title>hiddenheadword</title><style>h1 { font: hiddenheadstyle }</style>',
        ),
        xhtmlChapter('<div><p>Second</p><p>chapter</p></div><svg:svg xmlns:svg="http://www.w3.org/2000/svg"><svg:style>x{}</svg:style></svg:svg>'),
      ];
      // The manifest lists chapter 2 first: the spine's order is the reading order.
      const manifest =
        '<item id="two" href="two.xhtml" media-type="application/xhtml+xml"/><item id="one" href="one.xhtml" media-type="application/xhtml+xml"/>';
      const file = await source(
        'chapters.epub',
        buildZip([
          { name: 'mimetype', data: 'application/epub+zip', store: true },
          { name: 'META-INF/container.xml', data: CONTAINER },
          {
            name: 'OEBPS/content.opf',
            data: opf(manifest).replace(
              '<spine><itemref idref="nav"/></spine>',
              '<spine><itemref idref="one"/><itemref idref="two"/><itemref idref="one"/></spine>',
            ),
          },
          { name: 'OEBPS/one.xhtml', data: chapters[0]! },
          { name: 'OEBPS/two.xhtml', data: chapters[1]! },
        ]),
      );
      const { work } = await workDir();
      const result = await deriveEpub(file, work, OPTIONS);
      assert.equal(result.text, 'Chapter One\n\nCafé & crème—the marmalade jar.\n\nliteral <cdata> words\n\nUnknown &zork; stays\n\nSecond\n\nchapter');
      assert.doesNotMatch(result.text!, /hidden/);
      assert.equal(result.facts.text_chars, result.text!.length);
      assert.equal(result.facts.text_truncated, false);
    });

    it('text is cut at the limit across chapters; chapters missing, outside the zip or over the entry limit are left out and named', async () => {
      const words = (n: number, w: string) => Array.from({ length: n }, (_, i) => `${w}${i}`).join(' ');
      const book = (extra: string, files: ZipItem[]) =>
        buildZip([
          { name: 'mimetype', data: 'application/epub+zip', store: true },
          { name: 'META-INF/container.xml', data: CONTAINER },
          {
            name: 'OEBPS/content.opf',
            data: opf(
              `<item id="a" href="a.xhtml" media-type="application/xhtml+xml"/><item id="b" href="b.xhtml" media-type="application/xhtml+xml"/>${extra}`,
            ).replace(
              '<spine><itemref idref="nav"/></spine>',
              '<spine><itemref idref="gone"/><itemref idref="a"/><itemref idref="big"/><itemref idref="b"/></spine>',
            ),
          },
          { name: 'OEBPS/a.xhtml', data: xhtmlChapter(`<p>${words(300, 'alpha')}</p>`) },
          { name: 'OEBPS/b.xhtml', data: xhtmlChapter(`<p>${words(300, 'beta')}</p>`) },
          ...files,
        ]);
      const file = await source(
        'cut.epub',
        book('<item id="gone" href="missing.xhtml" media-type="application/xhtml+xml"/><item id="big" href="big.xhtml" media-type="application/xhtml+xml"/>', [
          { name: 'OEBPS/big.xhtml', data: xhtmlChapter(`<p>${randomBytes(200 * 1024).toString('base64')}</p>`) },
        ]),
      );
      const whole = await deriveEpub(file, (await workDir()).work, { ...OPTIONS, posters: false, thumbnails: false, epubMaxEntryBytes: 100 * 1024 });
      assert.match(whole.text!, /^alpha0 alpha1 .* alpha299\n\nbeta0 .* beta299$/s);
      assert.equal(whole.facts.text_truncated, true, 'the big chapter is left out');
      assert.equal(whole.facts.text_error, 'OEBPS/missing.xhtml is missing from the EPUB', 'the first problem is named');

      const cut = await deriveEpub(file, (await workDir()).work, { ...OPTIONS, posters: false, thumbnails: false, textMaxChars: 3000 });
      assert.ok(cut.text!.length <= 3000 && cut.text!.length > 2900, `${cut.text!.length}`);
      assert.ok(cut.text!.startsWith('alpha0 alpha1'));
      assert.equal(cut.facts.text_truncated, true);
    });

    it('a damaged chapter is left out (the book is still derived); one inflating past the limits refuses the book as a zip bomb would', async () => {
      const good = epubBook({ title: 'Two Parts', chapters: [xhtmlChapter('<p>intact words</p>'), xhtmlChapter(`<p>${'damaged words '.repeat(200)}</p>`)] });
      const at = good.indexOf('OEBPS/chapter2.xhtml') + 'OEBPS/chapter2.xhtml'.length;
      const corrupt = Buffer.from(good);
      for (let i = at + 4; i < at + 40; i++) corrupt[i] = 0xff;
      const { work } = await workDir();
      const result = await deriveEpub(await source('damaged-chapter.epub', corrupt), work, OPTIONS);
      assert.equal(result.text, 'intact words');
      assert.equal(result.facts.text_truncated, true);
      assert.match(result.facts.text_error!, /^OEBPS\/chapter2\.xhtml in the EPUB (is damaged|cannot be read); its text is left out$/);
      assert.equal(result.facts.cover_source, 'drawn');

      // 4 MiB of zeros claiming 1000 bytes: past the central directory, stopped while inflating.
      const lying = buildZip([
        { name: 'mimetype', data: 'application/epub+zip', store: true },
        { name: 'META-INF/container.xml', data: CONTAINER },
        { name: 'OEBPS/content.opf', data: opf('') },
        { name: 'OEBPS/nav.xhtml', data: await deflatedZeros(4 * 1024 * 1024), declaredSize: 1000 },
      ]);
      await refused(deriveEpub, await source('lying-chapter.epub', lying), 'too-large', {}, /nav\.xhtml in the EPUB is compressed over 200:1/);
      // With text off the chapter is never read, as before.
      const off = await workDir();
      assert.equal((await deriveEpub(await source('lying-chapter-2.epub', lying), off.work, { ...OPTIONS, textMaxChars: 0 })).text, undefined);
    });

    it('a spine of thousands of chapters named in another case is read, each found once, in linear time', async () => {
      const n = 2000;
      const items = Array.from({ length: n }, (_, i) => `<item id="c${i}" href="c${i}.xhtml" media-type="application/xhtml+xml"/>`).join('');
      const spine = Array.from({ length: n }, (_, i) => `<itemref idref="c${i}"/>`).join('');
      const file = await source(
        'many-chapters.epub',
        buildZip([
          { name: 'META-INF/container.xml', data: CONTAINER },
          { name: 'OEBPS/content.opf', data: opf(items).replace('<spine><itemref idref="nav"/></spine>', `<spine>${spine}</spine>`) },
          ...Array.from({ length: n }, (_, i) => ({ name: `OEBPS/C${i}.XHTML`, data: `<p>word${i}</p>` })),
        ]),
      );
      const started = Date.now();
      const result = await deriveEpub(file, (await workDir()).work, { ...OPTIONS, posters: false, thumbnails: false });
      assert.ok(Date.now() - started < 20_000);
      const words = result.text!.split('\n\n');
      assert.equal(words.length, n);
      assert.deepEqual([words[0], words[n - 1]], ['word0', `word${n - 1}`]);
    });

    it("a chapter's entity declarations are never expanded (no file is read); an encrypted book's text is not read", async () => {
      const xxe = `<?xml version="1.0"?>
<!DOCTYPE html [<!ENTITY xxe SYSTEM "file:///etc/passwd"> <!ENTITY % p SYSTEM "http://example.invalid/x.dtd"> %p;]>
<html xmlns="http://www.w3.org/1999/xhtml"><body><p>before &xxe; after</p></body></html>`;
      const file = await source('xxe-chapter.epub', epubBook({ title: 'Entities', chapters: [xxe] }));
      const result = await deriveEpub(file, (await workDir()).work, OPTIONS);
      assert.equal(result.text, 'before &xxe; after');

      const encryption = `<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#">
        <enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/></enc:EncryptedData></encryption>`;
      const drm = await source(
        'drm-text.epub',
        epubBook({
          title: 'Locked',
          chapters: [xhtmlChapter(`<p>${randomBytes(64).toString('latin1')}</p>`)],
          files: [{ name: 'META-INF/encryption.xml', data: encryption }],
        }),
      );
      const locked = await deriveEpub(drm, (await workDir()).work, OPTIONS);
      assert.equal(locked.facts.encrypted, true);
      assert.equal(locked.text, undefined);
      assert.match(locked.facts.text_error!, /encrypted/);
    });

    it('package parsing and href resolution (pure)', () => {
      assert.equal(parseContainer(CONTAINER), 'OEBPS/content.opf');
      assert.equal(resolveHref('OEBPS/content.opf', 'images/a%20b.jpg#frag'), 'OEBPS/images/a b.jpg');
      assert.equal(resolveHref('OEBPS/text/content.opf', '../img/./c.png'), 'OEBPS/img/c.png');
      assert.equal(resolveHref('content.opf', 'c.png'), 'c.png');
      for (const bad of ['../c.png', '/etc/passwd', 'http://example.com/c.png', 'file:///etc/passwd', 'a%2F..%2F..%2Fb.png', '%zz.png']) {
        assert.throws(
          () => resolveHref('content.opf', bad),
          (e: unknown) => e instanceof PermanentJobError && e.code === 'unreadable-media',
          bad,
        );
      }
      const epub2 = parseOpf(
        opf(
          '<item id="x" href="x.xhtml" media-type="application/xhtml+xml"/><item id="img" href="c.gif" media-type="image/gif"/>',
          '<meta name="cover" content="img"/>',
        ),
      );
      assert.deepEqual(chooseCover(epub2), { item: { id: 'img', href: 'c.gif', mediaType: 'image/gif', properties: [] }, source: 'manifest-cover' });
      const metaToPage = parseOpf(
        opf(
          '<item id="x" href="x.xhtml" media-type="application/xhtml+xml"/><item id="i" href="i.webp" media-type="image/webp"/>',
          '<meta name="cover" content="x"/>',
        ),
      );
      assert.equal(chooseCover(metaToPage)?.source, 'first-image', 'a cover meta naming a page falls back to the first image');
      assert.equal(chooseCover(parseOpf(opf(''))), undefined);
      const spine = parseOpf(
        opf(
          '<item id="b" href="b.xhtml" media-type="application/xhtml+xml"/><item id="img" href="i.png" media-type="image/png"/><item id="a" href="a.html" media-type="text/html"/>',
        ).replace(
          '<spine><itemref idref="nav"/></spine>',
          '<spine><itemref idref="a"/><itemref idref="img"/><itemref idref="nope"/><itemref idref="b"/><itemref idref="a"/></spine>',
        ),
      );
      assert.deepEqual(spine.spine, ['a', 'img', 'nope', 'b', 'a']);
      assert.deepEqual(
        spineTextItems(spine).map((i) => i.href),
        ['a.html', 'b.xhtml'],
        'text documents of the spine, in its order, once each',
      );
    });
  });
});
