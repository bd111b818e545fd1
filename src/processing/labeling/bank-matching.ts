import type { Db } from '../../db/database.js';
import type { LabelInput, LabelSource } from '../../labels/asset-labels.js';
import {
  findByMeaning,
  findPhrases,
  labelsFromMatches,
  matchableEntries,
  type Embed,
  type MatchableEntry,
  type TextPiece,
} from '../../labels/text-matching.js';
import { modelBanks } from './taxonomy.js';
import type { VisionModels } from './vision.js';

/** The global banks of the models' own taxonomy: their entries are what the models name, not words to look for in text. */
const MODEL_BANKS = modelBanks().map((b) => b.name);

/** Vectors of bank terms and texts, per worker process: a tenant's banks are encoded once, not once per media (bounded in findByMeaning). */
const vectors = new Map<string, number[]>();

export interface MatchSettings {
  labelingMatchThreshold: number;
  labelingMatchMaxTerms: number;
}

/** The tenant's bank entries that text is matched against (the models' own banks left out). */
export function entriesToMatch(db: Db, tenantId: string, settings: MatchSettings): Promise<MatchableEntry[]> {
  return matchableEntries(db, tenantId, settings.labelingMatchThreshold, MODEL_BANKS);
}

/** The sentence encoder of the model process, as text matching calls it; undefined when it has none. */
export function embedderOf(models: Pick<VisionModels, 'embed'>): Embed | undefined {
  return models.embed ? async (texts) => (await models.embed!(texts)).vectors : undefined;
}

/** Entries close in meaning to the pieces (vectors kept per process). */
export function byMeaning(entries: readonly MatchableEntry[], pieces: readonly TextPiece[], embed: Embed, settings: MatchSettings) {
  return findByMeaning(entries, pieces, embed, vectors, { maxTerms: settings.labelingMatchMaxTerms });
}

/**
 * The labels a text of the media gives from one source: the entries found in it as words, then
 * the others close to it in meaning (when there is a sentence encoder), each with its ancestors.
 */
export async function labelsFromText(
  entries: readonly MatchableEntry[],
  pieces: readonly TextPiece[],
  source: Exclude<LabelSource, 'user'>,
  settings: MatchSettings,
  embed: Embed | undefined,
): Promise<LabelInput[]> {
  if (!entries.length || !pieces.length) return [];
  const found = findPhrases(entries, pieces);
  const unmatched = entries.filter((e) => !found.some((f) => f.entry === e.name && f.kind === e.kind));
  const meant = embed ? await byMeaning(unmatched, pieces, embed, settings) : [];
  return labelsFromMatches([...found, ...meant], entries, source);
}
