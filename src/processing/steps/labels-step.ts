import fs from 'node:fs/promises';
import path from 'node:path';
import type { Settings } from '../../config/settings.js';
import { fromJson, nowIso, toJson } from '../../db/schema.js';
import { writeWithEvents } from '../../events/media-events.js';
import { writeAssetLabels, type LabelInput } from '../../labels/asset-labels.js';
import { foldText, labelsFromMatches, type Embed, type MatchableEntry, type TextPiece } from '../../labels/text-matching.js';
import { byMeaning, embedderOf, entriesToMatch, labelsFromText } from '../labeling/bank-matching.js';
import { ModerationService } from '../../moderation/moderation-service.js';
import type { Job } from '../../queue/queue.js';
import { PermanentJobError } from '../../shared/errors.js';
import { mediaPrefix } from '../../storage/layout.js';
import { clearLeftovers, makeWorkDir, mediaFolderIn, removeScratch } from '../../storage/scratch.js';
import { labelsFromFrames, type FrameLook } from '../labeling/aggregate.js';
import { sourceFor, streamVideoFrames, thumbnailTimes, type FrameToLook } from '../labeling/frames.js';
import type { VisionModels } from '../labeling/vision.js';
import type { MediaToProcess } from '../media-to-process.js';
import { ModelError } from '../../models/model-host.js';
import { publicReason } from '../public-reason.js';
import type { StepDeps } from './scratch-step.js';

export type LabelingSettings = Pick<
  Settings,
  | 'labelingFps'
  | 'labelingThreshold'
  | 'labelingObjectThreshold'
  | 'labelingSource'
  | 'labelingMaxFrames'
  | 'labelingMatchThreshold'
  | 'labelingMatchMaxTerms'
  | 'moderationDefaultThreshold'
  | 'ffmpegTimeout'
  | 'jobAttempts'
>;

/** The labeling stage's state, in file_metadata.labeling (`pending` while file_metadata.pending lists `labels`). */
export interface LabelingRecord {
  state: 'done' | 'failed';
  at: string;
  source?: string;
  frames?: number;
  labels?: number;
  ms?: number;
  reason?: string;
  /** The recompute request (file_metadata.labeling_request) this run served: it read the media after it. */
  request?: number;
  /** Distinct lines of on-screen text read. */
  text_lines?: number;
}

/**
 * The labeling stage: the local vision models look at the media (a video's frames, an image's
 * or a document's poster), their labels replace the media's earlier `model` labels (with
 * frames, counts and confidences; bank statistics follow), and moderation decides: a `pending`
 * media is published, or held when a moderation label meets its threshold. A failure leaves
 * the media ready and, when it was waiting, still `pending` (nothing unmoderated is shown);
 * `POST /media/{id}/labels/recompute` tries again.
 */
export async function runLabelsStep(deps: StepDeps<LabelingSettings>, media: MediaToProcess, job: Job, models: VisionModels): Promise<void> {
  const { db, store, settings } = deps;
  const started = Date.now();
  const row = await db.selectFrom('mediaassets').select(['file_metadata']).where('id', '=', media.id).executeTakeFirstOrThrow();
  const meta = fromJson<Record<string, any>>(row.file_metadata, {});
  const mediaDir = mediaFolderIn(store, { tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id });
  await clearLeftovers(mediaDir, ['labels']);
  const work = await makeWorkDir(mediaDir, 'labels');
  const source = sourceFor(media.kind, settings.labelingSource, String(meta.original?.mime_type ?? ''));
  const request = Number(meta.labeling_request ?? 0);
  try {
    const frames: FrameToLook[] = [];
    const looks = await lookAt(deps, media, meta, source, work, models, frames);
    deps.signal?.throwIfAborted();
    // Nothing looked at is not "nothing found": the media stays waiting for moderation.
    if (!looks.length) throw new PermanentJobError('there was no picture of the media to look at (are posters turned off?)', 'labeling-failed');
    const inputs = labelsFromFrames(looks, { objects: settings.labelingObjectThreshold, labels: settings.labelingThreshold });
    const record: LabelingRecord = { state: 'done', at: nowIso(), source, frames: looks.length, labels: inputs.length, request };
    const target = { tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id };
    const write = (bySource: Partial<Record<'model' | 'caption', LabelInput[]>>) =>
      writeWithEvents(db, deps.changes, async (tx, announce) => {
        for (const [source, list] of Object.entries(bySource) as Array<['model' | 'caption', LabelInput[]]>) {
          const { labelIds } = await writeAssetLabels(tx, target, list, { replaceSource: source });
          announce({ tenantId: media.tenant_id, mediaId: media.id, type: 'labels', data: { added: labelIds, source } });
        }
      });
    // What the vision models saw, and bank entries found as words in what people wrote, decide first;
    // matches by meaning (the sentence encoder's process) and the text reader come after.
    const entries = await entriesToMatch(db, media.tenant_id, settings);
    const written = entries.length ? await writtenText(deps, media) : [];
    const captionWords = await labelsFromText(entries, written, 'caption', settings, undefined);
    await write({ model: inputs, caption: captionWords });
    const moderation = new ModerationService(db, deps.changes, settings.moderationDefaultThreshold);
    await moderation.evaluate(media.tenant_id, media.id, { modelsDone: true });
    const embed = embedderOf(models);
    if (embed && entries.length) {
      const caption = await labelsFromText(entries, written, 'caption', settings, embed);
      const extra = await modelLabelsByMeaning(entries, inputs, embed, settings);
      // Written again only when meaning found more than the words did.
      const more: Partial<Record<'model' | 'caption', LabelInput[]>> = {
        ...(caption.length > captionWords.length ? { caption } : {}),
        ...(extra.length ? { model: [...inputs, ...extra] } : {}),
      };
      if (Object.keys(more).length) {
        await write(more);
        if ([...caption.slice(captionWords.length), ...extra].some((l) => l.kind === 'moderation')) await moderation.evaluate(media.tenant_id, media.id);
      }
    }
    // On-screen text last: reading it is slower than seeing, and only bank entries found in it can hold.
    if (models.ocr && (media.kind === 'video' || media.kind === 'image')) {
      const read = await readText(deps, media, frames, models);
      if (read.labels.some((l) => l.kind === 'moderation')) await moderation.evaluate(media.tenant_id, media.id);
      record.text_lines = read.lines;
    }
    // Done only once moderation has decided: whoever sees `done` sees the decision too.
    await recordLabeling(deps, media, { ...record, ms: Date.now() - started });
  } catch (err) {
    if (err instanceof PermanentJobError || job.attempt >= settings.jobAttempts) {
      const failed: LabelingRecord = { state: 'failed', at: nowIso(), source, reason: publicReason(err, job.attempt, deps.layout.root), request };
      await recordLabeling(deps, media, failed);
      if (err instanceof PermanentJobError) return;
    }
    throw err;
  } finally {
    await removeScratch(work);
  }
}

