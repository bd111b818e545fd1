import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { nowIso } from '../db/schema.js';
import { AppError } from '../shared/errors.js';
import { matchingEntries } from '../labels/effective-banks.js';
import { ensureLabelId, syncLabelHierarchy } from '../labels/hierarchy.js';
import { labelName, shownName } from '../labels/label-names.js';

export interface ThresholdsView {
  /** The tenant's default (null: the server's). */
  default: number | null;
  server_default: number;
  effective_default: number;
  labels: Array<{ label_id: string; label: string; threshold: number }>;
}

export async function readThresholds(db: Kysely<Database>, tenantId: string, serverDefault: number): Promise<ThresholdsView> {
  const settings = await db.selectFrom('moderation_settings').select('default_threshold').where('tenant_id', '=', tenantId).executeTakeFirst();
  const rows = await db
    .selectFrom('moderation_thresholds as t')
    .innerJoin('labels as l', 'l.id', 't.label_id')
    .select(['t.label_id', 'l.name', 'l.display_name', 't.threshold'])
    .where('t.tenant_id', '=', tenantId)
    .orderBy('l.name')
    .execute();
  const tenantDefault = settings?.default_threshold ?? null;
  return {
    default: tenantDefault === null ? null : Number(tenantDefault),
    server_default: serverDefault,
    effective_default: tenantDefault === null ? serverDefault : Number(tenantDefault),
    labels: rows.map((r) => ({ label_id: r.label_id, label: shownName(r), threshold: Number(r.threshold) })),
  };
}

/** Replaces a tenant's thresholds: its default and the per-label list (moderation labels, by name). */
export async function writeThresholds(
  db: Kysely<Database>,
  tenantId: string,
  input: { default: number | null; labels: Array<{ label: string; threshold: number }> },
): Promise<void> {
  const names = input.labels.map((l) => labelName(l.label));
  if (new Set(names.map((n) => n.name)).size !== names.length) throw new AppError('validation-failed', 'labels: a label appears twice');
  const now = nowIso();
  await db.transaction().execute(async (tx) => {
    await tx
      .insertInto('moderation_settings')
      .values({ tenant_id: tenantId, default_threshold: input.default, updated_at: now })
      .onConflict((oc) => oc.column('tenant_id').doUpdateSet({ default_threshold: input.default, updated_at: now }))
      .execute();
    await tx.deleteFrom('moderation_thresholds').where('tenant_id', '=', tenantId).execute();
    let created = false;
    for (const [i, name] of names.entries()) {
      const label = await ensureLabelId(tx, tenantId, name.name, 'moderation', name.display);
      created ||= label.created;
      await tx
        .insertInto('moderation_thresholds')
        .values({ tenant_id: tenantId, label_id: label.id, threshold: input.labels[i]!.threshold, updated_at: now })
        .execute();
    }
    if (created) await syncLabelHierarchy(tx, tenantId);
  });
}

/**
 * The threshold of each moderation label for a tenant: its per-label threshold, else the lowest
 * per-label threshold of the labels named like its entry's phrases (its aliases: they are the
 * same label), else the threshold of the first matching entry of its effective moderation banks,
 * else the tenant's default, else the server's. Give the labels as readers resolve them: an
 * alias as the label it stands for.
 */
export async function thresholdsFor(
  db: Kysely<Database>,
  tenantId: string,
  labels: ReadonlyArray<{ id: string; name: string }>,
  serverDefault: number,
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (!labels.length) return out;
  const ids = labels.map((l) => l.id);
  const wanted = new Set(ids);
  const own = new Map<string, number>();
  const ofAliases = new Map<string, number>();
  const rows = await db
    .selectFrom('moderation_thresholds as t')
    .innerJoin('labels as l', 'l.id', 't.label_id')
    .select(['t.label_id', 'l.alias_of', 't.threshold'])
    .where('t.tenant_id', '=', tenantId)
    .where('l.tenant_id', '=', tenantId)
    .where((eb) => eb.or([eb('t.label_id', 'in', ids), eb('l.alias_of', 'in', ids)]))
    .execute();
  for (const r of rows) {
    const threshold = Number(r.threshold);
    if (wanted.has(r.label_id)) own.set(r.label_id, threshold);
    else if (r.alias_of) ofAliases.set(r.alias_of, Math.min(ofAliases.get(r.alias_of) ?? 1, threshold));
  }
  const fromBanks = new Map<string, number>();
  for (const m of await matchingEntries(
    db,
    tenantId,
    'moderation',
    labels.map((l) => l.name),
  )) {
    if (m.threshold !== null && !fromBanks.has(m.matched)) fromBanks.set(m.matched, Number(m.threshold));
  }
  const settings = await db.selectFrom('moderation_settings').select('default_threshold').where('tenant_id', '=', tenantId).executeTakeFirst();
  const fallback = settings?.default_threshold ?? serverDefault;
  for (const l of labels) out.set(l.id, own.get(l.id) ?? ofAliases.get(l.id) ?? fromBanks.get(l.name) ?? Number(fallback));
  return out;
}
