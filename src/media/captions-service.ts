import type { Db } from '../db/database.js';
import { nowIso, type CaptionKind, type CaptionSource } from '../db/schema.js';
import { preparedQuery } from '../db/prepared.js';
import { AppError, notFound } from '../shared/errors.js';
import { newId } from '../shared/ids.js';
import { assertModerationVisible } from '../access/visibility.js';
import { joinKey, mediaPrefix, UnsafePathError } from '../storage/layout.js';
import { mediaFolderIn } from '../storage/scratch.js';
import type { MediaStore } from '../storage/store.js';
import type { Principal } from '../tenancy/principal.js';
import { CaptionFormatError, parseCaptions, type ParsedCaptions } from './captions-format.js';
import { applyCaptionTracks, captionFile, captionTrackRefs } from './captions-manifests.js';
import type { MediaChanges } from '../events/media-changes.js';
import { announce, writeRecording, type MediaEvent } from '../events/media-events.js';
import { assertOwnerOrAdmin } from '../access/ownership.js';

export const MAX_CAPTION_LABEL_LENGTH = 100;

export interface CaptionTrackView {
  language: string;
  label: string;
  kind: CaptionKind;
  /** `user`: uploaded; `auto`: transcribed from the media's speech. */
  source: CaptionSource;
  cue_count: number;
  created_at: string;
  updated_at: string;
}

/**
 * BCP 47 shape: language (2-3 letters, or 5-8 registered), optional extlang, script, region,
 * variants. Returned in canonical case (en-US, zh-Hant-TW), which is also the file name.
 */
