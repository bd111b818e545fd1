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
  /** ms, per pdfinfo / pdftoppm run. */
  documentTimeout: number;
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
 * The document step: PDF or EPUB facts, and a poster and thumbnail from the first page or the
 * cover, made in a scratch folder, published folder by folder, and recorded in file_metadata.
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
    });
    const f = result.files;
    const poster = imagePair(f.posterJpeg, f.posterWebp);
    const { facts } = result;
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
