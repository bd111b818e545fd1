import fs from 'node:fs/promises';
import path from 'node:path';
import type { Settings } from '../../config/settings.js';
import { fromJson, nowIso, toJson } from '../../db/schema.js';
import { writeWithEvents } from '../../events/media-events.js';
import { writeAssetLabels, type LabelInput } from '../../labels/asset-labels.js';
import { findByMeaning, findPhrases, foldText, labelsFromMatches, matchableEntries, type TextPiece } from '../../labels/text-matching.js';
import { modelBanks } from '../labeling/taxonomy.js';
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
    // What the vision models saw decides first: the sentence encoder and the text reader come after.
    await write({ model: inputs });
    const moderation = new ModerationService(db, deps.changes, settings.moderationDefaultThreshold);
    await moderation.evaluate(media.tenant_id, media.id, { modelsDone: true });
    const matched = await bankMatches(deps, media, inputs, models);
    await write(matched);
    if ([...matched.caption, ...(matched.model ?? [])].some((l) => l.kind === 'moderation')) await moderation.evaluate(media.tenant_id, media.id);
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
  const entries = await matchableEntries(db, media.tenant_id, settings.labelingMatchThreshold, MODEL_BANKS);
  const found = findPhrases(entries, pieces);
  const byMeaning =
    models.embed && pieces.length
      ? await findByMeaning(
          entries.filter((e) => !found.some((f) => f.entry === e.name && f.kind === e.kind)),
          pieces,
          async (texts) => (await models.embed!(texts)).vectors,
          vectors,
          { maxTerms: settings.labelingMatchMaxTerms },
        )
      : [];
  const labels = labelsFromMatches([...found, ...byMeaning], entries, 'ocr');
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

/** The global banks of the models' own taxonomy: their entries are what the models name, not words to look for in text. */
const MODEL_BANKS = modelBanks().map((b) => b.name);
/** Vectors of bank terms and texts, per worker process (a tenant's banks are encoded once, not once per media; bounded in findByMeaning). */
const vectors = new Map<string, number[]>();

/**
 * The tenant's bank entries found in what people wrote about the media (title, description,
 * caption, tags, uploaded caption tracks: source `caption`), and entries close in meaning to the
 * models' labels (source `model`, added to theirs) — found as words first, then by meaning when
 * the model process has a sentence encoder.
 */
async function bankMatches(
  deps: StepDeps<LabelingSettings>,
  media: MediaToProcess,
  modelLabels: readonly LabelInput[],
  models: VisionModels,
): Promise<{ caption: LabelInput[]; model?: LabelInput[] }> {
  const { db, settings } = deps;
  const entries = await matchableEntries(db, media.tenant_id, settings.labelingMatchThreshold, MODEL_BANKS);
  if (!entries.length) return { caption: [] };
  const row = await db.selectFrom('mediaassets').select(['title', 'description', 'caption', 'user_tags']).where('id', '=', media.id).executeTakeFirst();
  const tracks = await db
    .selectFrom('caption_tracks')
    .select('text')
    .where('tenant_id', '=', media.tenant_id)
    .where('media_id', '=', media.id)
    .where('source', '=', 'user')
    .execute();
  const written: TextPiece[] = [
    ...[row?.title, row?.description, row?.caption].filter((t): t is string => !!t).map((text) => ({ text })),
    ...fromJson<string[]>(row?.user_tags ?? null, []).map((text) => ({ text })),
    ...tracks.flatMap((t) => t.text.split('\n')).map((text) => ({ text })),
  ];
  const found = findPhrases(entries, written);
  const embed = models.embed ? async (texts: string[]) => (await models.embed!(texts)).vectors : undefined;
  if (!embed) return { caption: labelsFromMatches(found, entries, 'caption') };
  const opts = { maxTerms: settings.labelingMatchMaxTerms };
  const unmatched = entries.filter((e) => !found.some((f) => f.entry === e.name && f.kind === e.kind));
  const captionByMeaning = await findByMeaning(unmatched, written, embed, vectors, opts);
  // Entries named like a model label are that label already (see the label hierarchy).
  const labelNames = new Set(modelLabels.map((l) => foldText(l.name)));
  const modelPieces = modelLabels.filter((l) => l.kind === 'general').map((l) => ({ text: foldText(l.name) }));
  const byMeaning = await findByMeaning(
    entries.filter((e) => !labelNames.has(foldText(e.name))),
    modelPieces,
    embed,
    vectors,
    opts,
  );
  const extra = labelsFromMatches(byMeaning, entries, 'model').filter((l) => !labelNames.has(foldText(l.name)));
  return { caption: labelsFromMatches([...found, ...captionByMeaning], entries, 'caption'), model: [...modelLabels, ...extra] };
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
