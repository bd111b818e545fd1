import type { Kysely } from 'kysely';
import type { Database, LabelKind } from '../db/schema.js';
import { AppError, notFound } from '../shared/errors.js';
import type { MediaChanges } from '../events/media-changes.js';
import { writeWithEvents } from '../events/media-events.js';
import { assertModerationVisible } from '../access/visibility.js';
import type { Principal } from '../tenancy/principal.js';
import { assetLabelsOf, recomputeEntryStats, writeAssetLabels, type AssetLabelDetail, type LabelInput, type LabelSource } from './asset-labels.js';
import { assertOwnerOrAdmin } from '../access/ownership.js';
import { fromJson } from '../db/schema.js';
import { labelingOf, type LabelingView } from './labeling-state.js';
import { canonicalId } from './hierarchy.js';
import { shownName } from './label-names.js';

/** The worker (or any other part of the server) writing labels on its own authority, for one tenant. */
export interface SystemActor {
  system: true;
  tenantId: string;
}

export type LabelActor = Principal | SystemActor;

const isSystem = (a: LabelActor): a is SystemActor => 'system' in a && a.system;

export interface LabelDictionaryEntry {
  id: string;
  name: string;
  kind: LabelKind;
  parent_id: string | null;
  created_at: string;
}

/**
 * Labels of media: written by users (source `user`) through the API and by the worker
 * (source `model`); each write updates bank statistics, then moderation is evaluated and the
 * change is announced so the search index follows.
 */
/**
 * What runs after moderation labels of a media changed: the moderation service re-evaluates it.
 * A hook, because moderation sits above labels (its thresholds are read from label banks).
 */
export interface MediaLabelHooks {
  moderationLabelsChanged(tenantId: string, mediaId: string): Promise<unknown>;
}

