import type { Db } from '../../db/database.js';
import type { ArtifactPaths } from '../../media/delivery.js';
import { fromJson, nowIso, toJson } from '../../db/schema.js';
import { removePath } from '../../storage/files.js';
import { safeJoin, type StorageLayout } from '../../storage/layout.js';
import { deriveImage, DEFAULT_IMAGE_OPTIONS, type DerivedImage } from '../image/derive-image.js';
import type { MediaToProcess } from '../media-worker.js';
import { artifactApiUrls } from './artifact-urls.js';
import { clearLeftovers, makeWorkDir, publishFolders, removeUnpublished } from './publish.js';

export interface ImageStepSettings {
  apiPrefix: string;
  enableWebp: boolean;
  enableThumbnails: boolean;
  enablePosters: boolean;
  /** Longest side in px. */
  imageThumbnailSize: number;
  imagePosterSize: number;
  imageMaxPixels: number;
  /** ms, for the whole derivation. */
  imageTimeout: number;
}

const FOLDERS = ['webp', 'thumbnails', 'posters'] as const;

function artifactsOf(f: DerivedImage['files']): ArtifactPaths {
  return {
    ...(f.webp ? { webp: f.webp } : {}),
    ...(f.thumbnail ? { thumbnails: [f.thumbnail] } : {}),
    ...(f.posterWebp || f.posterJpeg ? { poster: { ...(f.posterWebp ? { webp: f.posterWebp } : {}), ...(f.posterJpeg ? { jpeg: f.posterJpeg } : {}) } } : {}),
  };
}

/**
 * The image step: the full image as WebP, a thumbnail and a poster, made with sharp inside a
 * scratch folder, published folder by folder, and the facts and artifact paths recorded in
 * file_metadata. Folders an earlier run filled and this one does not (a setting turned off)
 * are removed.
 */
export async function runImageStep(deps: { db: Db; layout: StorageLayout; settings: ImageStepSettings }, media: MediaToProcess): Promise<void> {
  const { db, layout, settings } = deps;
  const row = await db.selectFrom('mediaassets').select(['file_metadata']).where('id', '=', media.id).executeTakeFirstOrThrow();
  const meta = fromJson<Record<string, any>>(row.file_metadata, {});
  const ref = { tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id };
  const mediaDir = layout.mediaDir(ref);
  const source = safeJoin(layout.root, String(meta.original?.path ?? ''));
  await clearLeftovers(mediaDir);
  const work = await makeWorkDir(mediaDir);
  try {
    const result = await deriveImage(source, work, {
      ...DEFAULT_IMAGE_OPTIONS,
      webp: settings.enableWebp,
      thumbnails: settings.enableThumbnails,
      posters: settings.enablePosters,
      thumbnailSize: settings.imageThumbnailSize,
      posterSize: settings.imagePosterSize,
      maxPixels: settings.imageMaxPixels,
      timeoutMs: settings.imageTimeout,
    });
    const published = await publishFolders(work, mediaDir, FOLDERS);
    const artifacts = artifactsOf(result.files);
    const next = {
      ...meta,
      // The seed's names, at the top level: the size as displayed.
      width: result.facts.width,
      height: result.facts.height,
      image: result.facts,
      artifacts,
      urls: artifactApiUrls(settings.apiPrefix, media.id, artifacts),
      pending: [],
      processed_at: nowIso(),
      timings: { image_ms: result.ms },
    };
    await db.updateTable('mediaassets').set({ file_metadata: toJson(next), updated_at: nowIso() }).where('id', '=', media.id).execute();
    await removeUnpublished(mediaDir, FOLDERS, published);
  } finally {
    await removePath(work);
  }
}
