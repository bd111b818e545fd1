import { ensureLabelId } from './hierarchy.js';
import type { Kysely } from 'kysely';
import type { AssetLabelSource, Database, LabelKind } from '../db/schema.js';
import { writeAssetLabels } from './asset-labels.js';
import { preparedQuery } from '../db/prepared.js';
import { shownName } from './label-names.js';

export interface AssetLabelView {
  name: string;
  kind: LabelKind;
  source: AssetLabelSource;
  confidence: number;
  count: number;
}

/** Finds or creates a tenant's label by name and kind; returns its id. */
export async function ensureLabel(db: Kysely<Database>, tenantId: string, name: string, kind: LabelKind = 'general'): Promise<string> {
  return (await ensureLabelId(db, tenantId, name, kind)).id;
}

/** Links labels a user gave at upload (source `user`, confidence 1) to a new media item. */
export async function attachUserLabels(
  db: Kysely<Database>,
  target: { tenantId: string; userId: string; mediaId: string },
  names: readonly string[],
): Promise<void> {
  if (!names.length) return;
  await writeAssetLabels(
    db,
    target,
    names.map((name) => ({ name, source: 'user' as const })),
  );
}

const labelsOfMediaQuery = preparedQuery((db, tenantId: string, mediaIds: readonly string[]) =>
  db
    .selectFrom('asset_labels as al')
    .innerJoin('labels as l', 'l.id', 'al.label_id')
    // A label named like a bank phrase is listed as the label it stands for.
    .innerJoin('labels as c', (j) => j.on((eb) => eb('c.id', '=', eb.fn.coalesce('l.alias_of', 'l.id'))))
    .select(['al.media_id', 'c.id as label_id', 'c.name', 'c.display_name', 'c.kind', 'al.source', 'al.confidence', 'al.count'])
    .where('al.tenant_id', '=', tenantId)
    .where('al.media_id', 'in', mediaIds)
    .orderBy('c.name')
    .orderBy('al.source'),
);

/** The labels of media, by media: one per label and source (an alias's row added to its entry's label's), by name. */
export async function labelsOfMedia(db: Kysely<Database>, tenantId: string, mediaIds: readonly string[]): Promise<Map<string, AssetLabelView[]>> {
  const out = new Map<string, AssetLabelView[]>();
  if (!mediaIds.length) return out;
  const rows = await labelsOfMediaQuery.all(db, tenantId, mediaIds);
  const seen = new Map<string, AssetLabelView>();
  for (const r of rows) {
    const key = `${r.media_id}\0${r.label_id}\0${r.source}`;
    const prev = seen.get(key);
    if (prev) {
      prev.confidence = Math.max(prev.confidence, Number(r.confidence));
      prev.count += Number(r.count);
      continue;
    }
    const view: AssetLabelView = { name: shownName(r), kind: r.kind, source: r.source, confidence: Number(r.confidence), count: Number(r.count) };
    seen.set(key, view);
    const list = out.get(r.media_id) ?? [];
    list.push(view);
    out.set(r.media_id, list);
  }
  return out;
}
