import { sql, type Kysely } from 'kysely';
import type { AssetLabelSource, Database, LabelKind } from '../db/schema.js';
import { fromJson, nowIso, toJson } from '../db/schema.js';
import { AppError } from '../shared/errors.js';
import { newId } from '../shared/ids.js';
import { markMediaOfLabelsStale } from './stale-documents.js';
import { matchingEntries } from './effective-banks.js';
import { ensureLabelId, syncLabelHierarchy, withDescendants } from './hierarchy.js';
import { labelName, shownName } from './label-names.js';

export type LabelSource = AssetLabelSource;

/** Where in a media a model saw a label: a time (seconds) and optionally a box (0-1, relative). */
export interface LabelFrame {
  t: number;
  box?: [number, number, number, number];
  confidence?: number;
}

export interface LabelInput {
  name: string;
  kind?: LabelKind;
  /** 0-1; a user's label is 1 unless given. */
  confidence?: number;
  frames?: LabelFrame[];
  source: LabelSource;
  /** How many frames it was seen in (a model's labels); 1 unless given. */
  count?: number;
  /** The sum of its per-frame confidences (mean = sum / count); confidence × count unless given. */
  confidenceSum?: number;
}

export interface AssetLabelDetail {
  label_id: string;
  name: string;
  kind: LabelKind;
  parent_id: string | null;
  /** The parent label's name. */
  parent: string | null;
  source: LabelSource;
  confidence: number;
  mean_confidence: number;
  count: number;
  /** Seconds into the media of the first and last frames it was seen in (null without frames). */
  first_timestamp: number | null;
  last_timestamp: number | null;
  frames: LabelFrame[];
  first_seen_at: string;
  last_seen_at: string;
}

interface Normalised {
  /** The key. */
  name: string;
  /** As given (the first spelling in the write). */
  display: string;
  kind: LabelKind;
  confidence: number;
  frames: LabelFrame[] | undefined;
  source: LabelSource;
  count: number;
  confidenceSum: number;
}

function normalise(inputs: readonly LabelInput[]): Normalised[] {
  const out = new Map<string, Normalised>();
  for (const i of inputs) {
    const confidence = i.confidence ?? 1;
    if (!(confidence >= 0 && confidence <= 1)) throw new AppError('validation-failed', 'labels: confidence must be from 0 to 1');
    const count = i.count ?? 1;
    if (!(Number.isInteger(count) && count >= 1)) throw new AppError('validation-failed', 'labels: count must be a whole number from 1');
    const n: Normalised = {
      ...labelName(i.name),
      kind: i.kind ?? 'general',
      confidence,
      frames: i.frames,
      source: i.source,
      count,
      confidenceSum: i.confidenceSum ?? confidence * count,
    };
    const k = `${n.kind}\0${n.name}\0${n.source}`;
    const prev = out.get(k);
    // The same label twice in one write counts once, at its highest confidence.
    out.set(k, prev ? { ...n, display: prev.display, confidence: Math.max(prev.confidence, n.confidence), frames: n.frames ?? prev.frames } : n);
  }
  return [...out.values()];
}

/**
 * Upserts labels of one media and records them in the statistics of every matching entry of
 * the tenant's effective banks. A repeated label counts again (`count` + 1), keeps its highest
 * confidence and its first-seen time; frames given replace the earlier ones (each model pass
 * reports all frames it saw). Run it inside the caller's transaction when there is one.
 */
