import type { Db } from '../../db/database.js';
import { nowIso } from '../../db/schema.js';
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
 * A document's text as this run read it: replaced, or removed when there is none (text turned
 * off, none in the file, or it could not be read), so the row always matches file_metadata.
 */
async function saveDocumentText(tx: Db, media: MediaToProcess, text: string | undefined): Promise<void> {
  if (!text) {
    await tx.deleteFrom('document_texts').where('media_id', '=', media.id).execute();
    return;
  }
  await tx
    .insertInto('document_texts')
    .values({ media_id: media.id, tenant_id: media.tenant_id, text, updated_at: nowIso() })
    .onConflict((oc) => oc.column('media_id').doUpdateSet({ text, updated_at: nowIso() }))
    .execute();
}

/**
 * The document step: PDF or EPUB facts, a poster and thumbnail from the first page or the
 * cover (drawn from the title and author when an EPUB has none), made in a scratch folder,
 * published folder by folder, and recorded in file_metadata; the document's text goes to
 * `document_texts` in the same transaction, with a `text` event that has the search document
 * rebuilt. Text that cannot be read is logged and recorded (`document.text_error`), never a
 * failure of the media.
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
      also: async (tx, record) => {
        await saveDocumentText(tx, media, result.text);
        record({ tenantId: media.tenant_id, mediaId: media.id, type: 'text' });
      },
    };
  });
}
