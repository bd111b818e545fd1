import type { Db } from '../../db/database.js';
import { fromJson, nowIso, toJson } from '../../db/schema.js';
import type { ArtifactPaths } from '../../media/delivery.js';
import { PermanentJobError } from '../../queue/queue.js';
import { removePath } from '../../storage/files.js';
import { safeJoin, type StorageLayout } from '../../storage/layout.js';
import { deriveEpub, derivePdf, type DocumentOptions } from '../document/derive-document.js';
import type { MediaToProcess } from '../media-worker.js';
import { artifactApiUrls } from './artifact-urls.js';
import { clearLeftovers, makeWorkDir, publishFolders, removeUnpublished } from './publish.js';

export interface DocumentStepSettings {
  apiPrefix: string;
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

const FOLDERS = ['thumbnails', 'posters'] as const;

const DERIVERS: Record<string, (source: string, workDir: string, opts: DocumentOptions) => ReturnType<typeof derivePdf>> = {
  'application/pdf': derivePdf,
  'application/epub+zip': deriveEpub,
};

/**
 * The document step: PDF or EPUB facts, and a poster and thumbnail from the first page or the
 * cover, made in a scratch folder, published folder by folder, and recorded in file_metadata.
 */
export async function runDocumentStep(deps: { db: Db; layout: StorageLayout; settings: DocumentStepSettings }, media: MediaToProcess): Promise<void> {
  const { db, layout, settings } = deps;
  const row = await db.selectFrom('mediaassets').select(['file_metadata']).where('id', '=', media.id).executeTakeFirstOrThrow();
  const meta = fromJson<Record<string, any>>(row.file_metadata, {});
  const mimeType = String(meta.original?.mime_type ?? '');
  const derive = Object.hasOwn(DERIVERS, mimeType) ? DERIVERS[mimeType] : undefined;
  if (!derive) throw new PermanentJobError(`documents of type ${mimeType || '(unknown)'} are not processed`, 'unreadable-media');
  const ref = { tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id };
  const mediaDir = layout.mediaDir(ref);
  const source = safeJoin(layout.root, String(meta.original?.path ?? ''));
  await clearLeftovers(mediaDir);
  const work = await makeWorkDir(mediaDir);
  try {
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
    const published = await publishFolders(work, mediaDir, FOLDERS);
    const f = result.files;
    const artifacts: ArtifactPaths = {
      ...(f.thumbnail ? { thumbnails: [f.thumbnail] } : {}),
      ...(f.posterJpeg || f.posterWebp ? { poster: { ...(f.posterJpeg ? { jpeg: f.posterJpeg } : {}), ...(f.posterWebp ? { webp: f.posterWebp } : {}) } } : {}),
    };
    const { facts } = result;
    const next = {
      ...meta,
      ...(facts.pages !== undefined ? { pages: facts.pages } : {}),
      ...(facts.title ? { title: facts.title } : {}),
      ...(facts.author ? { author: facts.author } : {}),
      document: facts,
      artifacts,
      urls: artifactApiUrls(settings.apiPrefix, media.id, artifacts),
      pending: [],
      processed_at: nowIso(),
      timings: { document_ms: result.ms },
    };
    await db.updateTable('mediaassets').set({ file_metadata: toJson(next), updated_at: nowIso() }).where('id', '=', media.id).execute();
    // A reprocess that makes no poster (or thumbnail) this time drops the previous one.
    await removeUnpublished(mediaDir, FOLDERS, published);
  } finally {
    await removePath(work);
  }
}
