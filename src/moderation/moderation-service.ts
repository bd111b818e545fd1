import { sql, type Kysely } from 'kysely';
import type { Database, ModerationDecisionKind, ModerationState } from '../db/schema.js';
import { fromJson } from '../db/schema.js';
import { AppError, notFound } from '../shared/errors.js';
import type { MediaChanges } from '../events/media-changes.js';
import { writeWithEvents } from '../events/media-events.js';
import type { Principal } from '../tenancy/principal.js';
import { readThresholds, thresholdsFor, writeThresholds, type ThresholdsView } from './thresholds.js';
import { assertOwnerOrAdmin } from '../access/ownership.js';
import { moveModerationState, type ModerationLabel } from './moderation-move.js';
import { normalizeLabelName, shownName } from '../labels/label-names.js';
import { canonicalId } from '../labels/hierarchy.js';

export type { ModerationLabel } from './moderation-move.js';

export interface DecisionView {
  id: string;
  decision: ModerationDecisionKind;
  previous_state: ModerationState;
  state: ModerationState;
  note: string | null;
  labels: ModerationLabel[];
  /** null when the system held the media. */
  decided_by: { key_id: string; user_id: string | null } | null;
  at: string;
}

/** Where in a media a model saw a moderation label, in the shape of Rekognition's ContentModerationDetection. */
export interface ModerationDetection {
  /** Milliseconds into the media (0 for a still). */
  timestamp: number;
  label: string;
  parent: string | null;
  confidence: number;
}

export interface MediaModerationView {
  media_id: string;
  state: ModerationState;
  labels: ModerationLabel[];
  detections: ModerationDetection[];
  decisions: DecisionView[];
}

export interface QueueItem {
  media_id: string;
  user_id: string;
  kind: string;
  original_filename: string;
  status: string;
  created_at: string;
  held_at: string;
  labels: ModerationLabel[];
}

const CURSOR = /^[0-9a-f-]{36}$/;

function requireAdmin(p: Principal, what: string): void {
  if (!p.isAdmin) throw new AppError('forbidden', `only an admin key may ${what}`);
}

/**
 * The moderation workflow: a media whose moderation labels meet their thresholds is held
 * (hidden from everyone but its owner and admins) until an admin approves or rejects it.
 * Every state change is recorded with who made it and when.
 */
export class ModerationService {
  constructor(
    private readonly db: Kysely<Database>,
    /** Told after each change commits (none: the caller announces nothing, as in a worker without listeners). */
    private readonly changes: MediaChanges | undefined,
    private readonly serverDefault: number,
  ) {}

  /**
   * The media's moderation labels (highest confidence over sources) with their thresholds. A
   * label named like a bank phrase counts as the entry's label it stands for: one label, at the
   * best confidence of its names, judged by the entry's threshold.
   */
  async moderationLabels(tenantId: string, mediaId: string): Promise<ModerationLabel[]> {
    const rows = await this.db
      .selectFrom('asset_labels as al')
      .innerJoin('labels as l', 'l.id', 'al.label_id')
      .innerJoin('labels as c', (j) => j.on((eb) => eb('c.id', '=', eb.fn.coalesce('l.alias_of', 'l.id'))))
      .select(['c.id', 'c.name', 'c.display_name', (eb) => eb.fn.max('al.confidence').as('confidence')])
      .where('al.tenant_id', '=', tenantId)
      .where('al.media_id', '=', mediaId)
      .where('l.kind', '=', 'moderation')
      .groupBy(['c.id', 'c.name', 'c.display_name'])
      .orderBy('c.name')
      .execute();
    const thresholds = await thresholdsFor(this.db, tenantId, rows, this.serverDefault);
    return rows.map((r) => ({ name: shownName(r), confidence: Number(r.confidence), threshold: thresholds.get(r.id)! }));
  }

  /**
   * Holds a media after its labels changed, when a moderation label meets its threshold and the
   * media is in state `none` or `pending`. Approved media is held again only for a label the
   * moderator did not see when approving (a higher confidence of a label they saw is the same
   * judgement). Held and rejected media stay as they are. A `pending` media that nothing holds
   * is published (`none`, decision `clear`) once `modelsDone`: the models have looked at it.
   */
  async evaluate(tenantId: string, mediaId: string, opts: { modelsDone?: boolean } = {}): Promise<ModerationState> {
    const media = await this.db
      .selectFrom('mediaassets')
      .select(['moderation_state'])
      .where('id', '=', mediaId)
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
    if (!media) throw notFound('media');
    const state = media.moderation_state;
    if (state === 'held' || state === 'rejected') return state;
    const labels = await this.moderationLabels(tenantId, mediaId);
    let triggering = labels.filter((l) => l.confidence >= l.threshold);
    if (state === 'approved' && triggering.length) {
      const approval = await this.db
        .selectFrom('moderation_decisions')
        .select('labels')
        .where('tenant_id', '=', tenantId)
        .where('media_id', '=', mediaId)
        .where('decision', '=', 'approve')
        .orderBy('id', 'desc')
        .executeTakeFirst();
      // Names compare case-insensitively: decisions before names kept their case hold folded names.
      const seen = new Set(fromJson<ModerationLabel[]>(approval?.labels, []).map((l) => normalizeLabelName(l.name)));
      triggering = triggering.filter((l) => !seen.has(normalizeLabelName(l.name)));
    }
    if (!triggering.length) {
      if (state !== 'pending' || !opts.modelsDone) return state;
      const cleared = await this.transition(tenantId, mediaId, 'pending', 'none', { decision: 'clear', labels, note: null, actor: null });
      return cleared ? 'none' : await this.stateOf(tenantId, mediaId);
    }
    const moved = await this.transition(tenantId, mediaId, state, 'held', { decision: 'hold', labels: triggering, note: null, actor: null });
    return moved ? 'held' : await this.stateOf(tenantId, mediaId);
  }

