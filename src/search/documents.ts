import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { fromJson } from '../db/schema.js';
import { effectiveBanks } from '../labels/effective-banks.js';
import { ancestorChain, generalLabelLinks, labelWithAncestors, type LabelRef } from '../labels/hierarchy.js';
import { distinctWordsField, documentField } from './text.js';
import { tagKey } from '../media/tags.js';

/** What the search index holds for one media: each field already folded and tokenised. */
export interface SearchDocument {
  tenantId: string;
  mediaId: string;
  /** The title given to the media, and a document's own title and author. */
  title: string;
  filename: string;
  caption: string;
  description: string;
  tags: string;
  labels: string;
  tracks: string;
  /** A document's text: its distinct words, bounded (see distinctWordsField). */
  body: string;
  /** Normalised user tags (lower-cased), for `media_tags`. */
  tagList: string[];
}

/** Most an index may hold of one document's body words (see distinctWordsField): half of PostgreSQL's tsvector limit. */
export const BODY_INDEX_BYTES = 512 * 1024;

/**
 * Bank phrases (synonyms) of labels, by label id: the phrases of the entries of the tenant's
 * effective general banks named like the label (entries and labels are matched by name).
 */
async function phrasesOf(db: Db, tenantId: string, labels: ReadonlyMap<string, LabelRef>): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (!labels.size) return out;
  const banks = await effectiveBanks(db, tenantId, 'general');
  if (!banks.length) return out;
  const idsByName = new Map<string, string[]>();
  for (const [id, node] of labels) idsByName.set(node.name, [...(idsByName.get(node.name) ?? []), id]);
  const rows = await db
    .selectFrom('label_bank_phrases as p')
    .innerJoin('label_bank_entries as e', 'e.id', 'p.entry_id')
    .select(['e.name', 'p.phrase'])
    .where(
      'e.bank_id',
      'in',
      banks.map((b) => b.id),
    )
    .where('e.name', 'in', [...idsByName.keys()])
    .execute();
  for (const r of rows) {
    for (const id of idsByName.get(r.name) ?? []) out.set(id, [...(out.get(id) ?? []), r.phrase]);
  }
  return out;
}

/** Caption-track text of media (each track's label and cue text), by media id. */
async function captionTrackText(db: Db, tenantId: string, mediaIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (!mediaIds.length) return out;
  const rows = await sql<{ media_id: string; label: string | null; text: string | null }>`
    select media_id, label, text from caption_tracks
    where tenant_id = ${tenantId} and media_id in (${sql.join(mediaIds)})`.execute(db);
  for (const r of rows.rows) {
    const list = out.get(r.media_id) ?? [];
    list.push(r.label ?? '', r.text ?? '');
    out.set(r.media_id, list);
  }
  return out;
}

/** The text inside media (document_texts: a document's text layer, a video's or image's on-screen text), by media id. */
async function documentText(db: Db, tenantId: string, mediaIds: string[]): Promise<Map<string, string>> {
  if (!mediaIds.length) return new Map();
  const rows = await db.selectFrom('document_texts').select(['media_id', 'text']).where('tenant_id', '=', tenantId).where('media_id', 'in', mediaIds).execute();
  return new Map(rows.map((r) => [r.media_id, r.text]));
}

/** A document's own title and author, as its processing recorded them (file_metadata.document). */
function documentFacts(fileMetadata: unknown): { title?: unknown; author?: unknown } {
  const meta = fromJson<unknown>(fileMetadata, {});
  const doc = meta && typeof meta === 'object' ? (meta as { document?: unknown }).document : undefined;
  return doc && typeof doc === 'object' ? doc : {};
}

const asText = (v: unknown) => (typeof v === 'string' ? v : undefined);

/**
 * Builds the search documents of media of one tenant in a few queries. A media's labels field
 * holds its general labels, their ancestors' names and the bank phrases of all of them, so a
 * search for a parent label or a synonym finds it. Moderation labels are not searchable.
 */
export async function buildDocuments(db: Db, tenantId: string, mediaIds: string[]): Promise<SearchDocument[]> {
  if (!mediaIds.length) return [];
  const rows = await db
    .selectFrom('mediaassets')
    .select(['id', 'tenant_id', 'kind', 'title', 'original_filename', 'caption', 'description', 'user_tags'])
    // Only documents' file_metadata is read (their own title and author): other kinds' can be large and hold no words.
    .select(sql<unknown>`case when kind = 'document' then file_metadata end`.as('document_metadata'))
    .where('tenant_id', '=', tenantId)
    .where('id', 'in', mediaIds)
    .execute();
  if (!rows.length) return [];
  const ids = rows.map((r) => r.id);
  // A document's text layer, or the on-screen text read in a video or an image.
  const textIds = rows.filter((r) => r.kind === 'document' || r.kind === 'video' || r.kind === 'image').map((r) => r.id);
  const links = await generalLabelLinks(db, tenantId, ids);
  const nodes = new Map(
    (
      await labelWithAncestors(
        db,
        tenantId,
        links.map((l) => l.label_id),
      )
    ).map((l) => [l.id, l]),
  );
  const phrases = await phrasesOf(db, tenantId, nodes);
  const tracks = await captionTrackText(db, tenantId, ids);
  const texts = await documentText(db, tenantId, textIds);

  const labelWords = (labelId: string) => ancestorChain(labelId, nodes).flatMap((n) => [n.name, ...(phrases.get(n.id) ?? [])]);
  const labelsByMedia = new Map<string, string[]>();
  for (const l of links) labelsByMedia.set(l.media_id, [...(labelsByMedia.get(l.media_id) ?? []), ...labelWords(l.label_id)]);

  return rows.map((r) => {
    const tags = fromJson<string[]>(r.user_tags, []).filter((t): t is string => typeof t === 'string');
    const doc = documentFacts(r.document_metadata);
    return {
      tenantId: r.tenant_id,
      mediaId: r.id,
      title: documentField([r.title, asText(doc.title), asText(doc.author)]),
      filename: documentField([r.original_filename]),
      caption: documentField([r.caption]),
      description: documentField([r.description]),
      tags: documentField(tags),
      labels: documentField([...new Set(labelsByMedia.get(r.id) ?? [])]),
      tracks: documentField(tracks.get(r.id) ?? []),
      body: distinctWordsField(texts.get(r.id), BODY_INDEX_BYTES),
      tagList: [...new Set(tags.map(tagKey).filter(Boolean))],
    };
  });
}
