import path from 'node:path';

/**
 * Every setting Qasar reads from the environment. The table is the single source of
 * truth: parsing, defaults, the README's configuration table and `qasar --help` come from it.
 */
type Parser<T> = (raw: string) => T;

interface SettingSpec<T> {
  env: string;
  default: string | undefined;
  description: string;
  parse: Parser<T>;
}

export class SettingsError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`invalid setting ${setting}: ${message}`);
    this.name = 'SettingsError';
  }
}

const str: Parser<string> = (raw) => raw;

function bool(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new Error(`expected true or false, got "${raw}"`);
}

function int(min: number, max: number): Parser<number> {
  return (raw) => {
    if (!/^-?\d+$/.test(raw.trim())) throw new Error(`expected a whole number, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw new Error(`expected a number from ${min} to ${max}, got ${n}`);
    return n;
  };
}

function num(min: number, max: number): Parser<number> {
  return (raw) => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new Error(`expected a number, got "${raw}"`);
    if (n < min || n > max) throw new Error(`expected a number from ${min} to ${max}, got ${n}`);
    return n;
  };
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
};

/** Sizes accept plain bytes or a binary unit: 8MiB, 512k, 10G. */
export function parseBytes(raw: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(raw);
  const unit = m?.[2]?.toLowerCase() ?? '';
  if (!m || !(unit in UNITS)) throw new Error(`expected a size such as 1048576, 512KiB or 8MiB, got "${raw}"`);
  const n = Math.floor(Number(m[1]) * UNITS[unit]!);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`size out of range: "${raw}"`);
  return n;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Durations accept milliseconds or a unit: 500ms, 30s, 15m, 24h, 7d. */
export function parseDuration(raw: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(raw);
  if (!m) throw new Error(`expected a duration such as 30s, 15m or 24h, got "${raw}"`);
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2] ?? 'ms']!);
}

/** A duration no longer than `maxMs`. */
function durationAtMost(maxMs: number): Parser<number> {
  return (raw) => {
    const ms = parseDuration(raw);
    if (ms > maxMs) throw new Error(`expected at most ${maxMs / 1000} s, got "${raw}"`);
    return ms;
  };
}

function oneOf<T extends string>(...values: T[]): Parser<T> {
  return (raw) => {
    if (!values.includes(raw as T)) throw new Error(`expected one of ${values.join(', ')}, got "${raw}"`);
    return raw as T;
  };
}

function list(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function urlPrefix(raw: string): string {
  if (!/^\/[A-Za-z0-9._~\-/]*$/.test(raw) || raw.endsWith('/') || raw.includes('//')) {
    throw new Error(`expected a path such as /api/v1 (leading slash, no trailing slash), got "${raw}"`);
  }
  return raw;
}

function databaseUrl(raw: string): string {
  if (/^sqlite:/.test(raw) || /^postgres(ql)?:\/\//.test(raw)) return raw;
  throw new Error(`expected sqlite:<file> or postgres://…, got "${raw.replace(/\/\/[^@]*@/, '//***@')}"`);
}

function redisUrl(raw: string): string {
  if (raw === '' || /^rediss?:\/\//.test(raw)) return raw;
  throw new Error(`expected redis://host:port[/db] or empty, got "${raw}"`);
}

function optionalUrl(raw: string): string {
  if (raw === '') return raw;
  try {
    const u = new URL(raw);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new Error(`expected an http(s) URL or empty, got "${raw}"`);
  }
  return raw.replace(/\/+$/, '');
}

function trustProxy(raw: string): boolean | number | string[] {
  const v = raw.trim().toLowerCase();
  if (['true', 'yes', 'on'].includes(v)) return true;
  if (['', 'false', 'no', 'off'].includes(v)) return false;
  if (/^\d+$/.test(v)) return Number(v);
  return list(raw);
}

function chunkDirName(raw: string): string {
  if (!/^\.?[A-Za-z0-9_-]{1,64}$/.test(raw)) throw new Error(`expected a plain folder name such as .chunks, got "${raw}"`);
  return raw;
}

function secret(raw: string): string {
  if (raw !== '' && raw.length < 32) throw new Error('must be empty or at least 32 characters');
  return raw;
}

function identifier(raw: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(raw)) throw new Error(`expected a lower-case SQL identifier, got "${raw}"`);
  return raw;
}

function prefix(raw: string): string {
  if (!/^[A-Za-z0-9_:.-]{1,64}$/.test(raw)) throw new Error(`expected letters, digits and _ : . -, got "${raw}"`);
  return raw;
}

const spec = {
  host: { env: 'HOST', default: '127.0.0.1', description: 'Address the HTTP server listens on.', parse: str },
  port: { env: 'PORT', default: '8000', description: 'Port the HTTP server listens on (0 picks a free one).', parse: int(0, 65535) },
  apiPrefix: { env: 'API_PREFIX', default: '/api/v1', description: 'Path prefix of the authenticated API.', parse: urlPrefix },
  publicBaseUrl: {
    env: 'PUBLIC_BASE_URL',
    default: '',
    description: 'External base URL of the API (used in links such as tus upload URLs); empty derives it from the request.',
    parse: optionalUrl,
  },
  databaseUrl: {
    env: 'DATABASE_URL',
    default: 'sqlite:./data/qasar.sqlite',
    description: 'sqlite:<file> (embedded default, WAL mode) or postgres://user@host:port/db.',
    parse: databaseUrl,
  },
  databaseSchema: {
    env: 'DATABASE_SCHEMA',
    default: 'public',
    description: 'PostgreSQL schema holding Qasar tables (created if missing). Ignored for SQLite.',
    parse: identifier,
  },
  databasePoolSize: { env: 'DATABASE_POOL_SIZE', default: '10', description: 'PostgreSQL connection pool size per process.', parse: int(1, 500) },
  sqliteCacheSize: {
    env: 'SQLITE_CACHE_SIZE',
    default: '64MiB',
    description:
      'SQLite only: page cache per database connection (filled only as pages are read). Random reads of a large library go to the operating system for every page that does not fit.',
    parse: parseBytes,
  },
  redisUrl: {
    env: 'REDIS_URL',
    default: '',
    description: 'Redis/Valkey URL. When set, the job queue is BullMQ and upload chunk state lives in Redis; empty uses the embedded queue and the database.',
    parse: redisUrl,
  },
  redisPrefix: {
    env: 'REDIS_PREFIX',
    default: 'qasar',
    description: 'Prefix of every Redis key (queues and upload state), so several deployments can share one Redis.',
    parse: prefix,
  },
  storageRoot: {
    env: 'STORAGE_ROOT',
    default: './data/storage',
    description: 'Root folder of all stored files: <root>/<tenant>/<user>/<media>/… and the chunk folder.',
    parse: str,
  },
  storageMinFree: {
    env: 'STORAGE_MIN_FREE',
    default: '256MiB',
    description:
      'Free space kept on the storage file system: below it, new uploads and their bytes are refused (507) and /readyz reports storage not ready, so deletes (and a SQLite database on the same disk) still have room.',
    parse: parseBytes,
  },
  fileBaseUrl: {
    env: 'FILE_BASE_URL',
    default: '',
    description: 'Base URL under which stored files are published (e.g. a CDN or nginx in front of STORAGE_ROOT); empty serves them through the API.',
    parse: optionalUrl,
  },
  chunkTmpDirName: {
    env: 'CHUNK_TMP_DIR_NAME',
    default: '.chunks',
    description: 'Folder name under STORAGE_ROOT for in-progress upload chunks.',
    parse: chunkDirName,
  },
  uploadMaxSize: { env: 'UPLOAD_MAX_SIZE', default: '20GiB', description: 'Largest file accepted by either upload protocol.', parse: parseBytes },
  uploadDefaultChunkSize: {
    env: 'UPLOAD_DEFAULT_CHUNK_SIZE',
    default: '8MiB',
    description: 'Chunk size of a session whose client does not choose one.',
    parse: parseBytes,
  },
  uploadMinChunkSize: {
    env: 'UPLOAD_MIN_CHUNK_SIZE',
    default: '256KiB',
    description: 'Smallest chunk size a client may choose (the last chunk may be shorter).',
    parse: parseBytes,
  },
  uploadMaxChunkSize: { env: 'UPLOAD_MAX_CHUNK_SIZE', default: '64MiB', description: 'Largest chunk size a client may choose.', parse: parseBytes },
  uploadSessionExpiry: {
    env: 'UPLOAD_SESSION_EXPIRY',
    default: '24h',
    description: 'An upload idle this long is expired and its bytes removed (chunked sessions and tus).',
    parse: parseDuration,
  },
  uploadMaxOpenPerUser: {
    env: 'UPLOAD_MAX_OPEN_PER_USER',
    default: '20',
    description: 'Most uploads (chunked sessions and tus) one user may have open at once; one more is refused with 429.',
    parse: int(1, 1_000_000),
  },
  uploadSweepInterval: { env: 'UPLOAD_SWEEP_INTERVAL', default: '5m', description: 'How often expired uploads are swept.', parse: parseDuration },
  enableHls: { env: 'ENABLE_HLS', default: 'true', description: 'Package video as HLS.', parse: bool },
  enableDash: { env: 'ENABLE_DASH', default: 'true', description: 'Package video as DASH.', parse: bool },
  enableWebm: { env: 'ENABLE_WEBM', default: 'true', description: 'Make WebM (VP9/Opus) renditions.', parse: bool },
  enableThumbnails: { env: 'ENABLE_THUMBNAILS', default: 'true', description: 'Make thumbnails and scrubbing sprites.', parse: bool },
  enablePosters: { env: 'ENABLE_POSTERS', default: 'true', description: 'Make posters.', parse: bool },
  enableTranscripts: {
    env: 'ENABLE_TRANSCRIPTS',
    default: 'false',
    description: 'Transcribe the speech of videos and audio with local models into a caption track (kind `captions`, source `auto`).',
    parse: bool,
  },
  transcriptModel: {
    env: 'TRANSCRIPT_MODEL',
    default: 'base',
    description: 'Whisper model for transcripts: `base` (about 4x real time on 2 cores) or `small` (more accurate, 1.5-3x real time, twice the memory).',
    parse: oneOf('base', 'small'),
  },
  transcriptLanguage: {
    env: 'TRANSCRIPT_LANGUAGE',
    default: 'en',
    description:
      'Language of the speech transcribed when the upload does not declare one, as a two- or three-letter code such as en, fr or de (the models here do not detect it).',
    parse: (raw: string) => {
      if (!/^[a-z]{2,3}$/.test(raw)) throw new Error('a two- or three-letter language code such as en, fr or de');
      return raw;
    },
  },
  enableWebp: { env: 'ENABLE_WEBP', default: 'true', description: 'Convert images to WebP.', parse: bool },
  enableWorkerLabeling: {
    env: 'ENABLE_WORKER_LABELING',
    default: 'false',
    description:
      'Label media with the local models in the worker (objects, sexual content); a media that becomes ready is moderation `pending` until they have looked at it.',
    parse: bool,
  },
  labelingFps: {
    env: 'LABELING_FPS',
    default: '1',
    description: 'Frames per second sampled from video for labeling (plus one at each scene change).',
    parse: num(0.01, 30),
  },
  labelingThreshold: { env: 'LABELING_THRESHOLD', default: '0.5', description: 'Smallest model confidence kept as a general label.', parse: num(0, 1) },
  labelingMatchThreshold: {
    env: 'LABELING_MATCH_THRESHOLD',
    default: '0.65',
    description:
      "Similarity (0-1, sentence vectors) at which a label, a line of on-screen text or a spoken sentence matches a bank entry's name or phrase by meaning, for banks without their own `match_threshold`.",
    parse: num(0, 1),
  },
  labelingMatchMaxTerms: {
    env: 'LABELING_MATCH_MAX_TERMS',
    default: '5000',
    description: 'Most bank names and phrases of a tenant matched by meaning (the rest only as words); each is encoded once per worker process.',
    parse: int(1, 1_000_000),
  },
  labelingObjectThreshold: {
    env: 'LABELING_OBJECT_THRESHOLD',
    default: '0.6',
    description: 'Smallest object-detector score kept (below about 0.6 it misnames things); the higher of this and LABELING_THRESHOLD applies.',
    parse: num(0, 1),
  },
  labelingSource: {
    env: 'LABELING_SOURCE',
    default: 'frames',
    description:
      'What the labeler looks at in a video: `frames` (decoded at LABELING_FPS), `thumbnails` or `poster`. Images: the original (HEIC: the poster); documents: their poster.',
    parse: oneOf('poster', 'thumbnails', 'frames'),
  },
  labelingMaxFrames: {
    env: 'LABELING_MAX_FRAMES',
    default: '3600',
    description: 'Most frames labeled per video; a longer video is sampled more sparsely.',
    parse: int(1, 1_000_000),
  },
  modelMemory: {
    env: 'MODEL_MEMORY',
    default: '1536MiB',
    description: 'JavaScript heap limit of each process that runs local models, one per model family (their native memory comes on top).',
    parse: parseBytes,
  },
  modelTimeout: {
    env: 'MODEL_TIMEOUT',
    default: '2m',
    description: 'Longest one model call (one frame, including loading the models) may take before the model process is restarted.',
    parse: parseDuration,
  },
  moderationDefaultThreshold: {
    env: 'MODERATION_DEFAULT_THRESHOLD',
    default: '0.8',
    description: 'Confidence at which a moderation label holds a media, for tenants and labels without their own threshold.',
    parse: num(0, 1),
  },
  labelBankMaxEntries: { env: 'LABEL_BANK_MAX_ENTRIES', default: '10000', description: 'Most entries one label bank may hold.', parse: int(1, 1_000_000) },
  workerConcurrency: {
    env: 'WORKER_CONCURRENCY',
    default: '1',
    description: 'Jobs processing new media that one worker process runs at once.',
    parse: int(1, 64),
  },
  workerFollowupConcurrency: {
    env: 'WORKER_FOLLOWUP_CONCURRENCY',
    default: '1',
    description:
      'Follow-up jobs (WebM renditions) one worker process runs at once, in slots of their own: they never hold up new media. 0: this process runs none.',
    parse: int(0, 64),
  },
  workerTenantConcurrency: {
    env: 'WORKER_TENANT_CONCURRENCY',
    default: '0',
    description:
      "Most jobs of one tenant running at once across all worker processes (0: no limit); free workers take the other tenants' jobs meanwhile. Set it when hosting many tenants.",
    parse: int(0, 1000),
  },
  jobAttempts: { env: 'JOB_ATTEMPTS', default: '5', description: 'Attempts of a job before it is marked failed (transient errors only).', parse: int(1, 100) },
  jobBackoff: { env: 'JOB_BACKOFF', default: '2s', description: 'First retry delay; doubles on each further attempt.', parse: parseDuration },
  jobLease: {
    env: 'JOB_LEASE',
    default: '30s',
    description: 'How long a worker holds a job without renewing it before another worker may take it up.',
    parse: parseDuration,
  },
  ffprobeTimeout: { env: 'FFPROBE_TIMEOUT', default: '30s', description: 'Time limit of one ffprobe run.', parse: parseDuration },
  ffmpegTimeout: {
    env: 'FFMPEG_TIMEOUT',
    default: '2h',
    description: 'Time limit of one ffmpeg run (a packaging step); past it the media fails with a timeout.',
    parse: parseDuration,
  },
  ffmpegTimeoutFactor: {
    env: 'FFMPEG_TIMEOUT_FACTOR',
    default: '10',
    description:
      'Time limit of one ffmpeg run per second of source (its declared duration plus FFMPEG_DURATION_TOLERANCE), on top of FFMPEG_TIMEOUT_FLOOR; FFMPEG_TIMEOUT stays the ceiling.',
    parse: num(0.1, 1000),
  },
  ffmpegTimeoutFloor: {
    env: 'FFMPEG_TIMEOUT_FLOOR',
    default: '5m',
    description: 'Time every ffmpeg run is allowed besides FFMPEG_TIMEOUT_FACTOR x the source duration (start-up, short clips).',
    parse: parseDuration,
  },
  ffmpegDurationTolerance: {
    env: 'FFMPEG_DURATION_TOLERANCE',
    default: '2s',
    description:
      'How far past its declared duration (or 1 % of it, if more) a video or audio file may play: ffmpeg cuts its streams there, and a file whose timestamps run past it fails (duration-mismatch).',
    parse: parseDuration,
  },
  ffmpegThreads: { env: 'FFMPEG_THREADS', default: '0', description: 'Threads per ffmpeg run; 0 uses the number of CPUs.', parse: int(0, 256) },
  maxVideoDuration: { env: 'MAX_VIDEO_DURATION', default: '12h', description: 'Longest video or audio accepted for processing.', parse: parseDuration },
  maxVideoPixels: {
    env: 'MAX_VIDEO_PIXELS',
    default: '35389440',
    description: 'Largest video frame (width x height) accepted for processing; the default is 8K (8192x4320).',
    parse: int(1, 1_000_000_000),
  },
  thumbnailCount: {
    env: 'THUMBNAIL_COUNT',
    default: '25',
    description: 'Evenly spaced thumbnails made per video (fewer for very short clips).',
    parse: int(1, 100),
  },
  audioHlsMinDuration: {
    env: 'AUDIO_HLS_MIN_DURATION',
    default: '60s',
    description: 'Audio at least this long also gets an HLS rendition (AAC) so it streams instead of downloading.',
    parse: parseDuration,
  },
  imageThumbnailSize: {
    env: 'IMAGE_THUMBNAIL_SIZE',
    default: '320',
    description: 'Longest side, in pixels, of image and document thumbnails (never upscaled).',
    parse: int(16, 4096),
  },
  imagePosterSize: {
    env: 'IMAGE_POSTER_SIZE',
    default: '1280',
    description: 'Longest side, in pixels, of image and document posters (never upscaled).',
    parse: int(64, 8192),
  },
  imageMaxPixels: {
    env: 'IMAGE_MAX_PIXELS',
    default: '100000000',
    description: 'Largest image (width x height, per frame) decoded; bigger ones fail as too large before any decoding (decompression-bomb guard).',
    parse: int(1, 2_000_000_000),
  },
  imageTimeout: { env: 'IMAGE_TIMEOUT', default: '2m', description: 'Time limit for deriving the files of one image.', parse: parseDuration },
  documentTimeout: {
    env: 'DOCUMENT_TIMEOUT',
    default: '1m',
    description: "Time limit of one document tool run (pdfinfo, pdftoppm, pdftotext), and of reading an EPUB's text.",
    parse: parseDuration,
  },
  documentTextMaxChars: {
    env: 'DOCUMENT_TEXT_MAX_CHARS',
    default: '1000000',
    description:
      "Most characters of a document's text (a PDF's text layer, an EPUB's chapters) kept for search; a longer text is cut there and marked so (`file_metadata.document.text_truncated`). `0` reads no text.",
    parse: int(0, 50_000_000),
  },
  epubMaxEntries: { env: 'EPUB_MAX_ENTRIES', default: '10000', description: 'Most entries an EPUB (zip) may have.', parse: int(1, 1_000_000) },
  epubMaxEntryBytes: {
    env: 'EPUB_MAX_ENTRY_BYTES',
    default: '50MB',
    description: "Largest uncompressed EPUB entry read (package document, cover image, a chapter's text); a larger chapter's text is left out.",
    parse: parseBytes,
  },
  epubMaxTotalBytes: {
    env: 'EPUB_MAX_TOTAL_BYTES',
    default: '2GiB',
    description: 'Largest total uncompressed size of all entries an EPUB declares (zip-bomb guard, checked without unpacking).',
    parse: parseBytes,
  },
  epubMaxRatio: {
    env: 'EPUB_MAX_RATIO',
    default: '200',
    description:
      'Highest compression ratio accepted for any EPUB entry and for the whole zip (zip-bomb guard; checked on the declared sizes and again while inflating).',
    parse: int(2, 100_000),
  },
  playbackSecret: {
    env: 'PLAYBACK_SECRET',
    default: '',
    description: 'Secret that signs playback URLs (at least 32 characters); empty generates one and keeps it in the database, shared by every process.',
    parse: secret,
  },
  apiKeyCacheTtl: {
    env: 'API_KEY_CACHE_TTL',
    default: '10s',
    description:
      'How long a process remembers a valid API key instead of looking it up per request; a key revoked through another process stops working within this time (0 looks up every request).',
    parse: parseDuration,
  },
  playbackTtl: { env: 'PLAYBACK_TTL', default: '6h', description: 'How long a signed playback URL stays valid.', parse: parseDuration },
  searchMaxQueryLength: { env: 'SEARCH_MAX_QUERY_LENGTH', default: '200', description: 'Longest search query accepted, in characters.', parse: int(10, 2000) },
  searchRankCandidates: {
    env: 'SEARCH_RANK_CANDIDATES',
    default: '5000',
    description:
      'SQLite only: most matches of one search ranked by relevance; a query matching more is ranked among its this-many most recently indexed matches (filters that leave too few of them rank every match).',
    parse: int(10, 10_000_000),
  },
  searchCacheTtl: {
    env: 'SEARCH_CACHE_TTL',
    default: '2s',
    description:
      "How long a search ranking is reused for the same query, filters and user (for as long again it is served while one request ranks anew); writes through this process forget a tenant's rankings at once, and so do writes of other processes (on SQLite the file tells; on PostgreSQL they announce them, over Redis or LISTEN/NOTIFY); writes made past the services show within about twice this time (0 ranks every search; at most 10m, well inside the hour a result cursor lives).",
    parse: durationAtMost(600_000),
  },
  mediaCacheTtl: {
    env: 'MEDIA_CACHE_TTL',
    default: '30s',
    description:
      'How long a process may serve a media record it read (GET /media/{id}), and the facts lists are built from, without reading them again. Writes through this process forget it at once, and so do writes of other processes (on SQLite the file tells; on PostgreSQL they announce them, over Redis or LISTEN/NOTIFY); this bounds the rest: edits made past the services (0 reads every time; at most 10m).',
    parse: durationAtMost(600_000),
  },
  mediaCacheSize: {
    env: 'MEDIA_CACHE_SIZE',
    default: '10000',
    description: 'Most media records one process keeps for MEDIA_CACHE_TTL (the least recently read go first; a record takes a few KiB).',
    parse: int(0, 10_000_000),
  },
  feedPageSize: {
    env: 'FEED_PAGE_SIZE',
    default: '20',
    description: 'Items per page of search results and feeds when the client gives no limit.',
    parse: int(1, 1000),
  },
  feedMaxPageSize: {
    env: 'FEED_MAX_PAGE_SIZE',
    default: '100',
    description: 'Most items a client may ask for per page of search results, feeds and related media.',
    parse: int(1, 1000),
  },
  recommenderUrl: {
    env: 'RECOMMENDER_URL',
    default: '',
    description:
      'HTTP endpoint of an external recommendation engine (POST {tenant_id, user_id or media_id, limit}, answers {ids}); empty uses the built-in engine, which is also the fallback.',
    parse: optionalUrl,
  },
  recommenderTimeout: {
    env: 'RECOMMENDER_TIMEOUT',
    default: '1s',
    description: 'Time limit of one call to the external recommendation engine; past it the built-in engine answers.',
    parse: parseDuration,
  },
  captionMaxSize: {
    env: 'CAPTION_MAX_SIZE',
    default: '2MiB',
    description: 'Largest caption file (WebVTT or SRT) accepted per language; hours of dense dialogue fit in a few hundred KiB.',
    parse: parseBytes,
  },
  mediaEventsPollInterval: {
    env: 'MEDIA_EVENTS_POLL_INTERVAL',
    default: '500ms',
    description: 'How often an open media event stream checks the database for status changes made by other processes.',
    parse: parseDuration,
  },
  mediaEventsHeartbeat: {
    env: 'MEDIA_EVENTS_HEARTBEAT',
    default: '15s',
    description: 'Interval of the keep-alive comment on an open media event stream, so proxies do not close an idle one.',
    parse: parseDuration,
  },
  trustProxy: {
    env: 'TRUST_PROXY',
    default: 'false',
    description: 'Honour X-Forwarded-* headers: true, a hop count, or a comma-separated list of proxy addresses/CIDRs.',
    parse: trustProxy,
  },
  corsOrigins: { env: 'CORS_ORIGINS', default: '', description: 'Comma-separated origins allowed by CORS (* for any); empty disables CORS.', parse: list },
  logLevel: { env: 'LOG_LEVEL', default: 'info', description: 'pino log level.', parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent') },
  bodyLimit: { env: 'JSON_BODY_LIMIT', default: '1MiB', description: 'Largest JSON request body.', parse: parseBytes },
  requestIdleTimeout: {
    env: 'REQUEST_IDLE_TIMEOUT',
    default: '30s',
    description:
      'A request body that sends nothing for this long, while the server waits for it, is cut with 408 and everything it held is released (0 never cuts).',
    parse: parseDuration,
  },
  requestMinRate: {
    env: 'REQUEST_MIN_RATE',
    default: '1KiB',
    description:
      'Slowest a request body may arrive, in bytes per second averaged over REQUEST_MIN_RATE_WINDOW, while the server waits for it; a slower one is cut with 408 (0 allows any rate).',
    parse: parseBytes,
  },
  requestMinRateWindow: {
    env: 'REQUEST_MIN_RATE_WINDOW',
    default: '60s',
    description: 'Window over which REQUEST_MIN_RATE is measured.',
    parse: parseDuration,
  },
  requestHeadersTimeout: {
    env: 'REQUEST_HEADERS_TIMEOUT',
    default: '30s',
    description: 'Longest a client may take to send the request line and headers; past it the connection is closed.',
    parse: parseDuration,
  },
  requestMaxHeaderSize: {
    env: 'REQUEST_MAX_HEADER_SIZE',
    default: '16KiB',
    description: 'Largest request line and headers together; a bigger request is answered 431.',
    parse: parseBytes,
  },
  readinessTimeout: {
    env: 'READINESS_TIMEOUT',
    default: '2s',
    description: 'Time limit of each dependency probe of /readyz; a probe that takes longer counts as not ready.',
    parse: parseDuration,
  },
  rateLimitMax: {
    env: 'RATE_LIMIT_MAX',
    default: '6000',
    description:
      'Most requests one API key (act-as traffic of an admin key included; without a valid key, one client address) may make per RATE_LIMIT_WINDOW; more are answered 429 with Retry-After. Playback URLs are not counted (0 turns the limit off).',
    parse: int(0, 100_000_000),
  },
  rateLimitWindow: { env: 'RATE_LIMIT_WINDOW', default: '1m', description: 'Window of RATE_LIMIT_MAX.', parse: parseDuration },
} satisfies Record<string, SettingSpec<unknown>>;

type Spec = typeof spec;
export type Settings = { readonly [K in keyof Spec]: ReturnType<Spec[K]['parse']> };

export const settingSpecs: ReadonlyArray<{ key: string; env: string; default: string | undefined; description: string }> = Object.entries(spec).map(
  ([key, s]) => ({ key, env: s.env, default: s.default, description: s.description }),
);

/**
 * Reads settings from an environment. Throws SettingsError naming the first bad one;
 * cross-setting rules are checked after each value parses.
 */
export function loadSettings(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Settings> = {}): Settings {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(spec) as [string, SettingSpec<unknown>][]) {
    if (key in overrides) {
      out[key] = (overrides as Record<string, unknown>)[key];
      continue;
    }
    const raw = env[s.env] ?? s.default;
    if (raw === undefined) throw new SettingsError(s.env, 'is required');
    try {
      out[key] = s.parse(raw);
    } catch (err) {
      throw new SettingsError(s.env, (err as Error).message);
    }
  }
  const settings = out as Settings;
  if (settings.uploadMinChunkSize < 1) throw new SettingsError('UPLOAD_MIN_CHUNK_SIZE', 'must be at least 1 byte');
  if (settings.uploadMinChunkSize > settings.uploadMaxChunkSize) {
    throw new SettingsError('UPLOAD_MIN_CHUNK_SIZE', 'must not exceed UPLOAD_MAX_CHUNK_SIZE');
  }
  if (settings.uploadDefaultChunkSize < settings.uploadMinChunkSize || settings.uploadDefaultChunkSize > settings.uploadMaxChunkSize) {
    throw new SettingsError('UPLOAD_DEFAULT_CHUNK_SIZE', 'must lie between UPLOAD_MIN_CHUNK_SIZE and UPLOAD_MAX_CHUNK_SIZE');
  }
  if (settings.requestMinRate > 0 && settings.requestMinRateWindow < 1000) throw new SettingsError('REQUEST_MIN_RATE_WINDOW', 'must be at least 1s');
  if (settings.rateLimitMax > 0 && settings.rateLimitWindow < 1000) throw new SettingsError('RATE_LIMIT_WINDOW', 'must be at least 1s');
  if (settings.uploadMaxSize < 1) throw new SettingsError('UPLOAD_MAX_SIZE', 'must be at least 1 byte');
  return { ...settings, storageRoot: path.resolve(settings.storageRoot) };
}

export function databaseKind(settings: Pick<Settings, 'databaseUrl'>): 'sqlite' | 'postgres' {
  return settings.databaseUrl.startsWith('sqlite:') ? 'sqlite' : 'postgres';
}

export function sqliteFile(settings: Pick<Settings, 'databaseUrl'>): string {
  const file = settings.databaseUrl.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
  return file === ':memory:' ? file : path.resolve(file);
}
