import type { ColumnType, Generated } from 'kysely';

/**
 * Table types shared by both dialects. Timestamps are ISO-8601 strings in UTC on both
 * (text on SQLite, timestamptz parsed back to ISO strings on PostgreSQL); JSON columns
 * are written as JSON text and read through `fromJson`, since SQLite returns text and
 * PostgreSQL returns parsed jsonb; flags are 0/1 integers.
 */
type Json = ColumnType<unknown, string, string>;
type Timestamp = string;

export interface TenantsTable {
  id: string;
  name: string;
  created_at: Timestamp;
  /** Storage quota in bytes; null: none. */
  quota_bytes?: number | null;
}

export interface ApiKeysTable {
  id: string;
  tenant_id: string;
  user_id: string | null;
  is_admin: number;
  name: string | null;
  key_hash: string;
  created_at: Timestamp;
  last_used_at: Timestamp | null;
  revoked_at: Timestamp | null;
}

export type UploadState = 'open' | 'completing' | 'completed' | 'failed' | 'aborted' | 'expired';
export type UploadProtocol = 'chunked' | 'tus';

export interface UploadSessionsTable {
  id: string;
  tenant_id: string;
  user_id: string;
  protocol: UploadProtocol;
  filename: string;
  content_type: string | null;
  total_size: number;
  chunk_size: number;
  chunk_count: number;
  sha256: string | null;
  /** The spoken language the upload declared (BCP 47), for its transcript. */
  language: Generated<string | null>;
  caption: string | null;
  user_tags: Json;
  labels: Json;
  state: UploadState;
  error: string | null;
  media_id: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  expires_at: Timestamp;
  /** The process completing the session (process-identity.ts) and until when its claim holds. */
  lease_owner?: string | null;
  lease_until?: Timestamp | null;
  /** The media id the completion under way is creating. */
  pending_media_id?: string | null;
}

export interface UploadChunksTable {
  session_id: string;
  chunk_index: number;
  size: number;
  checksum: string;
  received_at: Timestamp;
}

export type MediaStatus = 'queued' | 'processing' | 'ready' | 'error';
export type MediaKind = 'video' | 'audio' | 'image' | 'document' | 'other';

export interface MediaAssetsTable {
  id: string;
  tenant_id: string;
  user_id: string;
  status: MediaStatus;
  error_code: string | null;
  error_reason: string | null;
  kind: MediaKind;
  original_filename: string;
  mime_type: string;
  size: number;
  sha256: string;
  caption: string | null;
  user_tags: Json;
  file_metadata: Json;
  upload_session_id: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  processing_started_at: Timestamp | null;
  ready_at: Timestamp | null;
  /** Random per media; part of every playback signature, so URLs die with the media. */
  playback_key: string | null;
  title: string | null;
  description: string | null;
  moderation_state: Generated<ModerationState>;
}

export type ModerationState = 'none' | 'pending' | 'held' | 'approved' | 'rejected';

/** A view of the `status` events of media_events (what the history and the event streams read). */
export interface MediaStatusEventsTable {
  id: string;
  tenant_id: string;
  media_id: string;
  status: MediaStatus;
  error_code: string | null;
  at: Timestamp;
}

/** One entry of the media event log: written in the transaction of the change it records. */
export interface MediaEventsTable {
  /** UUIDv7; a status event's id is also its Server-Sent Events id. */
  id: string;
  tenant_id: string;
  /** 1, 2, 3… per tenant, without gaps, in commit order. */
  seq: number;
  /** No foreign key: a `deleted` event outlives its media. */
  media_id: string;
  type: string;
  data: Json;
  at: Timestamp;
}

/** The last `seq` given out in a tenant's media event log. */
export interface MediaEventSeqsTable {
  tenant_id: string;
  seq: number;
}

export type CaptionKind = 'subtitles' | 'captions';

