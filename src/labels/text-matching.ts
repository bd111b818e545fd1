import type { Db } from '../db/database.js';
import type { LabelKind } from '../db/schema.js';
import type { LabelInput } from './asset-labels.js';
import { effectiveBanks } from './effective-banks.js';
import { normalizeLabelName, shownName } from './label-names.js';

/** A bank entry as the matcher sees it: its name, its phrases (synonyms) and its bank's similarity threshold. */
export interface MatchableEntry {
  /** The folded key. */
  name: string;
  /** As the bank spells it (the key when not known): the name of the label a match writes. */
  display?: string;
  kind: LabelKind;
  phrases: string[];
  /** Its parent's name, the parent's parent's… (as spelt): a match on an entry implies them. */
  ancestors: string[];
  /** The similarity a text must reach to match it by meaning (the bank's, else the server's). */
  matchThreshold: number;
}

/** A piece of text of a media with where it is (a line read from a frame, a spoken sentence). */
export interface TextPiece {
  text: string;
  /** Seconds into the media, when the text has a time. */
  t?: number;
}

export interface TextMatch {
  entry: string;
  kind: LabelKind;
  method: 'phrase' | 'embedding';
  /** The name or phrase that matched. */
  matched: string;
  /** 1 for a phrase found as words; the similarity for a match by meaning. */
  score: number;
  /** Where in the media (seconds), for pieces that have times. */
  times: number[];
}

/** Lower case, letters and digits only, single spaces: what "found as words" compares. */
export function foldText(raw: string): string {
  return raw
    .normalize('NFKC')
    .toLocaleLowerCase('en-US')
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
}

/** The folded forms a term is found as: itself, and a simple English plural. */
function forms(term: string): string[] {
  const t = foldText(term);
  if (!t) return [];
  return [t, `${t}s`, `${t}es`];
}

/**
 * The entries whose name or a phrase occurs in the text as whole words (case and punctuation
 * ignored, simple plurals included). Each entry matches once, with every time it was found at.
 */
export function findPhrases(entries: readonly MatchableEntry[], pieces: readonly TextPiece[]): TextMatch[] {
  const folded = pieces.map((p) => ({ text: ` ${foldText(p.text)} `, t: p.t }));
  const out: TextMatch[] = [];
  for (const e of entries) {
    let matched: string | undefined;
    const times = new Set<number>();
    for (const term of [e.name, ...e.phrases]) {
      const variants = forms(term).map((f) => ` ${f} `);
      if (!variants.length) continue;
      for (const p of folded) {
        if (!variants.some((v) => p.text.includes(v))) continue;
        matched ??= term;
        if (p.t !== undefined) times.add(p.t);
      }
    }
    if (matched !== undefined) out.push({ entry: e.name, kind: e.kind, method: 'phrase', matched, score: 1, times: [...times].sort((a, b) => a - b) });
  }
  return out;
}

/** Cosine similarity of two vectors (1: same direction). */
export function cosine(a: readonly number[], b: readonly number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}

/** Turns texts into vectors (the sentence encoder of the model process). */
export type Embed = (texts: string[]) => Promise<number[][]>;

/**
 * The entries not found as words whose name or a phrase is close in meaning to a piece (cosine
 * similarity of sentence vectors at or above the entry's threshold). Vectors of terms are kept by
 * `cache` across calls: a tenant's banks are embedded once per process, not once per media.
 */
export async function findByMeaning(
  entries: readonly MatchableEntry[],
  pieces: readonly TextPiece[],
  embed: Embed,
  cache: Map<string, number[]>,
  opts: { maxTerms: number },
): Promise<TextMatch[]> {
  // A subtitle read in five frames is one text seen at five times.
  const timesOf = new Map<string, number[]>();
  for (const p of pieces) {
    const text = p.text.trim();
    if (!text) continue;
    const times = timesOf.get(text) ?? [];
    if (p.t !== undefined) times.push(p.t);
    timesOf.set(text, times);
  }
  const texts = [...timesOf.keys()];
  if (!texts.length || !entries.length) return [];
  const terms = [...new Set(entries.flatMap((e) => [e.name, ...e.phrases]))].slice(0, opts.maxTerms);
  const missing = [...new Set([...terms, ...texts])].filter((t) => !cache.has(t));
  // Bounded: a cache that would grow past its size starts again (a tenant's banks are encoded again once).
  if (cache.size + missing.length > MAX_CACHED_VECTORS) cache.clear();
  const needed = cache.size ? missing : [...new Set([...terms, ...texts])];
  for (let i = 0; i < needed.length; i += EMBED_BATCH) {
    const batch = needed.slice(i, i + EMBED_BATCH);
    const vectors = await embed(batch);
    for (const [j, t] of batch.entries()) cache.set(t, vectors[j]!);
  }
  const allowed = new Set(terms);
  const textVectors = texts.map((t) => ({ text: t, v: cache.get(t)! }));
  const out: TextMatch[] = [];
  for (const [n, e] of entries.entries()) {
    // Thousands of entries against thousands of lines: the event loop (and the media lock's renewal) gets its turns.
    if (n % 100 === 99) await new Promise((resolve) => setImmediate(resolve));
    let best: { term: string; score: number } | undefined;
    const times = new Set<number>();
    for (const term of [e.name, ...e.phrases]) {
      if (!allowed.has(term)) continue;
      const tv = cache.get(term);
      if (!tv) continue;
      for (const p of textVectors) {
        const score = cosine(tv, p.v);
        if (score < e.matchThreshold) continue;
        if (!best || score > best.score) best = { term, score };
        for (const t of timesOf.get(p.text)!) times.add(t);
      }
    }
    if (best) {
      out.push({
        entry: e.name,
        kind: e.kind,
        method: 'embedding',
        matched: best.term,
        score: Math.round(best.score * 10000) / 10000,
        times: [...times].sort((a, b) => a - b),
      });
    }
  }
  return out;
}