const BCP47 = /^([a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{5,8})(-[a-z]{4})?(-(?:[a-z]{2}|\d{3}))?((?:-(?:[a-z\d]{5,8}|\d[a-z\d]{3}))*)$/i;

export function canonicalLanguage(raw: string): string {
  const m = BCP47.exec(raw.trim());
  if (!m || raw.length > 35) throw new AppError('validation-failed', `"${raw.slice(0, 40)}" is not a BCP 47 language tag such as en, fr-CA or zh-Hant`);
  const [, lang, script, region, variants] = m;
  return [
    lang!.toLowerCase(),
    script ? `-${script[1]!.toUpperCase()}${script.slice(2).toLowerCase()}` : '',
    region ? region.toUpperCase() : '',
    (variants ?? '').toLowerCase(),
  ].join('');
}

/** A label for a language in English ("French (Canada)"); the tag itself when unknown. */
export function defaultLabel(language: string): string {
  try {
    return new Intl.DisplayNames(['en'], { type: 'language', fallback: 'code' }).of(language) ?? language;
  } catch {
    return language;
  }
}

function cleanLabel(raw: string | undefined, language: string): string {
  if (raw === undefined) return defaultLabel(language);
  const label = raw.normalize('NFC').trim().replace(/\s+/g, ' ');
  if (!label || label.length > MAX_CAPTION_LABEL_LENGTH || /[\u0000-\u001f\u007f]/.test(label)) {
    throw new AppError('validation-failed', `label: 1-${MAX_CAPTION_LABEL_LENGTH} printable characters`);
  }
  return label;
}

/**
 * Caption tracks of ready videos: stored as WebVTT under the media's transcripts folder and
 * offered in its HLS master and DASH manifest. Only the owner or an admin may change them;
 * anyone of the tenant may list them (unless moderation hides the media); another tenant gets 404.
 */
export class CaptionService {
  constructor(
    private readonly db: Db,
    private readonly store: MediaStore,
    private readonly changes?: MediaChanges,
  ) {}

  private async media(p: Principal, mediaId: string) {
    const row = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id', 'user_id', 'kind', 'status', 'moderation_state'])
      .where('id', '=', mediaId)
      .where('tenant_id', '=', p.tenantId)
      .executeTakeFirst();
    if (!row) throw notFound('media');
    return row;
  }

  private async editable(p: Principal, mediaId: string, action: string) {
    const row = await this.media(p, mediaId);
    assertOwnerOrAdmin(p, row.user_id, `${action} caption tracks`);
    if (row.kind !== 'video') throw new AppError('conflict', `caption tracks are for video; this media is ${row.kind}`);
    // While (re)processing, the manifests are being replaced; the new ones pick up the tracks.
    if (row.status === 'queued' || row.status === 'processing')
      throw new AppError('conflict', `the media is ${row.status}; caption tracks can be changed once it is ready`);
    return row;
  }

  /** The tracks of a media; of a held or rejected one only for its owner and admins. */
  async list(p: Principal, mediaId: string): Promise<CaptionTrackView[]> {
    const row = await this.media(p, mediaId);
    assertModerationVisible(p, row);
    return (await tracksOfMedia(this.db, p.tenantId, [row.id])).get(row.id) ?? [];
  }

  /** Adds or replaces the track of one language. Bad files are refused before anything is written. */
  async put(
    p: Principal,
    mediaId: string,
    input: { language: string; body: Uint8Array; label?: string; kind?: CaptionKind },
  ): Promise<{ track: CaptionTrackView; created: boolean }> {
    const language = canonicalLanguage(input.language);
    const label = cleanLabel(input.label, language);
    const kind = input.kind ?? 'subtitles';
    const row = await this.editable(p, mediaId, 'change');
    if (row.status !== 'ready') throw new AppError('conflict', `the media is ${row.status}; caption tracks need a ready video`);
    let parsed: ParsedCaptions;
    try {
      parsed = parseCaptions(input.body);
    } catch (err) {
      if (err instanceof CaptionFormatError) throw new AppError('invalid-captions', err.message, { errors: err.problems });
      throw err;
    }
    try {
      await this.store.put(this.captionKey(row, language), parsed.vtt);
    } catch (err) {
      // The store writes through no link: the caption folder is one, out of the media's own folder.
      if (err instanceof UnsafePathError) throw new AppError('conflict', "the media's caption folder is not a folder of its own; nothing was written");
      throw err;
    }

    const now = nowIso();
    const { result: existing, events } = await writeRecording(this.db, async (tx, record) => {
      // A write first: on SQLite the transaction then holds the write lock from its start (a read
      // first would pin a snapshot that another process's commit makes unwritable).
      // An uploaded track replaces a transcribed one of its language for good (source user).
      const values = { label, kind, text: parsed.plainText, cue_count: parsed.cues.length, source: 'user' as const, updated_at: now };
      const updated = await tx
        .updateTable('caption_tracks')
        .set(values)
        .where('tenant_id', '=', p.tenantId)
        .where('media_id', '=', row.id)
        .where('language', '=', language)
        .executeTakeFirst();
      const existing = Number(updated.numUpdatedRows) > 0;
      if (!existing) {
        await tx
          .insertInto('caption_tracks')
          .values({ id: newId(), tenant_id: row.tenant_id, user_id: row.user_id, media_id: row.id, language, created_at: now, ...values })
          .onConflict((oc) => oc.columns(['media_id', 'language']).doUpdateSet(values))
          .execute();
      }
      record({ tenantId: row.tenant_id, mediaId: row.id, type: 'captions', data: { language, change: existing ? 'replaced' : 'added' } });
      return existing;
    });
    await this.republish(row, events);
    // A transcribed track it replaced had a file of its own.
    await this.store.delete(this.captionKey(row, language, 'auto')).catch(() => undefined);
    const track = (await this.list(p, row.id)).find((t) => t.language === language)!;
    return { track, created: !existing };
  }

  /**
   * Writes the track transcribed from a media's speech (source `auto`, kind `captions`), unless
   * a track of that language was uploaded: people's own captions win. An empty `vtt` removes the
   * transcribed track. For the worker, which holds the media's lock; returns whether it wrote.
   */
  async putTranscribed(
    media: { id: string; tenant_id: string; user_id: string },
    input: { language: string; vtt: string | null; plainText: string; cueCount: number },
  ): Promise<boolean> {
    const language = canonicalLanguage(input.language);
    const existing = await this.db
      .selectFrom('caption_tracks')
      .select(['source'])
      .where('tenant_id', '=', media.tenant_id)
      .where('media_id', '=', media.id)
      .where('language', '=', language)
      .executeTakeFirst();
    if (existing?.source === 'user') return false;
    const key = this.captionKey(media, language, 'auto');
    if (input.vtt === null) {
      if (!existing) return false;
      const { events } = await writeRecording(this.db, async (tx, record) => {
        await tx
          .deleteFrom('caption_tracks')
          .where('tenant_id', '=', media.tenant_id)
          .where('media_id', '=', media.id)
          .where('language', '=', language)
          .where('source', '=', 'auto')
          .execute();
        record({ tenantId: media.tenant_id, mediaId: media.id, type: 'captions', data: { language, change: 'removed', source: 'auto' } });
      });
      await this.republish(media, events);
      await this.store.delete(key).catch(() => undefined);
      return true;
    }
    // Its own file (transcripts/<language>.auto.vtt): an upload of its language, even one that comes meanwhile, is never written over.
    await this.store.put(key, input.vtt);
    const now = nowIso();
    const values = {
      label: `${defaultLabel(language)} (automatic)`,
      kind: 'captions' as const,
      text: input.plainText,
      cue_count: input.cueCount,
      source: 'auto' as const,
      updated_at: now,
    };
    const { result: wrote, events } = await writeRecording(this.db, async (tx, record) => {
      await tx
        .insertInto('caption_tracks')
        .values({ id: newId(), tenant_id: media.tenant_id, user_id: media.user_id, media_id: media.id, language, created_at: now, ...values })
        // An upload that came meanwhile stays.
        .onConflict((oc) => oc.columns(['media_id', 'language']).doUpdateSet(values).where('caption_tracks.source', '=', 'auto'))
        .execute();
      const now2 = await tx
        .selectFrom('caption_tracks')
        .select('source')
        .where('tenant_id', '=', media.tenant_id)
        .where('media_id', '=', media.id)
        .where('language', '=', language)
        .executeTakeFirst();
      if (now2?.source !== 'auto') return false;
      record({ tenantId: media.tenant_id, mediaId: media.id, type: 'captions', data: { language, change: existing ? 'replaced' : 'added', source: 'auto' } });
      return true;
    });
    if (!wrote) {
      await this.store.delete(key).catch(() => undefined);
      return false;
    }
    await this.republish(media, events);
    return true;
  }

  async delete(p: Principal, mediaId: string, rawLanguage: string): Promise<void> {
    const language = canonicalLanguage(rawLanguage);
    const row = await this.editable(p, mediaId, 'remove');
    let source: CaptionSource = 'user';
    const { events } = await writeRecording(this.db, async (tx, record) => {
      const gone = await tx
        .deleteFrom('caption_tracks')
        .where('tenant_id', '=', p.tenantId)
        .where('media_id', '=', row.id)
        .where('language', '=', language)
        .returning('source')
        .executeTakeFirst();
      if (!gone) throw notFound('caption track');
      source = gone.source;
      record({ tenantId: row.tenant_id, mediaId: row.id, type: 'captions', data: { language, change: 'removed' } });
    });
    await this.republish(row, events);
    // Removing through a linked caption folder would delete another media's file: the link is left alone.
    await this.store.delete(this.captionKey(row, language, source)).catch((err) => {
      if (!(err instanceof UnsafePathError)) throw err;
    });
  }

  /** The key of a media's caption file of one language. */
  private captionKey(row: { id: string; tenant_id: string; user_id: string }, language: string, source: CaptionSource = 'user'): string {
    return joinKey(mediaPrefix({ tenantId: row.tenant_id, userId: row.user_id, mediaId: row.id }), captionFile(language, source));
  }

  /** Rewrites the manifests to offer exactly the stored tracks, then announces the change (its `events`). */
  private async republish(row: { id: string; tenant_id: string; user_id: string }, events: MediaEvent[]): Promise<void> {
    const folder = mediaFolderIn(this.store, { tenantId: row.tenant_id, userId: row.user_id, mediaId: row.id });
    try {
      await applyCaptionTracks(folder, await captionTrackRefs(this.db, row.tenant_id, row.id));
    } finally {
      // The tracks were written whatever happened to the manifests: readers must not keep the old list.
      await announce(this.changes, events);
    }
  }
}

const tracksOfMediaQuery = preparedQuery((db, tenantId: string, mediaIds: readonly string[]) =>
  db
    .selectFrom('caption_tracks')
    .select(['media_id', 'language', 'label', 'kind', 'source', 'cue_count', 'created_at', 'updated_at'])
    .where('tenant_id', '=', tenantId)
    .where('media_id', 'in', mediaIds)
    .orderBy('media_id')
    .orderBy('language'),
);

/** Caption tracks of several media of one tenant, keyed by media id (their file is captionFile(language) in the media folder). */
export async function tracksOfMedia(db: Db, tenantId: string, mediaIds: string[]): Promise<Map<string, CaptionTrackView[]>> {
  const out = new Map<string, CaptionTrackView[]>();
  if (!mediaIds.length) return out;
  const rows = await tracksOfMediaQuery.all(db, tenantId, mediaIds);
  for (const r of rows) {
    const list = out.get(r.media_id) ?? [];
    list.push({
      language: r.language,
      label: r.label,
      kind: r.kind,
      source: r.source,
      cue_count: Number(r.cue_count),
      created_at: r.created_at,
      updated_at: r.updated_at,
    });
    out.set(r.media_id, list);
  }
  return out;
}
