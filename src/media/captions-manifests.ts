import path from 'node:path';
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import type { Db } from '../db/database.js';
import type { CaptionKind, CaptionSource } from '../db/schema.js';
import { joinKey, keyBelow, UnsafePathError } from '../storage/layout.js';
import { scratchFolder, type StoreFolder } from '../storage/scratch.js';
import { isNotStored, readText } from '../storage/store.js';

/**
 * Offers the caption tracks of a video in its HLS master (a SUBTITLES group, one single-file
 * WebVTT playlist per language) and its DASH manifest (one text adaptation set per language).
 * The manifests are edited in place, not rebuilt, so this runs both when tracks change and on
 * the fresh manifests of a (re)processing before they are published.
 */
export interface CaptionTrackRef {
  language: string;
  label: string;
  kind: CaptionKind;
  /** `auto` tracks have a file of their own, so that the worker never writes an uploaded one. */
  source?: CaptionSource;
}

export const CAPTIONS_FOLDER = 'transcripts';
const SUBS_GROUP = 'subs';
const SUBS_PLAYLIST = /^subs_[A-Za-z0-9-]+\.m3u8$/;
/** Attribute that marks the adaptation sets written here, so a rewrite replaces exactly them. */
const TEXT_SET_ID_BASE = 1000;

export function captionFile(language: string, source: CaptionSource = 'user'): string {
  return source === 'auto' ? `${CAPTIONS_FOLDER}/${language}.auto.vtt` : `${CAPTIONS_FOLDER}/${language}.vtt`;
}

export function subtitlePlaylistName(language: string): string {
  return `subs_${language}.m3u8`;
}

/**
 * A manifest of the folder, or undefined when there is none. One that is really elsewhere (a link
 * out of the folder) counts as none: its contents would otherwise be rewritten into a manifest
 * clients read.
 */
async function readIfExists(folder: StoreFolder, relative: string): Promise<string | undefined> {
  try {
    const found = await folder.store.stat(joinKey(folder.prefix, relative));
    if (!found || keyBelow(found.key, folder.prefix) === undefined) return undefined;
    return await readText(folder.store, found.key);
  } catch (err) {
    if (err instanceof UnsafePathError || isNotStored(err)) return undefined;
    throw err;
  }
}

function quoted(v: string): string {
  // HLS quoted strings may not hold double quotes or line breaks.
  return `"${v.replace(/["\r\n]/g, "'")}"`;
}

