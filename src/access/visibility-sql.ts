import { sql, type RawBuilder } from 'kysely';
import { PUBLIC_MODERATION_STATES, type Audience } from './visibility.js';

/** Ready and not held/rejected by moderation: what feeds, search and recommendations show to anyone. */
export function publiclyVisible(alias = 'm'): RawBuilder<boolean> {
  const m = sql.ref(alias);
  const states = sql.join(PUBLIC_MODERATION_STATES.map((state) => sql.lit(state)));
  return sql<boolean>`(${m}.status = 'ready' and ${m}.moderation_state in (${states}))`;
}

export function visibleTo(audience: Audience, alias = 'm'): RawBuilder<boolean> {
  if (audience.kind === 'feed') return publiclyVisible(alias);
  if (audience.isAdmin) return sql<boolean>`1 = 1`;
  return sql<boolean>`(${publiclyVisible(alias)} or ${sql.ref(alias)}.user_id = ${audience.userId})`;
}
