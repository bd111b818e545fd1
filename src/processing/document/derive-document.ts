import fs from 'node:fs/promises';
import path from 'node:path';
import { PermanentJobError } from '../../shared/errors.js';
import { rasterFormatOf, writePictures, type PictureFiles, type PictureOptions } from './document-images.js';
import { TextCollector } from './document-text.js';
import { drawCover } from './drawn-cover.js';
import { chooseCover, isRasterType, parseContainer, parseOpf, resolveHref, spineTextItems, xmlText, type OpfPackage } from './epub-package.js';
import { EpubZip } from './epub-zip.js';
import { extractPdfText, renderFirstPage, runPdfinfo } from './pdf-tools.js';
import { xhtmlToText } from './xhtml-text.js';

export interface DocumentOptions {
  thumbnails: boolean;
  posters: boolean;
  /** Longest side in pixels. */
  thumbnailSize: number;
  posterSize: number;
  /** Per external tool run (pdfinfo, pdftoppm, pdftotext), and for reading an EPUB's text. */
  timeoutMs: number;
  /** Guard for the rendered page and the EPUB cover image. */
  maxPixels: number;
  /** Zip-bomb guards for the EPUB: entry count, every entry's ratio and their total size, and the size of each entry we read. */
  epubMaxEntries: number;
  epubMaxEntryBytes: number;
  /** All entries together, as declared. */
  epubMaxTotalBytes: number;
  epubMaxRatio: number;
  /** Most characters of the document's text kept (DOCUMENT_TEXT_MAX_CHARS); 0 reads no text. */
  textMaxChars: number;
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
  /** Characters of text kept for search (when text is read). */
  text_chars?: number;
  /** Some of the text was left out: cut at DOCUMENT_TEXT_MAX_CHARS, or not all of it could be read. */
  text_truncated?: boolean;
  /** Why the text, or some of it, could not be read; the document is ready all the same. */
  text_error?: string;
}

export interface DerivedDocument {
  facts: DocumentFacts;
  /** Relative to the work folder. */
  files: PictureFiles;
  /** The document's text, normalised and cut at `textMaxChars`; absent when none was read. */
  text?: string;
  /** What kept the text from being read, for the logs (`facts.text_error` says it in plain words). */
  textFailure?: unknown;
  ms: number;
}

interface TextOutcome {
  text?: string;
  truncated?: boolean;
  error?: string;
  failure?: unknown;
}

/** Records a text outcome in the facts, and hands the text and its failure to the caller. */
function withText(facts: DocumentFacts, outcome: TextOutcome | undefined): Pick<DerivedDocument, 'text' | 'textFailure'> {
  if (!outcome) return {};
  if (outcome.text !== undefined) {
    facts.text_chars = outcome.text.length;
    facts.text_truncated = outcome.truncated ?? false;
  }
  if (outcome.error) facts.text_error = outcome.error;
  return { ...(outcome.text ? { text: outcome.text } : {}), ...(outcome.failure !== undefined ? { textFailure: outcome.failure } : {}) };
}

const seconds = (ms: number) => Math.max(1, Math.round(ms / 1000));

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
 * A PDF's text layer (pdftotext), normalised and cut at `textMaxChars`. pdftotext is stopped
 * once it has written enough (three UTF-8 bytes per character, and room for the spaces that
 * normalising drops). The text is a bonus: a failure or time-out is recorded, never thrown.
 */
async function readPdfText(source: string, opts: DocumentOptions): Promise<TextOutcome> {
  const collector = new TextCollector(opts.textMaxChars);
  try {
    const { text, cut } = await extractPdfText(source, opts.timeoutMs, opts.textMaxChars * 3 + 64 * 1024);
    collector.add(text);
    if (cut) collector.markTruncated();
    return collector.result();
  } catch (err) {
    const timedOut = err instanceof PermanentJobError && err.code === 'timeout';
    return { failure: err, error: timedOut ? `reading the text layer took longer than ${seconds(opts.timeoutMs)} s` : 'the text layer could not be read' };
  }
}

