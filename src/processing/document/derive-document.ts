import fs from 'node:fs/promises';
import path from 'node:path';
import { PermanentJobError } from '../../shared/errors.js';
import { rasterFormatOf, writePictures, type PictureFiles, type PictureOptions } from './document-images.js';
import { drawCover } from './drawn-cover.js';
import { chooseCover, isRasterType, parseContainer, parseOpf, resolveHref, xmlText, type OpfPackage } from './epub-package.js';
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
  /** Where the poster came from: `drawn` from the title and author when the book has no usable cover. */
  cover_source?: 'first-page' | 'manifest-cover' | 'first-image' | 'drawn';
  /** Why a cover the EPUB has was not used (SVG, missing, undecodable, too large). */
  cover_skipped?: string;
  encrypted?: boolean;
}

export interface DerivedDocument {
  facts: DocumentFacts;
  /** Relative to the work folder. */
  files: PictureFiles;
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
  let files: PictureFiles = {};
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
 * cover made into poster and thumbnail: the book's own picture, else one drawn from its title
 * and author. Only container.xml, the OPF, encryption.xml when present and the cover are
 * inflated.
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
    const files = opts.posters || opts.thumbnails ? await epubPictures(zip, opfPath, opf, facts, workDir, opts) : {};
    return { facts, files, ms: Date.now() - started };
  } finally {
    zip.close();
  }
}

/**
 * The book's cover made into poster and thumbnail (see chooseCover); when it has none, or its
 * cover cannot be used (SVG, missing, not a picture, undecodable, too large: `cover_skipped`
 * says why), a cover drawn from its title and author.
 */
async function epubPictures(
  zip: EpubZip,
  opfPath: string,
  opf: OpfPackage,
  facts: DocumentFacts,
  workDir: string,
  opts: DocumentOptions,
): Promise<PictureFiles> {
  const cover = chooseCover(opf);
  if (cover) {
    const coverPath = resolveHref(opfPath, cover.item.href);
    const coverName = zip.find(coverPath);
    if (!isRasterType(cover.item.mediaType) && cover.item.mediaType !== '') {
      facts.cover_skipped = `the cover ${coverPath} is ${cover.item.mediaType}, which is not rendered`;
    } else if (!coverName) {
      facts.cover_skipped = `the cover ${coverPath} is missing from the EPUB`;
    } else {
      const bytes = await zip.read(coverName);
      if (!rasterFormatOf(bytes)) {
        facts.cover_skipped = `the cover ${coverPath} is not a JPEG, PNG, GIF or WebP picture`;
      } else {
        try {
          const files = await writePictures(bytes, workDir, pictureOptions(opts, false));
          facts.cover_source = cover.source;
          return files;
        } catch (err) {
          if (!(err instanceof PermanentJobError)) throw err;
          await Promise.all(['posters', 'thumbnails'].map((d) => fs.rm(path.join(workDir, d), { recursive: true, force: true })));
          facts.cover_skipped = `the cover ${coverPath}: ${err.message}`;
        }
      }
    }
  }
  // Drawn at the size of the largest output asked for (2:3, within the pixel limit), then made
  // into the same poster and thumbnail a picture would give.
  const wanted = opts.posters ? opts.posterSize : opts.thumbnailSize;
  const longSide = Math.max(1, Math.min(wanted, Math.floor(Math.sqrt(opts.maxPixels * 1.5))));
  const drawn = await drawCover({ title: facts.title, author: facts.author }, longSide);
  const files = await writePictures(drawn, workDir, pictureOptions(opts, false));
  facts.cover_source = 'drawn';
  return files;
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