/** Sum of a media playlist's segment durations. */
function playlistSeconds(text: string): number {
  let total = 0;
  for (const m of text.matchAll(/^#EXTINF:([\d.]+)/gm)) total += Number(m[1]);
  return total;
}

function isoDurationSeconds(v: unknown): number {
  const m = /^PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$/.exec(String(v ?? ''));
  return m ? Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0) : 0;
}

/** The master with its SUBTITLES group set to `tracks` (none removes it). */
export function masterWithSubtitles(master: string, tracks: readonly CaptionTrackRef[]): string {
  const lines = master
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .filter((l) => !/^#EXT-X-MEDIA:.*TYPE=SUBTITLES/.test(l));
  const media = tracks.map((t) => {
    const attrs = [
      'TYPE=SUBTITLES',
      `GROUP-ID="${SUBS_GROUP}"`,
      `NAME=${quoted(t.label)}`,
      `LANGUAGE="${t.language}"`,
      'DEFAULT=NO',
      'AUTOSELECT=YES',
      'FORCED=NO',
      ...(t.kind === 'captions' ? ['CHARACTERISTICS="public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"'] : []),
      `URI="${subtitlePlaylistName(t.language)}"`,
    ];
    return `#EXT-X-MEDIA:${attrs.join(',')}`;
  });
  const out: string[] = [];
  let inserted = false;
  for (const line of lines) {
    if (line.startsWith('#EXT-X-STREAM-INF:')) {
      if (!inserted) {
        out.push(...media);
        inserted = true;
      }
      const attrs = line.slice('#EXT-X-STREAM-INF:'.length).replace(/,SUBTITLES="[^"]*"/g, '');
      out.push(`#EXT-X-STREAM-INF:${attrs}${tracks.length ? `,SUBTITLES="${SUBS_GROUP}"` : ''}`);
      continue;
    }
    out.push(line);
  }
  return out.join('\n');
}

/** A VOD playlist of one WebVTT file covering the whole video. */
export function subtitlePlaylist(language: string, seconds: number, source: CaptionSource = 'user'): string {
  const d = Math.max(seconds, 0.001);
  return [
    '#EXTM3U',
    '#EXT-X-VERSION:7',
    `#EXT-X-TARGETDURATION:${Math.max(1, Math.ceil(d))}`,
    '#EXT-X-MEDIA-SEQUENCE:0',
    '#EXT-X-PLAYLIST-TYPE:VOD',
    `#EXTINF:${d.toFixed(5)},`,
    `../${captionFile(language, source)}`,
    '#EXT-X-ENDLIST',
    '',
  ].join('\n');
}

const XML_OPTIONS = {
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  commentPropName: '#comment',
  parseTagValue: false,
  parseAttributeValue: false,
  format: true,
  indentBy: '\t',
  suppressEmptyNode: true,
} as const;

type XmlNode = Record<string, unknown> & { ':@'?: Record<string, string> };

function childrenOf(node: XmlNode, name: string): XmlNode[] {
  return (node[name] as XmlNode[] | undefined) ?? [];
}

function isOurTextSet(node: XmlNode): boolean {
  const a = node[':@'] ?? {};
  return 'AdaptationSet' in node && a['@_contentType'] === 'text' && a['@_mimeType'] === 'text/vtt';
}

function textAdaptationSet(t: CaptionTrackRef, index: number): XmlNode {
  return {
    AdaptationSet: [
      { Role: [], ':@': { '@_schemeIdUri': 'urn:mpeg:dash:role:2011', '@_value': t.kind === 'captions' ? 'caption' : 'subtitle' } },
      { Label: [{ '#text': t.label }] },
      {
        Representation: [{ BaseURL: [{ '#text': `../${captionFile(t.language, t.source)}` }] }],
        ':@': { '@_id': `text_${t.language}`, '@_bandwidth': '256' },
      },
    ],
    ':@': { '@_id': String(TEXT_SET_ID_BASE + index), '@_contentType': 'text', '@_mimeType': 'text/vtt', '@_lang': t.language },
  };
}

/** The MPD with one text adaptation set per track in every period (our previous ones replaced). */
export function mpdWithTextTracks(mpd: string, tracks: readonly CaptionTrackRef[]): { xml: string; seconds: number } {
  const doc = new XMLParser(XML_OPTIONS).parse(mpd) as XmlNode[];
  const root = doc.find((n) => 'MPD' in n);
  if (!root) throw new Error('not a DASH manifest: no MPD element');
  for (const period of childrenOf(root, 'MPD').filter((n) => 'Period' in n)) {
    const kept = childrenOf(period, 'Period').filter((n) => !isOurTextSet(n));
    period.Period = [...kept, ...tracks.map(textAdaptationSet)];
  }
  return { xml: new XMLBuilder(XML_OPTIONS).build(doc) as string, seconds: isoDurationSeconds(root[':@']?.['@_mediaPresentationDuration']) };
}

/**
 * Sets the caption tracks offered by the manifests of `folder` (a media's folder in the store, or
 * the scratch folder of a processing run): `hls/master.m3u8` with its subtitle playlists and
 * `dash/manifest.mpd`. Either may be absent. The subtitle playlists are written before the
 * master that names them, and stale ones removed after it. Each file is replaced whole.
 */
export async function applyCaptionTracks(folder: StoreFolder, tracks: readonly CaptionTrackRef[]): Promise<void> {
  const { store, prefix } = folder;
  const key = (relative: string) => joinKey(prefix, relative);
  const [master, mpd] = await Promise.all([readIfExists(folder, 'hls/master.m3u8'), readIfExists(folder, 'dash/manifest.mpd')]);
  let seconds = 0;
  if (mpd !== undefined) {
    const next = mpdWithTextTracks(mpd, tracks);
    seconds = next.seconds;
    if (next.xml !== mpd) await store.put(key('dash/manifest.mpd'), next.xml);
  }
  if (master === undefined) return;
  const firstVariant = master.split('\n').find((l) => l.trim() && !l.startsWith('#'));
  if (firstVariant) {
    const variant = await readIfExists(folder, `hls/${path.basename(firstVariant.trim())}`);
    if (variant) seconds = playlistSeconds(variant) || seconds;
  }
  for (const t of tracks) await store.put(key(`hls/${subtitlePlaylistName(t.language)}`), subtitlePlaylist(t.language, seconds, t.source));
  const next = masterWithSubtitles(master, tracks);
  if (next !== master) await store.put(key('hls/master.m3u8'), next);
  const wanted = new Set(tracks.map((t) => subtitlePlaylistName(t.language)));
  const hls = key('hls');
  const stale = (await store.list(hls)).filter((o) => {
    const name = keyBelow(o.key, hls);
    return name !== undefined && SUBS_PLAYLIST.test(name) && !wanted.has(name);
  });
  await Promise.all(stale.map((o) => store.delete(o.key)));
}

/** The caption tracks of a media, in a stable order (by language). */
export async function captionTrackRefs(db: Db, tenantId: string, mediaId: string): Promise<CaptionTrackRef[]> {
  return db
    .selectFrom('caption_tracks')
    .select(['language', 'label', 'kind', 'source'])
    .where('tenant_id', '=', tenantId)
    .where('media_id', '=', mediaId)
    .orderBy('language')
    .execute();
}

/**
 * For the processing step: offers a media's stored caption tracks in the freshly written
 * manifests of `workDir`, so a reprocess publishes manifests that still list them.
 */
export async function writeCaptionManifests(db: Db, workDir: string, media: { id: string; tenant_id: string }): Promise<void> {
  const tracks = await captionTrackRefs(db, media.tenant_id, media.id);
  if (tracks.length) await applyCaptionTracks(scratchFolder(workDir), tracks);
}