/**
 * Reads the on-screen text of the frames the vision models saw (OCR): stored as the media's text
 * (searchable), and the tenant's bank entries found in it become labels of source `ocr`, at the
 * times they were on screen. Returns those labels and how many distinct lines were read.
 */
async function readText(
  deps: StepDeps<LabelingSettings>,
  media: MediaToProcess,
  frames: readonly FrameToLook[],
  models: VisionModels,
): Promise<{ labels: LabelInput[]; lines: number }> {
  const { db, settings } = deps;
  const pieces: TextPiece[] = [];
  for (const f of frames) {
    deps.signal?.throwIfAborted();
    const result = await models.ocr!(f.file);
    for (const line of result.lines) if (line.text.trim()) pieces.push({ text: line.text.trim(), t: f.t });
  }
  // A subtitle on screen for five seconds is read five times: the text keeps it once.
  const distinct = [...new Set(pieces.map((p) => p.text))];
  const labels = await labelsFromText(await entriesToMatch(db, media.tenant_id, settings), pieces, 'ocr', settings, embedderOf(models));
  const text = distinct.join('\n');
  await writeWithEvents(db, deps.changes, async (tx, announce) => {
    const { labelIds } = await writeAssetLabels(tx, { tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id }, labels, { replaceSource: 'ocr' });
    announce({ tenantId: media.tenant_id, mediaId: media.id, type: 'labels', data: { added: labelIds, source: 'ocr' } });
    if (text) {
      await tx
        .insertInto('document_texts')
        .values({ media_id: media.id, tenant_id: media.tenant_id, text, updated_at: nowIso() })
        .onConflict((oc) => oc.column('media_id').doUpdateSet({ text, updated_at: nowIso() }))
        .execute();
    } else {
      await tx.deleteFrom('document_texts').where('media_id', '=', media.id).execute();
    }
    announce({ tenantId: media.tenant_id, mediaId: media.id, type: 'text' });
  });
  return { labels, lines: distinct.length };
}

/** Records how labeling went in file_metadata.labeling and takes it off pending, with its event. */
async function recordLabeling(deps: StepDeps<LabelingSettings>, media: MediaToProcess, record: LabelingRecord): Promise<void> {
  await writeWithEvents(deps.db, deps.changes, async (tx, announce) => {
    const current = await tx.selectFrom('mediaassets').select('file_metadata').where('id', '=', media.id).executeTakeFirst();
    if (!current) return;
    const m = fromJson<Record<string, any>>(current.file_metadata, {});
    await tx
      .updateTable('mediaassets')
      .set({ file_metadata: toJson({ ...m, labeling: record, pending: withoutLabels(m.pending) }), updated_at: nowIso() })
      .where('id', '=', media.id)
      .execute();
    announce({ tenantId: media.tenant_id, mediaId: media.id, type: 'artifacts' });
  });
}

