import type { Db } from '../db/database.js';
import { fromJson, type MediaKind, type MediaStatus, type ModerationState } from '../db/schema.js';
import type { ArtifactPaths } from '../media/delivery.js';
import type { RecordCache } from '../cache/record-cache.js';
import { visibleToAudience } from '../access/visibility.js';
import type { FilterQuery } from './search-index.js';

/**
 * What lists need of one media: the content of its feed item, and what search filters and
 * visibility rules test. Labels are the ones linked to the media itself, of every kind; their
 * names and ancestors come from the tenant's LabelDirectory.
 */
export interface MediaFacts {
  id: string;
  kind: MediaKind;
  status: MediaStatus;
  user_id: string;
  title: string | null;
  caption: string | null;
  original_filename: string;
  /** Seconds; null for media without a duration. */
  duration: number | null;
  /** As displayed (sample aspect and rotation applied); null when not a picture. */
  width: number | null;
  height: number | null;
  tags: string[];
  created_at: string;
  moderation_state: ModerationState;
  artifacts: Pick<ArtifactPaths, 'hls' | 'dash' | 'webm' | 'poster'>;
  playback_key: string | null;
  label_ids: string[];
}

const numberOrNull = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Reads the facts of some media of a tenant in two queries; ids not found are left out. */
export async function loadMediaFacts(db: Db, tenantId: string, ids: readonly string[]): Promise<Map<string, MediaFacts>> {
  const out = new Map<string, MediaFacts>();
  if (!ids.length) return out;
  const rows = await db
    .selectFrom('mediaassets')
    .select([
      'id',
      'kind',
      'status',
      'user_id',
      'moderation_state',
      'created_at',
      'title',
      'caption',
      'original_filename',
      'user_tags',
      'file_metadata',
      'playback_key',
    ])
    .where('tenant_id', '=', tenantId)
    .where('id', 'in', ids)
    .execute();
  if (!rows.length) return out;
  const links = await db
    .selectFrom('asset_labels')
    .select(['media_id', 'label_id'])
    .where('tenant_id', '=', tenantId)
    .where(
      'media_id',
      'in',
      rows.map((r) => r.id),
    )
    .execute();
  const labelsOf = new Map<string, Set<string>>();
  for (const l of links) {
    const set = labelsOf.get(l.media_id) ?? new Set<string>();
    set.add(l.label_id);
    labelsOf.set(l.media_id, set);
  }
  for (const r of rows) {
    const meta = fromJson<Record<string, unknown> & { artifacts?: ArtifactPaths }>(r.file_metadata, {});
    const a = meta.artifacts ?? {};
    out.set(r.id, {
      id: r.id,
      kind: r.kind,
      status: r.status,
      user_id: r.user_id,
      moderation_state: r.moderation_state ?? 'none',
      created_at: r.created_at,
      title: r.title ?? null,
      caption: r.caption,
      original_filename: r.original_filename,
      duration: numberOrNull(meta.duration),
      width: numberOrNull(meta.display_width) ?? numberOrNull(meta.width),
      height: numberOrNull(meta.display_height) ?? numberOrNull(meta.height),
      artifacts: {
        ...(a.hls ? { hls: a.hls } : {}),
        ...(a.dash ? { dash: a.dash } : {}),
        ...(a.webm ? { webm: a.webm } : {}),
        ...(a.poster ? { poster: { ...a.poster } } : {}),
      },
      playback_key: r.playback_key,
      tags: fromJson<string[]>(r.user_tags, []),
      label_ids: [...(labelsOf.get(r.id) ?? [])],
    });
  }
  return out;
}

/** The in-memory twin of a search's filters and visibility (search-index `filterSql`, without the keyset). */
export function factsMatch(q: Omit<FilterQuery, 'tenantId' | 'after'>, m: MediaFacts): boolean {
  if (!visibleToAudience(q.audience, m)) return false;
  if (q.asOf && m.created_at > q.asOf) return false;
  const f = q.filters;
  if (f.kind && m.kind !== f.kind) return false;
  if (f.status && m.status !== f.status) return false;
  if (f.createdFrom && m.created_at < f.createdFrom) return false;
  if (f.createdTo && m.created_at >= f.createdTo) return false;
  if (f.labelIds) {
    const wanted = new Set(f.labelIds);
    if (!m.label_ids.some((id) => wanted.has(id))) return false;
  }
  return true;
}

/**
 * The facts of media for lists (feeds, search results, related media), from a per-process
 * cache shared with nothing else and forgotten exactly when the media record cache is (every
 * media change of this process, other processes' through data_version or the change bus).
 */
export class MediaFactsSource {
  constructor(
    private readonly db: Db,
    private readonly cache: RecordCache<MediaFacts> | undefined,
  ) {}

  /** Facts of the media of these ids that exist in the tenant, in the order given. */
  async get(tenantId: string, ids: readonly string[]): Promise<Map<string, MediaFacts>> {
    if (!ids.length) return new Map();
    const load = (missing: string[]) => loadMediaFacts(this.db, tenantId, missing);
    if (!this.cache?.enabled) return load([...new Set(ids)]);
    return this.cache.getMany(tenantId, ids, load);
  }
}