export interface CaptionTracksTable {
  id: string;
  tenant_id: string;
  user_id: string;
  media_id: string;
  /** BCP 47 tag in canonical case; the file is transcripts/<language>.vtt. */
  language: string;
  label: string;
  kind: CaptionKind;
  /** Plain text of every cue, for search. */
  text: string;
  cue_count: number;
  /** `user`: uploaded; `auto`: transcribed from the media's speech. */
  source: Generated<CaptionSource>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type CaptionSource = 'user' | 'auto';

/** A document's text (a PDF's text layer, an EPUB's chapters) as its processing read it, for search. */
export interface DocumentTextsTable {
  media_id: string;
  tenant_id: string;
  /** Normalised, at most DOCUMENT_TEXT_MAX_CHARS characters (file_metadata.document says whether it was cut). */
  text: string;
  updated_at: Timestamp;
}

export interface ServerSecretsTable {
  name: string;
  value: string;
  created_at: Timestamp;
}

export type LabelKind = 'general' | 'moderation';

export interface LabelsTable {
  id: string;
  tenant_id: string;
  /** The folded key (lower case) that matching, uniqueness and lookups use. */
  name: string;
  /** The name as first given or as its bank entry spells it; null: not known (written before 0016), show `name`. */
  display_name: ColumnType<string | null, string | null | undefined, string | null>;
  kind: LabelKind;
  parent_id: string | null;
  /** The label of the bank entry this label is a phrase (synonym) of: readers take it as that label. Derived from the banks. */
  alias_of: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Timestamp;
}

export interface AssetLabelsTable {
  id: string;
  tenant_id: string;
  user_id: string;
  media_id: string;
  label_id: string;
  source: AssetLabelSource;
  count: number;
  confidence: number;
  /** Sum of the confidences written (for bank statistics); null on rows from before it: confidence × count. */
  confidence_sum: ColumnType<number | null, number | null | undefined, number | null>;
  frame_data: Json;
  first_seen_at: Timestamp;
  last_seen_at: Timestamp;
}

/** Where a media's label came from: by hand, the vision models, or a bank entry found in its on-screen text, speech or written text. */
export type AssetLabelSource = 'user' | 'model' | 'ocr' | 'transcript' | 'caption';

export interface LabelBanksTable {
  id: string;
  /** null for a global bank, visible to every tenant unless overridden by name. */
  tenant_id: string | null;
  /** Folded key; `display_name` is the name as given (null: from before 0016). */
  name: string;
  display_name: ColumnType<string | null, string | null | undefined, string | null>;
  kind: LabelKind;
  description: string | null;
  /** Similarity (0-1) a text must reach to match an entry by meaning; null: LABELING_MATCH_THRESHOLD. */
  match_threshold: Generated<number | null>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface LabelBankEntriesTable {
  id: string;
  bank_id: string;
  tenant_id: string | null;
  /** Folded key; `display_name` is the name as given (null: from before 0016). */
  name: string;
  display_name: ColumnType<string | null, string | null | undefined, string | null>;
  label_id: string | null;
  parent_id: string | null;
  threshold: number | null;
  created_at: Timestamp;
}

export interface LabelBankPhrasesTable {
  id: string;
  entry_id: string;
  tenant_id: string | null;
  /** Folded key; `display_name` is the phrase as given (null: from before 0016). */
  phrase: string;
  display_name: ColumnType<string | null, string | null | undefined, string | null>;
}

/** One tenant's use of one bank entry (a global entry has a row per tenant using it). */
export interface LabelBankStatsTable {
  entry_id: string;
  tenant_id: string;
  usage_count: number;
  match_count: number;
  confidence_sum: number;
  max_confidence: number;
  last_matched_at: Timestamp | null;
}

export interface ModerationSettingsTable {
  tenant_id: string;
  /** null falls back to the server's MODERATION_DEFAULT_THRESHOLD. */
  default_threshold: number | null;
  updated_at: Timestamp;
}

export interface ModerationThresholdsTable {
  tenant_id: string;
  label_id: string;
  threshold: number;
  updated_at: Timestamp;
}

export type ModerationDecisionKind = 'await' | 'clear' | 'hold' | 'approve' | 'reject';

export interface ModerationDecisionsTable {
  id: string;
  tenant_id: string;
  media_id: string;
  decision: ModerationDecisionKind;
  previous_state: ModerationState;
  state: ModerationState;
  note: string | null;
  /** The moderation labels the decision was made on: [{ name, confidence, threshold? }]. */
  labels: Json;
  /** null for holds made by the system. */
  actor_key_id: string | null;
  actor_user_id: string | null;
  at: Timestamp;
}

/** SQLite only: maps a media to the integer rowid of its FTS5 document (in its tenant's media_search_fts_<hash>). */
export interface MediaSearchDocsTable {
  id: Generated<number>;
  media_id: string;
  tenant_id: string;
  indexed_at: Timestamp;
}

/** PostgreSQL only: a media's weighted tsvector. */
export interface MediaSearchTable {
  media_id: string;
  tenant_id: string;
  document: string;
  indexed_at: Timestamp;
}

/** Media whose search documents must be rebuilt (their label words changed). */
export interface SearchStaleTable {
  media_id: string;
  tenant_id: string;
  /** Grows with each new mark, so a mark made during a rebuild is not lost. */
  version: Generated<number>;
}

/** SQLite only: the ranked hits of a search, taken with its first page, that later pages read. */
export interface SearchSnapshotsTable {
  id: string;
  tenant_id: string;
  fingerprint: string;
  /** JSON [[media_id, score], …], best first. */
  hits: string;
  expires_at: Timestamp;
}

/** User tags normalised (lower-cased), maintained by the search indexer. */
export interface MediaTagsTable {
  tenant_id: string;
  media_id: string;
  tag: string;
}

export interface MediaViewsTable {
  tenant_id: string;
  user_id: string;
  media_id: string;
  view_count: number;
  first_viewed_at: Timestamp;
  last_viewed_at: Timestamp;
}

export type JobState = 'waiting' | 'active' | 'completed' | 'failed';

export interface QueueJobsTable {
  id: string;
  queue: string;
  name: string;
  data: Json;
  dedupe_key: string | null;
  state: JobState;
  attempts: number;
  max_attempts: number;
  run_at: number;
  lease_owner: string | null;
  lease_until: number | null;
  last_error: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  finished_at: Timestamp | null;
  /** The job's tenant ('' when its payload names none); null only on rows of older code. */
  tenant_id: string | null;
}

export interface QueueTenantTurnsTable {
  queue: string;
  tenant_id: string;
  /** Grows with each job started in the queue: the tenant with the smallest was served longest ago. */
  turn: number;
}

/** The embedded backend's per-media lock (src/media/media-lock.ts): one row per held lock. */
export interface MediaLocksTable {
  media_id: string;
  /** The holder: this process and one acquisition of it. */
  owner: string;
  /** ms since the epoch; renewed while held, free to take once past. */
  lease_until: number;
  acquired_at: string;
}

export interface Database {
  tenants: TenantsTable;
  api_keys: ApiKeysTable;
  upload_sessions: UploadSessionsTable;
  upload_chunks: UploadChunksTable;
  mediaassets: MediaAssetsTable;
  media_status_events: MediaStatusEventsTable;
  media_events: MediaEventsTable;
  media_event_seqs: MediaEventSeqsTable;
  caption_tracks: CaptionTracksTable;
  document_texts: DocumentTextsTable;
  labels: LabelsTable;
  asset_labels: AssetLabelsTable;
  label_banks: LabelBanksTable;
  label_bank_entries: LabelBankEntriesTable;
  label_bank_phrases: LabelBankPhrasesTable;
  label_bank_stats: LabelBankStatsTable;
  moderation_settings: ModerationSettingsTable;
  moderation_thresholds: ModerationThresholdsTable;
  moderation_decisions: ModerationDecisionsTable;
  media_search_docs: MediaSearchDocsTable;
  media_search: MediaSearchTable;
  media_tags: MediaTagsTable;
  search_stale: SearchStaleTable;
  search_snapshots: SearchSnapshotsTable;
  media_views: MediaViewsTable;
  queue_jobs: QueueJobsTable;
  queue_tenant_turns: QueueTenantTurnsTable;
  media_locks: MediaLocksTable;
  server_secrets: ServerSecretsTable;
}

export function toJson(value: unknown): string {
  return JSON.stringify(value ?? null);
}

export function fromJson<T>(value: unknown, fallback: T): T {
  if (value === null || value === undefined) return fallback;
  if (typeof value === 'string') {
    try {
      return JSON.parse(value) as T;
    } catch {
      return fallback;
    }
  }
  return value as T;
}

export function nowIso(): string {
  return new Date().toISOString();
}
