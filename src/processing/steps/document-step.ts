import { PermanentJobError } from '../../shared/errors.js';
import type { MediaFolder } from '../../storage/layout.js';
import { deriveEpub, derivePdf, type DocumentOptions } from '../document/derive-document.js';
import type { MediaToProcess } from '../media-to-process.js';
import { imagePair } from './image-pair.js';
import { runInScratch, type StepDeps } from './scratch-step.js';

export interface DocumentStepSettings {
  enableThumbnails: boolean;
  enablePosters: boolean;
  imageThumbnailSize: number;
  imagePosterSize: number;
  /** ms, per pdfinfo / pdftoppm / pdftotext run, and for reading an EPUB's text. */
  documentTimeout: number;
  documentTextMaxChars: number;
  imageMaxPixels: number;
  epubMaxEntries: number;
  epubMaxEntryBytes: number;
  epubMaxTotalBytes: number;
  epubMaxRatio: number;
}

const DERIVERS: Record<string, (source: string, workDir: string, opts: DocumentOptions) => ReturnType<typeof derivePdf>> = {
  'application/pdf': derivePdf,
  'application/epub+zip': deriveEpub,
};

/**
 * The document step: PDF or EPUB facts and text, and a poster and thumbnail from the first page
 * or the cover (drawn from the title and author when an EPUB has none), made in a scratch folder,
 * published folder by folder, and recorded in file_metadata. Text that cannot be read is logged
 * and recorded (`document.text_error`), never a failure of the media.
 */
export async function runDocumentStep(deps: StepDeps<DocumentStepSettings>, media: MediaToProcess, folders: readonly MediaFolder[]): Promise<void> {
  const { settings } = deps;
  await runInScratch(deps, media, folders, async ({ source, work, meta }) => {
    const mimeType = String(meta.original?.mime_type ?? '');
    const derive = Object.hasOwn(DERIVERS, mimeType) ? DERIVERS[mimeType] : undefined;
    if (!derive) throw new PermanentJobError(`documents of type ${mimeType || '(unknown)'} are not processed`, 'unreadable-media');
    const result = await derive(source, work, {
      thumbnails: settings.enableThumbnails,
      posters: settings.enablePosters,
      thumbnailSize: settings.imageThumbnailSize,
      posterSize: settings.imagePosterSize,
      timeoutMs: settings.documentTimeout,
      maxPixels: settings.imageMaxPixels,
      epubMaxEntries: settings.epubMaxEntries,
      epubMaxEntryBytes: settings.epubMaxEntryBytes,
      epubMaxTotalBytes: settings.epubMaxTotalBytes,
      epubMaxRatio: settings.epubMaxRatio,
      textMaxChars: settings.documentTextMaxChars,
    });
    const f = result.files;
    const poster = imagePair(f.posterJpeg, f.posterWebp);
    const { facts } = result;
    if (facts.text_error) {
      deps.log?.warn({ err: result.textFailure, mediaId: media.id, reason: facts.text_error }, 'document text left out; the document is processed without it');
    }
    return {
      artifacts: { ...(f.thumbnail ? { thumbnails: [f.thumbnail] } : {}), ...(poster ? { poster } : {}) },
      metadata: {
        ...(facts.pages !== undefined ? { pages: facts.pages } : {}),
        ...(facts.title ? { title: facts.title } : {}),
        ...(facts.author ? { author: facts.author } : {}),
        document: facts,
        timings: { document_ms: result.ms },
      },
    };
  });
}