export async function writeAssetLabels(
  db: Kysely<Database>,
  target: { tenantId: string; userId: string; mediaId: string },
  inputs: readonly LabelInput[],
  opts: { replaceSource?: LabelSource } = {},
): Promise<{ labelIds: string[] }> {
  const labels = normalise(inputs);
  const now = nowIso();
  const replaced = opts.replaceSource ? await deleteLabelsOfSource(db, target, opts.replaceSource) : [];
  let created = false;
  const labelIds: string[] = [];
  const written: Array<Normalised & { isNew: boolean }> = [];
  for (const l of labels) {
    const label = await ensureLabelId(db, target.tenantId, l.name, l.kind, l.display);
    created ||= label.created;
    labelIds.push(label.id);
    const row = await db
      .insertInto('asset_labels')
      .values({
        id: newId(),
        tenant_id: target.tenantId,
        user_id: target.userId,
        media_id: target.mediaId,
        label_id: label.id,
        source: l.source,
        count: l.count,
        confidence: l.confidence,
        confidence_sum: l.confidenceSum,
        frame_data: toJson(l.frames ?? []),
        first_seen_at: now,
        last_seen_at: now,
      })
      .onConflict((oc) =>
        oc.columns(['media_id', 'label_id', 'source']).doUpdateSet({
          count: sql`asset_labels.count + 1`,
          confidence: sql`case when excluded.confidence > asset_labels.confidence then excluded.confidence else asset_labels.confidence end`,
          confidence_sum: sql`coalesce(asset_labels.confidence_sum, asset_labels.confidence * asset_labels.count) + excluded.confidence`,
          last_seen_at: sql`excluded.last_seen_at`,
          ...(l.frames ? { frame_data: sql`excluded.frame_data` } : {}),
        }),
      )
      .returning('count')
      .executeTakeFirstOrThrow();
    written.push({ ...l, isNew: Number(row.count) === l.count });
  }
  if (opts.replaceSource) {
    // The statistics counted the rows replaced: they are computed again from what is there now.
    const touched = new Map([...replaced, ...written].map((l) => [`${l.kind}\0${l.name}`, l]));
    for (const l of touched.values()) await recomputeEntryStats(db, target.tenantId, l.kind, l.name);
  }
  for (const kind of opts.replaceSource ? [] : (['general', 'moderation'] as const)) {
    const ofKind = written.filter((w) => w.kind === kind);
    const matches = await matchingEntries(db, target.tenantId, kind, [...new Set(ofKind.map((w) => w.name))]);
    for (const m of matches) {
      for (const w of ofKind.filter((x) => x.name === m.matched)) await recordMatch(db, target.tenantId, m.entryId, w.confidence, w.isNew, now);
    }
  }
  if (created) {
    // A new label may be named like a bank phrase and become an alias of its entry: its media
    // (and those of anything linked to it) have new label words.
    const moved = await syncLabelHierarchy(db, target.tenantId);
    if (moved.length) await markMediaOfLabelsStale(db, target.tenantId, await withDescendants(db, target.tenantId, moved));
  }
  return { labelIds };
}

/** Deletes a media's labels of one source; returns their names and kinds. */
async function deleteLabelsOfSource(
  db: Kysely<Database>,
  target: { tenantId: string; mediaId: string },
  source: LabelSource,
): Promise<Array<{ name: string; kind: LabelKind }>> {
  const rows = await db
    .selectFrom('asset_labels as al')
    .innerJoin('labels as l', 'l.id', 'al.label_id')
    .select(['l.name', 'l.kind'])
    .where('al.tenant_id', '=', target.tenantId)
    .where('al.media_id', '=', target.mediaId)
    .where('al.source', '=', source)
    .execute();
  await db.deleteFrom('asset_labels').where('tenant_id', '=', target.tenantId).where('media_id', '=', target.mediaId).where('source', '=', source).execute();
  return rows;
}

async function recordMatch(db: Kysely<Database>, tenantId: string, entryId: string, confidence: number, isNew: boolean, now: string): Promise<void> {
  await db
    .insertInto('label_bank_stats')
    .values({
      entry_id: entryId,
      tenant_id: tenantId,
      usage_count: isNew ? 1 : 0,
      match_count: 1,
      confidence_sum: confidence,
      max_confidence: confidence,
      last_matched_at: now,
    })
    .onConflict((oc) =>
      oc.columns(['entry_id', 'tenant_id']).doUpdateSet({
        usage_count: sql`label_bank_stats.usage_count + excluded.usage_count`,
        match_count: sql`label_bank_stats.match_count + 1`,
        confidence_sum: sql`label_bank_stats.confidence_sum + excluded.confidence_sum`,
        max_confidence: sql`case when excluded.max_confidence > label_bank_stats.max_confidence then excluded.max_confidence else label_bank_stats.max_confidence end`,
        last_matched_at: sql`excluded.last_matched_at`,
      }),
    )
    .execute();
}

/**
 * Recomputes, from the tenant's asset labels, the statistics of every entry of its effective
 * banks that a label of this name matches (by name or phrase): after a label is removed, its
 * entries count only what remains. An entry nothing matches any more has no statistics row.
 */
