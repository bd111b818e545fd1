import path from 'node:path';
import type { Settings } from '../../config/settings.js';
import { fromJson, nowIso, toJson } from '../../db/schema.js';
import { writeWithEvents } from '../../events/media-events.js';
import { writeAssetLabels } from '../../labels/asset-labels.js';
import type { TextPiece } from '../../labels/text-matching.js';
import { embedderOf, entriesToMatch, labelsFromText } from '../labeling/bank-matching.js';
import { formatVttTime } from '../../media/captions-format.js';
import { CaptionService } from '../../media/captions-service.js';
import { ModerationService } from '../../moderation/moderation-service.js';
import type { Job } from '../../queue/queue.js';
import { PermanentJobError } from '../../shared/errors.js';
import { ModelError } from '../../models/model-host.js';
import { clearLeftovers, makeWorkDir, mediaFolderIn, removeScratch } from '../../storage/scratch.js';
import { hardenedInputArgs } from '../../tools/ffmpeg-hardening.js';
import { runFfmpegStep } from '../ffmpeg-step.js';
import type { SpeechModels } from '../labeling/speech.js';
import type { VisionModels } from '../labeling/vision.js';
import type { MediaToProcess } from '../media-to-process.js';
import { publicReason } from '../public-reason.js';
import type { StepDeps } from './scratch-step.js';

export type TranscriptSettings = Pick<
  Settings,
  'transcriptModel' | 'transcriptLanguage' | 'labelingMatchThreshold' | 'labelingMatchMaxTerms' | 'moderationDefaultThreshold' | 'ffmpegTimeout' | 'jobAttempts'
>;

/** How the transcript went, in file_metadata.transcript. */
export interface TranscriptRecord {
  state: 'done' | 'failed';
  at: string;
  language?: string;
  model?: string;
  cues?: number;
  /** Seconds of speech found (what was transcribed). */
  speech_seconds?: number;
  /** Stretches that took too long and gave no text. */
  timed_out?: number;
  ms?: number;
  reason?: string;
}

/** A language or sound the models refuse, or model files that fail their check, fail the same way on every attempt. */
function permanentIfInput(err: unknown): never {
  if (err instanceof ModelError && (err.code === 'bad-input' || err.code === 'model-files')) throw new PermanentJobError(err.message, 'transcript-failed');
  throw err;
}