  /** An admin's approval or rejection of a media (any state: moderators may change their minds). */
  async decide(p: Principal, mediaId: string, decision: 'approve' | 'reject', note: string | null): Promise<MediaModerationView> {
    const state = await this.stateOf(p.tenantId, mediaId);
    requireAdmin(p, 'moderate media');
    const labels = await this.moderationLabels(p.tenantId, mediaId);
    const next: ModerationState = decision === 'approve' ? 'approved' : 'rejected';
    if (!(await this.transition(p.tenantId, mediaId, state, next, { decision, labels, note, actor: p }))) {
      throw new AppError('conflict', 'the moderation state changed meanwhile; read it and decide again');
    }
    return this.ofMedia(p, mediaId);
  }

  /** State, current moderation labels and every decision of a media: for its owner and admins. */
  async ofMedia(p: Principal, mediaId: string): Promise<MediaModerationView> {
    const media = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'user_id', 'moderation_state'])
      .where('id', '=', mediaId)
      .where('tenant_id', '=', p.tenantId)
      .executeTakeFirst();
    if (!media) throw notFound('media');
    assertOwnerOrAdmin(p, media.user_id, 'read the moderation of this media');
    const rows = await this.db
      .selectFrom('moderation_decisions')
      .selectAll()
      .where('tenant_id', '=', p.tenantId)
      .where('media_id', '=', mediaId)
      .orderBy('id')
      .execute();
    return {
      media_id: media.id,
      state: media.moderation_state,
      labels: await this.moderationLabels(p.tenantId, mediaId),
      detections: await this.detections(p.tenantId, mediaId),
      decisions: rows.map((r) => ({
        id: r.id,
        decision: r.decision,
        previous_state: r.previous_state,
        state: r.state,
        note: r.note,
        labels: fromJson<ModerationLabel[]>(r.labels, []),
        decided_by: r.actor_key_id ? { key_id: r.actor_key_id, user_id: r.actor_user_id } : null,
        at: r.at,
      })),
    };
  }

  /**
   * The frames the models saw each moderation label in, with its parent when it has one (a label
   * named like a bank phrase as the entry's label), by time.
   */
  private async detections(tenantId: string, mediaId: string): Promise<ModerationDetection[]> {
    const rows = await this.db
      .selectFrom('asset_labels as al')
      .innerJoin('labels as l', 'l.id', 'al.label_id')
      .innerJoin('labels as c', (j) => j.on((eb) => eb('c.id', '=', eb.fn.coalesce('l.alias_of', 'l.id'))))
      .leftJoin('labels as p', (j) => j.onRef('p.id', '=', 'c.parent_id').on('p.tenant_id', '=', tenantId))
      .select(['c.name', 'c.display_name', 'p.name as parent', 'p.display_name as parent_display', 'al.frame_data'])
      .where('al.tenant_id', '=', tenantId)
      .where('al.media_id', '=', mediaId)
      .where('al.source', '=', 'model')
      .where('l.kind', '=', 'moderation')
      .execute();
    const out: ModerationDetection[] = [];
    for (const r of rows) {
      for (const f of fromJson<Array<{ t: number; confidence?: number }>>(r.frame_data, [])) {
        if (typeof f.t === 'number' && typeof f.confidence === 'number') {
          out.push({ timestamp: Math.round(f.t * 1000), label: shownName(r), parent: r.parent_display ?? r.parent, confidence: f.confidence });
        }
      }
    }
    return out.sort((a, b) => a.timestamp - b.timestamp || a.label.localeCompare(b.label));
  }

  /** Held media of the tenant, longest held first; `next_cursor` pages on. Admin keys only. */
  async queue(p: Principal, opts: { limit: number; cursor?: string }): Promise<{ items: QueueItem[]; next_cursor: string | null }> {
    requireAdmin(p, 'read the moderation queue');
    if (opts.cursor !== undefined && !CURSOR.test(opts.cursor)) throw new AppError('validation-failed', 'cursor is not valid');
    let q = this.db
      .selectFrom('mediaassets as m')
      .innerJoin('moderation_decisions as d', 'd.media_id', 'm.id')
      .select(['m.id', 'm.user_id', 'm.kind', 'm.original_filename', 'm.status', 'm.created_at', 'd.id as hold_id', 'd.at as held_at', 'd.labels'])
      .where('m.tenant_id', '=', p.tenantId)
      .where('d.tenant_id', '=', p.tenantId)
      .where('m.moderation_state', '=', 'held')
      .where('d.decision', '=', 'hold')
      .where('d.id', '=', sql<string>`(select max(d2.id) from moderation_decisions d2 where d2.media_id = m.id and d2.decision = 'hold')`);
    if (opts.cursor) q = q.where('d.id', '>', opts.cursor);
    const rows = await q
      .orderBy('d.id')
      .limit(opts.limit + 1)
      .execute();
    const page = rows.slice(0, opts.limit);
    return {
      items: page.map((r) => ({
        media_id: r.id,
        user_id: r.user_id,
        kind: r.kind,
        original_filename: r.original_filename,
        status: r.status,
        created_at: r.created_at,
        held_at: r.held_at,
        labels: fromJson<ModerationLabel[]>(r.labels, []),
      })),
      next_cursor: rows.length > opts.limit ? page[page.length - 1]!.hold_id : null,
    };
  }

  async thresholds(p: Principal): Promise<ThresholdsView> {
    return readThresholds(this.db, p.tenantId, this.serverDefault);
  }

  /**
   * Replaces the tenant's thresholds and re-evaluates the media they now hold: a lower threshold
   * holds media whose labels meet it, as if they had just been labelled. A higher one releases
   * nothing (held media waits for a moderator). `held` counts the media this change held.
   */
  async setThresholds(
    p: Principal,
    input: { default: number | null; labels: Array<{ label: string; threshold: number }> },
  ): Promise<ThresholdsView & { held: number }> {
    requireAdmin(p, 'change moderation thresholds');
    await writeThresholds(this.db, p.tenantId, input);
    const held = await this.reevaluate(p.tenantId);
    return { ...(await this.thresholds(p)), held };
  }

  /**
   * Evaluates every media of the tenant that is not held or rejected and has a moderation label
   * meeting its current threshold; returns how many it held. Call after thresholds change
   * (per label, tenant default, or a moderation bank entry's). The work is one query per
   * moderation label in use plus one evaluation per candidate, not per media of the tenant.
   */
  async reevaluate(tenantId: string): Promise<number> {
    const inUse = await this.db
      .selectFrom('labels as l')
      .select(['l.id', 'l.alias_of'])
      .where('l.tenant_id', '=', tenantId)
      .where('l.kind', '=', 'moderation')
      .where((eb) => eb.exists(eb.selectFrom('asset_labels as al').select('al.id').where('al.tenant_id', '=', tenantId).whereRef('al.label_id', '=', 'l.id')))
      .execute();
    // Labels named like a bank phrase are judged as the entry's label they stand for.
    const members = new Map<string, string[]>();
    for (const l of inUse) members.set(canonicalId(l), [...(members.get(canonicalId(l)) ?? []), l.id]);
    const judged = members.size
      ? await this.db
          .selectFrom('labels')
          .select(['id', 'name'])
          .where('tenant_id', '=', tenantId)
          .where('id', 'in', [...members.keys()])
          .execute()
      : [];
    const thresholds = await thresholdsFor(this.db, tenantId, judged, this.serverDefault);
    const candidates = new Set<string>();
    for (const label of judged) {
      const rows = await this.db
        .selectFrom('asset_labels as al')
        .innerJoin('mediaassets as m', 'm.id', 'al.media_id')
        .select('al.media_id')
        .distinct()
        .where('al.tenant_id', '=', tenantId)
        .where('m.tenant_id', '=', tenantId)
        .where('al.label_id', 'in', members.get(label.id)!)
        .where('al.confidence', '>=', thresholds.get(label.id)!)
        .where('m.moderation_state', 'in', ['none', 'pending', 'approved'])
        .execute();
      for (const r of rows) candidates.add(r.media_id);
    }
    let held = 0;
    for (const mediaId of candidates) {
      try {
        if ((await this.evaluate(tenantId, mediaId)) === 'held') held++;
      } catch (err) {
        // Deleted meanwhile: nothing to hold.
        if (!(err instanceof AppError && err.slug === 'not-found')) throw err;
      }
    }
    return held;
  }

  private async stateOf(tenantId: string, mediaId: string): Promise<ModerationState> {
    const media = await this.db
      .selectFrom('mediaassets')
      .select('moderation_state')
      .where('id', '=', mediaId)
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
    if (!media) throw notFound('media');
    return media.moderation_state;
  }

  /** Moves the state if it is still `from` (so concurrent writers cannot both win), records the decision and its event, tells listeners after commit. */
  private async transition(
    tenantId: string,
    mediaId: string,
    from: ModerationState,
    to: ModerationState,
    d: { decision: ModerationDecisionKind; labels: ModerationLabel[]; note: string | null; actor: Principal | null },
  ): Promise<boolean> {
    return writeWithEvents(this.db, this.changes, (tx, record) =>
      moveModerationState(tx, record, { tenantId, mediaId, from, to, ...d, actor: d.actor ? { keyId: d.actor.keyId, userId: d.actor.userId } : null }),
    );
  }
}