/** What people wrote about the media: title, description, caption, tags and uploaded caption tracks. */
async function writtenText(deps: StepDeps<LabelingSettings>, media: MediaToProcess): Promise<TextPiece[]> {
  const { db } = deps;
  const row = await db
    .selectFrom('mediaassets')
    .select(['title', 'description', 'caption', 'user_tags'])
    .where('id', '=', media.id)
    .where('tenant_id', '=', media.tenant_id)
    .executeTakeFirst();
  const tracks = await db
    .selectFrom('caption_tracks')
    .select('text')
    .where('tenant_id', '=', media.tenant_id)
    .where('media_id', '=', media.id)
    .where('source', '=', 'user')
    .execute();
  return [
    ...[row?.title, row?.description, row?.caption].filter((t): t is string => !!t).map((text) => ({ text })),
    ...fromJson<string[]>(row?.user_tags ?? null, []).map((text) => ({ text })),
    ...tracks.flatMap((t) => t.text.split('\n')).map((text) => ({ text })),
  ];
}

/** Entries close in meaning to the models' general labels (a "Cycling" entry for a detected bicycle), as labels of source `model`. */
async function modelLabelsByMeaning(
  entries: readonly MatchableEntry[],
  modelLabels: readonly LabelInput[],
  embed: Embed,
  settings: LabelingSettings,
): Promise<LabelInput[]> {
  // Entries named like a model label are that label already (see the label hierarchy).
  const labelNames = new Set(modelLabels.map((l) => foldText(l.name)));
  const pieces = modelLabels.filter((l) => l.kind === 'general').map((l) => ({ text: foldText(l.name) }));
  const meant = await byMeaning(
    entries.filter((e) => !labelNames.has(foldText(e.name))),
    pieces,
    embed,
    settings,
  );
  return labelsFromMatches(meant, entries, 'model').filter((l) => !labelNames.has(foldText(l.name)));
}

const withoutLabels = (pending: unknown): unknown[] => (Array.isArray(pending) ? pending.filter((p) => p !== 'labels') : []);

/** Runs the models on each frame of the media, one at a time (the model process is shared by the worker's jobs). */
async function lookAt(
  deps: StepDeps<LabelingSettings>,
  media: MediaToProcess,
  meta: Record<string, any>,
  source: ReturnType<typeof sourceFor>,
  work: string,
  models: VisionModels,
  kept: FrameToLook[],
): Promise<FrameLook[]> {
  const { store, settings } = deps;
  const prefix = mediaPrefix({ tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id });
  const stills = path.join(work, 'stills');
  const look = async (frames: Iterable<FrameToLook> | AsyncIterable<FrameToLook>): Promise<FrameLook[]> => {
    const out: FrameLook[] = [];
    for await (const f of frames) {
      deps.signal?.throwIfAborted();
      // Kept for the text reader, which comes after moderation has decided: a lent file is copied (the store may take it back).
      if (f.file.startsWith(work + path.sep)) kept.push(f);
      else {
        await fs.mkdir(stills, { recursive: true });
        const copy = path.join(stills, `${kept.length}${path.extname(f.file)}`);
        await fs.copyFile(f.file, copy);
        kept.push({ t: f.t, file: copy });
      }
      const seen = await models.vision(f.file, { minObjectScore: settings.labelingObjectThreshold }).catch((err: unknown) => {
        // A picture the models cannot read, or model files that fail their check, fail the same way on every attempt.
        if (err instanceof ModelError && (err.code === 'bad-input' || err.code === 'model-files')) throw new PermanentJobError(err.message, 'labeling-failed');
        throw err;
      });
      out.push({ t: f.t, objects: seen.objects, nsfw: seen.nsfw });
    }
    return out;
  };
  const duration = Number(meta.probe?.duration ?? meta.duration ?? 0) || null;
  if (source === 'original') {
    return store.withLocalFile(String(meta.original?.path ?? ''), (file) => look([{ t: 0, file }]));
  }
  if (source === 'frames') {
    const original = String(meta.original?.path ?? '');
    return store.withLocalFile(original, async (file) =>
      look(
        streamVideoFrames(file, path.join(work, 'frames'), {
          fps: settings.labelingFps,
          duration,
          maxFrames: settings.labelingMaxFrames,
          timeoutMs: settings.ffmpegTimeout,
          ...(deps.signal ? { signal: deps.signal } : {}),
        }),
      ),
    );
  }
  const artifacts = meta.artifacts ?? {};
  if (source === 'thumbnails' && Array.isArray(artifacts.thumbnails) && artifacts.thumbnails.length && duration) {
    const keys: string[] = artifacts.thumbnails;
    const times = thumbnailTimes(keys.length, duration);
    const out: FrameLook[] = [];
    for (const [i, key] of keys.entries()) {
      out.push(...(await store.withLocalFile(`${prefix}/${key}`, (file) => look([{ t: times[i]!, file }]))));
    }
    return out;
  }
  // The poster: a video's (a tenth into it), an image's or a document's first page; the picture itself when there is none.
  const still: string | undefined = artifacts.poster?.jpeg ?? artifacts.poster?.webp ?? artifacts.webp;
  if (!still) return [];
  const t = media.kind === 'video' && duration ? Math.round(duration * 100) / 1000 : 0;
  return store.withLocalFile(`${prefix}/${still}`, (file) => look([{ t, file }]));
}
