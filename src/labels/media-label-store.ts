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
    .select(['al.media_id', 'l.name', 'l.display_name', 'l.kind', 'al.source', 'al.confidence', 'al.count'])
    .where('al.tenant_id', '=', tenantId)
    .where('al.media_id', 'in', mediaIds)
    .orderBy('l.name'),
);

export async function labelsOfMedia(db: Kysely<Database>, tenantId: string, mediaIds: readonly string[]): Promise<Map<string, AssetLabelView[]>> {
  const out = new Map<string, AssetLabelView[]>();
  if (!mediaIds.length) return out;
  const rows = await labelsOfMediaQuery.all(db, tenantId, mediaIds);
  for (const r of rows) {
    const list = out.get(r.media_id) ?? [];
    list.push({ name: shownName(r), kind: r.kind, source: r.source, confidence: Number(r.confidence), count: Number(r.count) });
    out.set(r.media_id, list);
  }
  return out;
}