export class MediaLabelService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly changes: MediaChanges,
    private readonly hooks: MediaLabelHooks,
  ) {}

  /**
   * Adds labels to a media. A principal must own the media or hold an admin key, and only
   * admin keys write moderation labels (they drive the moderation workflow). The system
   * actor may write anything, typically `model` labels with confidences and frames.
   */
  async addLabels(actor: LabelActor, mediaId: string, inputs: readonly LabelInput[]): Promise<AssetLabelDetail[]> {
    const media = await this.media(actor.tenantId, mediaId);
    if (!isSystem(actor)) {
      this.assertWriter(actor, media.user_id);
      if (inputs.some((i) => i.kind === 'moderation') && !actor.isAdmin) throw new AppError('forbidden', 'only an admin key may add moderation labels');
      if (inputs.some((i) => i.source !== 'user')) throw new AppError('forbidden', 'labels added through the API have source user');
    }
    if (!inputs.length) return assetLabelsOf(this.db, actor.tenantId, mediaId);
    await writeWithEvents(this.db, this.changes, async (tx, record) => {
      const { labelIds } = await writeAssetLabels(tx, { tenantId: actor.tenantId, userId: media.user_id, mediaId }, inputs);
      record({ tenantId: actor.tenantId, mediaId, type: 'labels', data: { added: labelIds } });
    });
    if (inputs.some((i) => i.kind === 'moderation')) await this.hooks.moderationLabelsChanged(actor.tenantId, mediaId);
    return assetLabelsOf(this.db, actor.tenantId, mediaId);
  }

  /**
   * Removes one label of a media (the `user` one unless another source is named; `model` needs
   * an admin key), and takes it out of the statistics of the bank entries it matched. A label
   * and the labels named like its entry's phrases are one: removing it removes them all.
   */
  async removeLabel(actor: LabelActor, mediaId: string, labelId: string, source: LabelSource = 'user'): Promise<void> {
    const media = await this.media(actor.tenantId, mediaId);
    const label = await this.db
      .selectFrom('labels')
      .select(['id', 'name', 'kind', 'alias_of'])
      .where('id', '=', labelId)
      .where('tenant_id', '=', actor.tenantId)
      .executeTakeFirst();
    if (!isSystem(actor)) {
      this.assertWriter(actor, media.user_id);
      if (source !== 'user' && !actor.isAdmin) throw new AppError('forbidden', `only an admin key may remove ${source} labels`);
      if (label?.kind === 'moderation' && !actor.isAdmin) throw new AppError('forbidden', 'only an admin key may remove moderation labels');
    }
    if (!label) throw notFound('label of this media');
    const canonical = canonicalId(label);
    await writeWithEvents(this.db, this.changes, async (tx, record) => {
      const rows = await tx
        .selectFrom('asset_labels as al')
        .innerJoin('labels as l', 'l.id', 'al.label_id')
        .select(['al.id', 'l.id as label_id', 'l.name'])
        .where('al.tenant_id', '=', actor.tenantId)
        .where('al.media_id', '=', mediaId)
        .where('al.source', '=', source)
        .where((eb) => eb.or([eb('l.id', '=', canonical), eb('l.alias_of', '=', canonical)]))
        .execute();
      if (!rows.length) throw notFound('label of this media');
      await tx
        .deleteFrom('asset_labels')
        .where(
          'id',
          'in',
          rows.map((r) => r.id),
        )
        .execute();
      for (const name of new Set(rows.map((r) => r.name))) await recomputeEntryStats(tx, actor.tenantId, label.kind, name);
      record({ tenantId: actor.tenantId, mediaId, type: 'labels', data: { removed: [...new Set(rows.map((r) => r.label_id))], source } });
    });
  }

  /** A media's labels; held or rejected media only for its owner and admins. */
  async list(p: Principal, mediaId: string): Promise<AssetLabelDetail[]> {
    const media = await this.media(p.tenantId, mediaId);
    assertModerationVisible(p, media);
    return assetLabelsOf(this.db, p.tenantId, mediaId);
  }

  /** A media's labels and where the models' labeling of it stands. */
  async listWithState(p: Principal, mediaId: string): Promise<{ items: AssetLabelDetail[]; labeling: LabelingView }> {
    const items = await this.list(p, mediaId);
    const row = await this.db
      .selectFrom('mediaassets')
      .select('file_metadata')
      .where('id', '=', mediaId)
      .where('tenant_id', '=', p.tenantId)
      .executeTakeFirst();
    if (!row) throw notFound('media');
    return { items, labeling: labelingOf(fromJson<Record<string, unknown>>(row.file_metadata, {})) };
  }

  /**
   * The tenant's label dictionary, by name; optionally one kind or the children of one label.
   * A label named like a bank phrase is its entry's label, not one of its own: not listed.
   */
  async dictionary(
    tenantId: string,
    opts: { kind?: LabelKind; parentId?: string; limit: number; cursor?: string },
  ): Promise<{ items: LabelDictionaryEntry[]; next_cursor: string | null }> {
    let q = this.db
      .selectFrom('labels')
      .select(['id', 'name', 'display_name', 'kind', 'parent_id', 'created_at'])
      .where('tenant_id', '=', tenantId)
      .where('alias_of', 'is', null);
    if (opts.kind) q = q.where('kind', '=', opts.kind);
    if (opts.parentId) q = q.where('parent_id', '=', opts.parentId);
    if (opts.cursor) {
      const c = decodeCursor(opts.cursor);
      q = q.where((eb) => eb.or([eb('name', '>', c.name), eb.and([eb('name', '=', c.name), eb('id', '>', c.id)])]));
    }
    const rows = await q
      .orderBy('name')
      .orderBy('id')
      .limit(opts.limit + 1)
      .execute();
    const page = rows.slice(0, opts.limit);
    const last = page[page.length - 1];
    return {
      items: page.map((r) => ({ id: r.id, name: shownName(r), kind: r.kind, parent_id: r.parent_id, created_at: r.created_at })),
      // Pages follow the folded names, which order and compare the same way everywhere.
      next_cursor: rows.length > opts.limit && last ? encodeCursor(last) : null,
    };
  }

  private async media(tenantId: string, mediaId: string) {
    const media = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'user_id', 'moderation_state'])
      .where('id', '=', mediaId)
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
    if (!media) throw notFound('media');
    return media;
  }

  private assertWriter(p: Principal, ownerUserId: string): void {
    assertOwnerOrAdmin(p, ownerUserId, 'change the labels of this media');
  }
}

function encodeCursor(c: { name: string; id: string }): string {
  return Buffer.from(JSON.stringify([c.name, c.id])).toString('base64url');
}

function decodeCursor(raw: string): { name: string; id: string } {
  try {
    const [name, id] = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as [unknown, unknown];
    if (typeof name === 'string' && typeof id === 'string') return { name, id };
  } catch {
    // fall through
  }
  throw new AppError('validation-failed', 'cursor is not valid');
}