/** Most vectors kept per process (about 4 KB each). */
const MAX_CACHED_VECTORS = 20_000;
/** Texts encoded per request to the model process, so that each stays well inside its time limit. */
const EMBED_BATCH = 128;

/**
 * Every entry of the tenant's effective banks (both kinds) with its phrases, ancestors and
 * threshold; the global banks named in `except` (the models' own taxonomy) are left out.
 */
export async function matchableEntries(db: Db, tenantId: string, defaultThreshold: number, except: readonly string[] = []): Promise<MatchableEntry[]> {
  const banks = (await effectiveBanks(db, tenantId)).filter((b) => !(b.tenant_id === null && except.includes(b.name)));
  if (!banks.length) return [];
  const bankIds = banks.map((b) => b.id);
  const entries = await db
    .selectFrom('label_bank_entries')
    .select(['id', 'bank_id', 'name', 'display_name', 'parent_id'])
    .where('bank_id', 'in', bankIds)
    .execute();
  const entryById = new Map(entries.map((e) => [e.id, e]));
  const ancestorsOf = (e: { parent_id: string | null }): string[] => {
    const out: string[] = [];
    const seen = new Set<string>();
    for (let p = e.parent_id ? entryById.get(e.parent_id) : undefined; p && !seen.has(p.name); p = p.parent_id ? entryById.get(p.parent_id) : undefined) {
      seen.add(p.name);
      out.push(shownName(p));
    }
    return out;
  };
  const phrases = await db
    .selectFrom('label_bank_phrases as p')
    .innerJoin('label_bank_entries as e', 'e.id', 'p.entry_id')
    .select(['p.entry_id', 'p.phrase'])
    .where('e.bank_id', 'in', bankIds)
    .execute();
  const phrasesOf = new Map<string, string[]>();
  for (const p of phrases) phrasesOf.set(p.entry_id, [...(phrasesOf.get(p.entry_id) ?? []), p.phrase]);
  const bankOf = new Map(banks.map((b) => [b.id, b]));
  // The first bank (tenant banks first) wins for a name, as everywhere else.
  const seen = new Set<string>();
  const out: MatchableEntry[] = [];
  for (const bank of banks) {
    for (const e of entries.filter((x) => x.bank_id === bank.id)) {
      const key = `${bank.kind}\0${e.name}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const b = bankOf.get(e.bank_id)!;
      out.push({
        name: e.name,
        display: shownName(e),
        kind: b.kind,
        phrases: phrasesOf.get(e.id) ?? [],
        ancestors: ancestorsOf(e),
        matchThreshold: b.match_threshold === null ? defaultThreshold : Number(b.match_threshold),
      });
    }
  }
  return out;
}

/**
 * The labels text matches give a media from one source: each matched entry and its ancestors,
 * at the match's score, with the times it was found at.
 */
export function labelsFromMatches(
  matches: readonly TextMatch[],
  entries: readonly MatchableEntry[],
  source: 'model' | 'ocr' | 'transcript' | 'caption',
): LabelInput[] {
  const byName = new Map(entries.map((e) => [`${e.kind}\0${e.name}`, e]));
  const out = new Map<string, LabelInput>();
  for (const m of matches) {
    const entry = byName.get(`${m.kind}\0${m.entry}`);
    const names = [entry?.display ?? m.entry, ...(entry?.ancestors ?? [])];
    for (const name of names) {
      const key = `${m.kind}\0${normalizeLabelName(name)}`;
      const prev = out.get(key);
      const frames = [...new Set([...(prev?.frames ?? []).map((f) => f.t), ...m.times])].sort((a, b) => a - b).map((t) => ({ t, confidence: m.score }));
      const confidence = Math.max(prev?.confidence ?? 0, m.score);
      out.set(key, {
        name,
        kind: m.kind,
        source,
        confidence,
        frames,
        count: Math.max(1, frames.length),
        confidenceSum: confidence * Math.max(1, frames.length),
      });
    }
  }
  return [...out.values()];
}
