import type { Kysely } from 'kysely';
import type { Database, ModerationDecisionKind, ModerationState } from '../db/schema.js';
import { nowIso, toJson } from '../db/schema.js';
import type { MediaEventInput } from '../events/media-events.js';
import { newId } from '../shared/ids.js';

export interface ModerationLabel {
  name: string;
  confidence: number;
  threshold: number;
}

export interface ModerationMove {
  tenantId: string;
  mediaId: string;
  from: ModerationState;
  to: ModerationState;
  decision: ModerationDecisionKind;
  labels: ModerationLabel[];
  note: string | null;
  /** null: the system moved it. */
  actor: { keyId: string; userId: string | null } | null;
}

/**
 * Moves a media's moderation state if it is still `from` (so concurrent writers cannot both
 * win), and records the decision and its event (naming the decision) in the caller's
 * transaction. Returns whether it moved.
 */
export async function moveModerationState(tx: Kysely<Database>, record: (e: MediaEventInput) => void, m: ModerationMove): Promise<boolean> {
  const now = nowIso();
  const res = await tx
    .updateTable('mediaassets')
    .set({ moderation_state: m.to, updated_at: now })
    .where('id', '=', m.mediaId)
    .where('tenant_id', '=', m.tenantId)
    .where('moderation_state', '=', m.from)
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) !== 1) return false;
  const decisionId = newId();
  await tx
    .insertInto('moderation_decisions')
    .values({
      id: decisionId,
      tenant_id: m.tenantId,
      media_id: m.mediaId,
      decision: m.decision,
      previous_state: m.from,
      state: m.to,
      note: m.note,
      labels: toJson(m.labels),
      actor_key_id: m.actor?.keyId ?? null,
      actor_user_id: m.actor?.userId ?? null,
      at: now,
    })
    .execute();
  // The decision's id, not its labels: the event log holds small facts, the decision the rest.
  record({
    tenantId: m.tenantId,
    mediaId: m.mediaId,
    type: 'moderation',
    data: { decision: m.decision, previous_state: m.from, state: m.to, decision_id: decisionId },
  });
  return true;
}
