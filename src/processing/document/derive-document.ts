import fs from 'node:fs/promises';
import path from 'node:path';
import { PermanentJobError } from '../../shared/errors.js';
import { rasterFormatOf, writePictures, type PictureOptions } from './document-images.js';
import { chooseCover, isRasterType, parseContainer, parseOpf, resolveHref, xmlText } from './epub-package.js';
import { EpubZip } from './epub-zip.js';
import { renderFirstPage, runPdfinfo } from './pdf-tools.js';

export interface DocumentOptions {
  thumbnails: boolean;
  posters: boolean;
  /** Longest side in pixels. */
  thumbnailSize: number;
  posterSize: number;
  /** Per external tool run (pdfinfo, pdftoppm). */
  timeoutMs: number;
  /** Guard for the rendered page and the EPUB cover image. */
  maxPixels: number;
  /** Zip-bomb guards for the EPUB: entry count, every entry's ratio and their total size, and the size of each entry we read. */
  epubMaxEntries: number;
  epubMaxEntryBytes: number;
  /** All entries together, as declared. */
  epubMaxTotalBytes: number;
  epubMaxRatio: number;
}

export interface DocumentFacts {
  format: 'pdf' | 'epub';
  pages?: number;
  title?: string;
  author?: string;
  language?: string;
  publisher?: string;
  page_width_pt?: number;
  page_height_pt?: number;
  page_rotation?: number;
  /** Where the poster came from; null when the document has no usable cover. */
  cover_source?: 'first-page' | 'manifest-cover' | 'first-image' | null;
  /** Why a cover the EPUB has was not used (SVG, missing, undecodable, too large). */
  cover_skipped?: string;
  encrypted?: boolean;
}

export interface DerivedDocument {
  facts: DocumentFacts;
  /** Relative to the work folder. */
  files: { thumbnail?: string; posterWebp?: string; posterJpeg?: string };
  ms: number;
}

const RENDER_DIR = '.render';

function pictureOptions(opts: DocumentOptions, enlarge: boolean): PictureOptions {
  return {
    thumbnails: opts.thumbnails,
    posters: opts.posters,
    thumbnailSize: opts.thumbnailSize,
    posterSize: opts.posterSize,
    maxPixels: opts.maxPixels,
    enlarge,
  };
}

/**
 * A PDF's facts (pdfinfo) and, when asked for, its first page rendered by pdftoppm at the
 * poster size (bounded, whatever the page claims) and made into poster and thumbnail.
 */
export async function derivePdf(source: string, workDir: string, opts: DocumentOptions): Promise<DerivedDocument> {
  const started = Date.now();
  const info = await runPdfinfo(source, opts.timeoutMs);
  const facts: DocumentFacts = { format: 'pdf', ...info };
  let files: DerivedDocument['files'] = {};
  if (opts.posters || opts.thumbnails) {
    const wanted = opts.posters ? opts.posterSize : opts.thumbnailSize;
    const longSide = Math.max(1, Math.min(wanted, Math.floor(Math.sqrt(opts.maxPixels))));
    const renderDir = path.join(workDir, RENDER_DIR);
    await fs.mkdir(renderDir, { recursive: true });
    try {
      const png = await renderFirstPage(source, path.join(renderDir, 'page'), longSide, opts.timeoutMs);
      files = await writePictures(png, workDir, pictureOptions(opts, false));
    } finally {
      await fs.rm(renderDir, { recursive: true, force: true });
    }
    facts.cover_source = 'first-page';
  }
  return { facts, files, ms: Date.now() - started };
}

/**
 * An EPUB's facts from its package document (title, creators, language, publisher) and its
 * cover made into poster and thumbnail. Only container.xml, the OPF, encryption.xml when
 * present and the cover are inflated. A book without a usable cover has no poster; that is
 * not an error.
 */
export async function deriveEpub(source: string, workDir: string, opts: DocumentOptions): Promise<DerivedDocument> {
  const started = Date.now();
  const zip = await EpubZip.open(source, {
    maxEntries: opts.epubMaxEntries,
    maxEntryBytes: opts.epubMaxEntryBytes,
    maxTotalBytes: opts.epubMaxTotalBytes,
    maxRatio: opts.epubMaxRatio,
  });
  try {
    const containerName = zip.find('META-INF/container.xml');
    if (!containerName) throw new PermanentJobError('the file is not an EPUB: it has no META-INF/container.xml', 'unreadable-media');
    const opfPath = parseContainer(xmlText(await zip.read(containerName)));
    const opfName = zip.find(opfPath);
    if (!opfName) throw new PermanentJobError(`the EPUB's package document ${opfPath} is missing`, 'unreadable-media');
    const opf = parseOpf(xmlText(await zip.read(opfName)));

    const facts: DocumentFacts = { format: 'epub', encrypted: await isDrmProtected(zip) };
    if (opf.title) facts.title = opf.title;
    if (opf.creators.length) facts.author = opf.creators.join(', ');
    if (opf.language) facts.language = opf.language;
    if (opf.publisher) facts.publisher = opf.publisher;
    if (!opts.posters && !opts.thumbnails) return { facts, files: {}, ms: Date.now() - started };

    const cover = chooseCover(opf);
    facts.cover_source = null;
    if (!cover) return { facts, files: {}, ms: Date.now() - started };
    const coverPath = resolveHref(opfPath, cover.item.href);
    if (!isRasterType(cover.item.mediaType) && cover.item.mediaType !== '') {
      facts.cover_skipped = `the cover ${coverPath} is ${cover.item.mediaType}, which is not rendered`;
      return { facts, files: {}, ms: Date.now() - started };
    }
    const coverName = zip.find(coverPath);
    if (!coverName) {
      facts.cover_skipped = `the cover ${coverPath} is missing from the EPUB`;
      return { facts, files: {}, ms: Date.now() - started };
    }
    const bytes = await zip.read(coverName);
    if (!rasterFormatOf(bytes)) {
      facts.cover_skipped = `the cover ${coverPath} is not a JPEG, PNG, GIF or WebP picture`;
      return { facts, files: {}, ms: Date.now() - started };
    }
    try {
      const files = await writePictures(bytes, workDir, pictureOptions(opts, false));
      facts.cover_source = cover.source;
      return { facts, files, ms: Date.now() - started };
    } catch (err) {
      if (!(err instanceof PermanentJobError)) throw err;
      await Promise.all(['posters', 'thumbnails'].map((d) => fs.rm(path.join(workDir, d), { recursive: true, force: true })));
      facts.cover_skipped = `the cover ${coverPath}: ${err.message}`;
      return { facts, files: {}, ms: Date.now() - started };
    }
  } finally {
    zip.close();
  }
}

/** Font obfuscation also uses encryption.xml; any other algorithm, or an Adobe rights.xml, is DRM. */
const FONT_OBFUSCATION = new Set(['http://www.idpf.org/2008/embedding', 'http://ns.adobe.com/pdf/enc#RC']);

async function isDrmProtected(zip: EpubZip): Promise<boolean> {
  if (zip.find('META-INF/rights.xml')) return true;
  const name = zip.find('META-INF/encryption.xml');
  if (!name) return false;
  const xml = xmlText(await zip.read(name));
  const algorithms = [...xml.matchAll(/EncryptionMethod[^>]*Algorithm\s*=\s*["']([^"']+)["']/g)].map((m) => m[1]!);
  return algorithms.some((a) => !FONT_OBFUSCATION.has(a));
}