/** One cue's text as WebVTT holds it: one line, with the three characters WebVTT reserves escaped. */
function cueText(text: string): string {
  return text.replace(/\s+/g, ' ').trim().replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

export function cuesToVtt(cues: ReadonlyArray<{ start: number; end: number; text: string }>): string {
  const body = cues
    .filter((c) => c.text.trim())
    .map((c, i) => `${i + 1}\n${formatVttTime(c.start)} --> ${formatVttTime(Math.max(c.end, c.start + 0.5))}\n${cueText(c.text)}\n`)
    .join('\n');
  return `WEBVTT\n\n${body}`;
}

/**
 * The transcript of a video's or audio's speech (ENABLE_TRANSCRIPTS): the sound decoded once to
 * 16 kHz mono, voice activity finds where speech is, Whisper transcribes only there, and the
 * result becomes a caption track (kind `captions`, source `auto`; an uploaded track of its
 * language wins) listed in the HLS master and the MPD and searchable. The tenant's bank entries
 * found in it become labels of source `transcript`. A media without sound, or without speech,
 * gets no track (nothing made up).
 */
export async function runTranscriptStep(
  deps: StepDeps<TranscriptSettings>,
  media: MediaToProcess,
  job: Job,
  models: SpeechModels & Partial<Pick<VisionModels, 'embed'>>,
): Promise<void> {
  const { db, store, settings } = deps;
  const started = Date.now();
  const row = await db.selectFrom('mediaassets').select(['file_metadata']).where('id', '=', media.id).executeTakeFirstOrThrow();
  const meta = fromJson<Record<string, any>>(row.file_metadata, {});
  // The language the upload declared, else the server's.
  const language = String(meta.language ?? settings.transcriptLanguage);
  const mediaDir = mediaFolderIn(store, { tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id });
  await clearLeftovers(mediaDir, ['transcript']);
  const work = await makeWorkDir(mediaDir, 'transcript');
  try {
    const hasSound = meta.probe ? meta.probe.audio !== null && meta.probe.audio !== undefined : true;
    let cues: Array<{ start: number; end: number; text: string }> = [];
    let speechSeconds = 0;
    let timedOut = 0;
    if (hasSound) {
      const pcm = path.join(work, 'speech.f32');
      await store.withLocalFile(String(meta.original?.path ?? ''), (source) =>
        runFfmpegStep(
          [
            ...['-hide_banner', '-nostdin', '-loglevel', 'error'],
            ...hardenedInputArgs(),
            ...['-i', source, '-map', '0:a:0', '-vn', '-sn', '-dn', '-ac', '1', '-ar', '16000', '-f', 'f32le', pcm],
          ],
          settings.ffmpegTimeout,
          'decoding the sound for the transcript',
          'audio',
        ),
      );
      deps.signal?.throwIfAborted();
      const { segments } = await models.speech(pcm).catch(permanentIfInput);
      speechSeconds = segments.reduce((s, w) => s + (w.end - w.start), 0);
      if (segments.length) {
        // Whisper knows languages by their primary code (pt for pt-BR); the track keeps the tag given.
        const spoken = language.split('-')[0]!.toLowerCase();
        const result = await models.transcribe(pcm, { windows: segments, model: settings.transcriptModel, language: spoken }).catch(permanentIfInput);
        cues = result.cues.filter((c) => c.text.trim());
        timedOut = result.timedOut.length;
      }
    }
    deps.signal?.throwIfAborted();
    const plainText = cues.map((c) => c.text.trim()).join('\n');
    await new CaptionService(db, store, deps.changes).putTranscribed(media, {
      language,
      vtt: cues.length ? cuesToVtt(cues) : null,
      plainText,
      cueCount: cues.length,
    });
    const pieces: TextPiece[] = cues.map((c) => ({ text: c.text, t: Math.round(c.start * 1000) / 1000 }));
    const labels = await labelsFromText(await entriesToMatch(db, media.tenant_id, settings), pieces, 'transcript', settings, embedderOf(models));
    const record: TranscriptRecord = {
      state: 'done',
      at: nowIso(),
      language,
      model: settings.transcriptModel,
      cues: cues.length,
      speech_seconds: Math.round(speechSeconds * 10) / 10,
      timed_out: timedOut,
      ms: Date.now() - started,
    };
    await writeWithEvents(db, deps.changes, async (tx, announce) => {
      const { labelIds } = await writeAssetLabels(tx, { tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id }, labels, {
        replaceSource: 'transcript',
      });
      announce({ tenantId: media.tenant_id, mediaId: media.id, type: 'labels', data: { added: labelIds, source: 'transcript' } });
      await recordTranscript(tx, media, record);
      announce({ tenantId: media.tenant_id, mediaId: media.id, type: 'artifacts' });
    });
    if (labels.some((l) => l.kind === 'moderation')) {
      await new ModerationService(db, deps.changes, settings.moderationDefaultThreshold).evaluate(media.tenant_id, media.id);
    }
  } catch (err) {
    if (err instanceof PermanentJobError || job.attempt >= settings.jobAttempts) {
      const failed: TranscriptRecord = { state: 'failed', at: nowIso(), language, reason: publicReason(err, job.attempt, deps.layout.root) };
      await writeWithEvents(db, deps.changes, async (tx, announce) => {
        await recordTranscript(tx, media, failed);
        announce({ tenantId: media.tenant_id, mediaId: media.id, type: 'artifacts' });
      });
      if (err instanceof PermanentJobError) return;
    }
    throw err;
  } finally {
    await removeScratch(work);
  }
}

async function recordTranscript(tx: StepDeps<unknown>['db'], media: MediaToProcess, record: TranscriptRecord): Promise<void> {
  const current = await tx.selectFrom('mediaassets').select('file_metadata').where('id', '=', media.id).executeTakeFirst();
  if (!current) return;
  const m = fromJson<Record<string, any>>(current.file_metadata, {});
  const pending = Array.isArray(m.pending) ? m.pending.filter((p: unknown) => p !== 'transcript') : [];
  await tx
    .updateTable('mediaassets')
    .set({ file_metadata: toJson({ ...m, transcript: record, pending }), updated_at: nowIso() })
    .where('id', '=', media.id)
    .execute();
}