export async function recomputeEntryStats(db: Kysely<Database>, tenantId: string, kind: LabelKind, labelName: string): Promise<void> {
  const entries = [...new Map((await matchingEntries(db, tenantId, kind, [labelName])).map((m) => [m.entryId, m])).values()];
  for (const entry of entries) {
    const phrases = await db.selectFrom('label_bank_phrases').select('phrase').where('entry_id', '=', entry.entryId).execute();
    const names = [entry.name, ...phrases.map((p) => p.phrase)];
    const agg = await db
      .selectFrom('asset_labels as al')
      .innerJoin('labels as l', 'l.id', 'al.label_id')
      .select((eb) => [
        eb.fn.countAll<number>().as('usage'),
        eb.fn.sum<number>('al.count').as('matches'),
        eb.fn.sum<number>(sql`coalesce(al.confidence_sum, al.confidence * al.count)`).as('confidence_sum'),
        eb.fn.max('al.confidence').as('max_confidence'),
        eb.fn.max('al.last_seen_at').as('last_matched_at'),
      ])
      .where('al.tenant_id', '=', tenantId)
      .where('l.tenant_id', '=', tenantId)
      .where('l.kind', '=', kind)
      .where('l.name', 'in', names)
      .executeTakeFirstOrThrow();
    if (Number(agg.usage) === 0) {
      await db.deleteFrom('label_bank_stats').where('entry_id', '=', entry.entryId).where('tenant_id', '=', tenantId).execute();
      continue;
    }
    const stats = {
      usage_count: Number(agg.usage),
      match_count: Number(agg.matches),
      confidence_sum: Number(agg.confidence_sum),
      max_confidence: Number(agg.max_confidence),
      last_matched_at: agg.last_matched_at,
    };
    await db
      .insertInto('label_bank_stats')
      .values({ entry_id: entry.entryId, tenant_id: tenantId, ...stats })
      .onConflict((oc) => oc.columns(['entry_id', 'tenant_id']).doUpdateSet(stats))
      .execute();
  }
}

/**
 * Every label of one media, with frames and times: one row per label and source. A label named
 * like a bank phrase is shown as the entry's label it stands for, together with that label's own
 * row of the source (counts and confidence sums added, the best confidence, every frame).
 */
export async function assetLabelsOf(db: Kysely<Database>, tenantId: string, mediaId: string): Promise<AssetLabelDetail[]> {
  const rows = await db
    .selectFrom('asset_labels as al')
    .innerJoin('labels as l', 'l.id', 'al.label_id')
    .innerJoin('labels as c', (j) => j.on((eb) => eb('c.id', '=', eb.fn.coalesce('l.alias_of', 'l.id'))))
    .leftJoin('labels as p', (j) => j.onRef('p.id', '=', 'c.parent_id').on('p.tenant_id', '=', tenantId))
    .select([
      'c.id as label_id',
      'c.name',
      'c.display_name',
      'c.kind',
      'c.parent_id',
      'p.name as parent',
      'p.display_name as parent_display',
      'al.source',
      'al.confidence',
      'al.confidence_sum',
      'al.count',
      'al.frame_data',
      'al.first_seen_at',
      'al.last_seen_at',
    ])
    .where('al.tenant_id', '=', tenantId)
    .where('al.media_id', '=', mediaId)
    .orderBy('c.name')
    .orderBy('al.source')
    .execute();
  const merged = new Map<string, AssetLabelDetail & { sum: number }>();
  for (const r of rows) {
    const frames = fromJson<LabelFrame[]>(r.frame_data, []);
    const count = Number(r.count);
    const sum = r.confidence_sum === null ? Number(r.confidence) * count : Number(r.confidence_sum);
    const key = `${r.label_id}\0${r.source}`;
    const prev = merged.get(key);
    if (!prev) {
      merged.set(key, {
        label_id: r.label_id,
        name: shownName(r),
        kind: r.kind,
        parent_id: r.parent_id,
        parent: r.parent_display ?? r.parent ?? null,
        source: r.source,
        confidence: Number(r.confidence),
        mean_confidence: 0,
        count,
        first_timestamp: null,
        last_timestamp: null,
        frames,
        first_seen_at: r.first_seen_at,
        last_seen_at: r.last_seen_at,
        sum,
      });
      continue;
    }
    prev.confidence = Math.max(prev.confidence, Number(r.confidence));
    prev.count += count;
    prev.sum += sum;
    prev.frames = [...prev.frames, ...frames].sort((a, b) => a.t - b.t);
    if (r.first_seen_at < prev.first_seen_at) prev.first_seen_at = r.first_seen_at;
    if (r.last_seen_at > prev.last_seen_at) prev.last_seen_at = r.last_seen_at;
  }
  return [...merged.values()].map(({ sum, ...l }) => {
    const times = l.frames.map((f) => f.t).filter((t) => Number.isFinite(t));
    return {
      ...l,
      mean_confidence: Math.round((sum / l.count) * 10000) / 10000,
      first_timestamp: times.length ? Math.min(...times) : null,
      last_timestamp: times.length ? Math.max(...times) : null,
    };
  });
}