/**
 * A PDF's facts (pdfinfo) and, when asked for, its first page rendered by pdftoppm at the
 * poster size (bounded, whatever the page claims) and made into poster and thumbnail, and its
 * text layer. A PDF whose text cannot be read is still derived, without text.
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
  const text = opts.textMaxChars > 0 ? await readPdfText(source, opts) : undefined;
  return { facts, files, ...withText(facts, text), ms: Date.now() - started };
}

/**
 * An EPUB's facts from its package document (title, creators, language, publisher), the text
 * of its spine, and its cover made into poster and thumbnail: the book's own picture, else one
 * drawn from its title and author. Only container.xml, the OPF, encryption.xml when present,
 * the spine's documents and the cover are inflated, one at a time, under the zip guards.
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
    // Text first: a chapter that turns out to be a zip bomb refuses the file before any picture is written.
    const text = opts.textMaxChars > 0 ? await readEpubText(zip, opfPath, opf, facts.encrypted === true, opts) : undefined;
    const files = opts.posters || opts.thumbnails ? await epubPictures(zip, opfPath, opf, facts, workDir, opts) : {};
    return { facts, files, ...withText(facts, text), ms: Date.now() - started };
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

/**
 * The text of the book's spine documents in reading order, each read through the zip guards
 * and turned into plain text (xhtmlToText), up to `textMaxChars` and for at most `timeoutMs`.
 * A chapter that is missing, damaged, over EPUB_MAX_ENTRY_BYTES or outside the zip is left out
 * (`text_error` names the first); one that inflates past the zip guards refuses the whole file
 * (`too-large`), as its central directory would have. An encrypted book's text is not read.
 */
async function readEpubText(zip: EpubZip, opfPath: string, opf: OpfPackage, encrypted: boolean, opts: DocumentOptions): Promise<TextOutcome> {
  if (encrypted) return { error: 'the book is encrypted (DRM): its text cannot be read' };
  const collector = new TextCollector(opts.textMaxChars);
  const deadline = Date.now() + opts.timeoutMs;
  let error: string | undefined;
  let failure: unknown;
  const leftOut = (what: string, err?: unknown) => {
    error ??= what;
    failure ??= err;
  };
  for (const item of spineTextItems(opf)) {
    if (collector.full) break;
    if (Date.now() > deadline) {
      collector.markTruncated();
      leftOut(`reading the text took longer than ${seconds(opts.timeoutMs)} s`);
      break;
    }
    let itemPath: string;
    try {
      itemPath = resolveHref(opfPath, item.href);
    } catch (err) {
      if (!(err instanceof PermanentJobError)) throw err;
      leftOut(`a chapter's text is left out: ${err.message}`);
      continue;
    }
    const name = zip.find(itemPath);
    if (!name) {
      leftOut(`${itemPath} is missing from the EPUB`);
      continue;
    }
    if ((zip.declaredSize(name) ?? 0) > opts.epubMaxEntryBytes) {
      collector.markTruncated();
      leftOut(`${itemPath} is over the limit of ${opts.epubMaxEntryBytes} bytes; its text is left out`);
      continue;
    }
    let bytes: Buffer;
    try {
      bytes = await zip.read(name);
    } catch (err) {
      // A bomb (too-large) refuses the file; the machine's own trouble (not a PermanentJobError) is retried.
      if (!(err instanceof PermanentJobError) || err.code === 'too-large') throw err;
      collector.markTruncated();
      leftOut(`${err.message}; its text is left out`, err);
      continue;
    }
    const chapter = xhtmlToText(xmlText(bytes), 4 * opts.textMaxChars + 64 * 1024);
    collector.add(chapter.text);
    if (!chapter.complete) collector.markTruncated();
  }
  return { ...collector.result(), ...(error ? { error } : {}), ...(failure !== undefined ? { failure } : {}) };
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
