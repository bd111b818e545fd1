import { XMLParser } from 'fast-xml-parser';

/**
 * HLS playlists written from the DASH manifest of the same CMAF segments, so both protocols
 * point at one set of files. ffmpeg's own HLS output from its DASH muxer lacks
 * AVERAGE-BANDWIDTH, FRAME-RATE and the VOD playlist type, and measures BANDWIDTH loosely; here
 * every figure comes from the segment timeline and the segment files' real sizes.
 */
export interface MpdRepresentation {
  id: string;
  contentType: 'video' | 'audio';
  codecs: string;
  width?: number;
  height?: number;
  frameRate?: number;
  timescale: number;
  init: string;
  /** Segment file names with their durations in seconds, in order. */
  segments: Array<{ file: string; duration: number }>;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '',
  isArray: (name) => ['Period', 'AdaptationSet', 'Representation', 'S'].includes(name),
});

function asArray<T>(v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function fill(template: string, repId: string, number: number, time: number): string {
  return template
    .replace(/\$RepresentationID\$/g, repId)
    .replace(/\$Number(?:%0(\d+)d)?\$/g, (_m, width?: string) => String(number).padStart(width ? Number(width) : 0, '0'))
    .replace(/\$Time\$/g, String(time));
}

function frameRateOf(v: unknown): number | undefined {
  if (typeof v !== 'string' && typeof v !== 'number') return undefined;
  const [n, d] = String(v).split('/').map(Number);
  if (!n) return undefined;
  return n / (d || 1);
}

/** Reads the representations and their segment lists from an ffmpeg-written MPD (SegmentTemplate + SegmentTimeline). */
export function parseMpd(xml: string): MpdRepresentation[] {
  const doc = parser.parse(xml) as { MPD?: { Period?: Array<{ AdaptationSet?: Array<Record<string, any>> }> } };
  const out: MpdRepresentation[] = [];
  for (const period of asArray(doc.MPD?.Period)) {
    for (const as of asArray(period.AdaptationSet)) {
      // Caption tracks (WebVTT files) have no segments to list.
      if (String(as.contentType ?? '') === 'text' || String(as.mimeType ?? '').startsWith('text/')) continue;
      for (const rep of asArray<Record<string, any>>(as.Representation)) {
        const tpl = rep.SegmentTemplate ?? as.SegmentTemplate;
        if (!tpl) throw new Error('MPD representation without SegmentTemplate');
        const timescale = Number(tpl.timescale ?? 1);
        const contentType = String(as.contentType ?? rep.mimeType ?? '').startsWith('audio') ? 'audio' : 'video';
        const segments: MpdRepresentation['segments'] = [];
        let number = Number(tpl.startNumber ?? 1);
        let time = 0;
        for (const s of asArray<Record<string, string>>(tpl.SegmentTimeline?.S)) {
          if (s.t !== undefined) time = Number(s.t);
          const d = Number(s.d);
          const repeat = Number(s.r ?? 0);
          for (let i = 0; i <= repeat; i++) {
            segments.push({ file: fill(String(tpl.media), String(rep.id), number, time), duration: d / timescale });
            number++;
            time += d;
          }
        }
        const frameRate = frameRateOf(rep.frameRate ?? as.frameRate);
        out.push({
          id: String(rep.id),
          contentType,
          codecs: String(rep.codecs ?? ''),
          ...(rep.width ? { width: Number(rep.width), height: Number(rep.height) } : {}),
          ...(frameRate ? { frameRate } : {}),
          timescale,
          init: fill(String(tpl.initialization), String(rep.id), 0, 0),
          segments,
        });
      }
    }
  }
  return out;
}

export interface HlsPlaylists {
  master: string;
  /** File name → playlist text. */
  media: Record<string, string>;
}

export interface RenditionRates {
  /** Peak over segments, bits/s. */
  peak: number;
  /** Whole-stream average, bits/s. */
  average: number;
}

/** Measured rates of a representation from its segment sizes (bytes, same order as its segments). */
export function ratesOf(rep: MpdRepresentation, segmentBytes: number[], initBytes: number): RenditionRates {
  let total = initBytes;
  let seconds = 0;
  let peak = 0;
  rep.segments.forEach((s, i) => {
    const bytes = segmentBytes[i] ?? 0;
    total += bytes;
    seconds += s.duration;
    // Very short trailing segments would overstate the peak; measure them over at least 1 s.
    peak = Math.max(peak, (bytes * 8) / Math.max(s.duration, 1));
  });
  return { peak: Math.ceil(peak), average: Math.ceil(seconds > 0 ? (total * 8) / seconds : 0) };
}

function mediaPlaylist(rep: MpdRepresentation, segmentPrefix: string): string {
  const target = Math.max(1, ...rep.segments.map((s) => Math.ceil(s.duration)));
  const lines = [
    '#EXTM3U',
    '#EXT-X-VERSION:7',
    `#EXT-X-TARGETDURATION:${target}`,
    '#EXT-X-MEDIA-SEQUENCE:0',
    '#EXT-X-PLAYLIST-TYPE:VOD',
    '#EXT-X-INDEPENDENT-SEGMENTS',
    `#EXT-X-MAP:URI="${segmentPrefix}${rep.init}"`,
  ];
  for (const s of rep.segments) lines.push(`#EXTINF:${s.duration.toFixed(5)},`, `${segmentPrefix}${s.file}`);
  lines.push('#EXT-X-ENDLIST', '');
  return lines.join('\n');
}

/**
 * Master and media playlists for the representations. `segmentPrefix` is the relative path
 * from the HLS folder to the segments (e.g. "../dash/"), so the playlists inherit whatever
 * prefix (such as a signed token) the master was fetched under.
 */
export function buildHlsPlaylists(reps: MpdRepresentation[], rates: Map<string, RenditionRates>, segmentPrefix: string): HlsPlaylists {
  const video = reps.filter((r) => r.contentType === 'video').sort((a, b) => (b.height ?? 0) - (a.height ?? 0));
  const audio = reps.find((r) => r.contentType === 'audio');
  const media: Record<string, string> = {};
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-INDEPENDENT-SEGMENTS'];
  const audioRates = audio ? rates.get(audio.id) : undefined;
  if (audio) {
    const name = `audio_${audio.id}.m3u8`;
    media[name] = mediaPlaylist(audio, segmentPrefix);
    lines.push(`#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="Audio",LANGUAGE="und",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="${name}"`);
  }
  for (const v of video) {
    const name = `video_${v.height}p.m3u8`;
    media[name] = mediaPlaylist(v, segmentPrefix);
    const r = rates.get(v.id) ?? { peak: 0, average: 0 };
    const attrs = [
      `BANDWIDTH=${r.peak + (audioRates?.peak ?? 0)}`,
      `AVERAGE-BANDWIDTH=${r.average + (audioRates?.average ?? 0)}`,
      `RESOLUTION=${v.width}x${v.height}`,
      `CODECS="${[v.codecs, audio?.codecs].filter(Boolean).join(',')}"`,
      ...(v.frameRate ? [`FRAME-RATE=${v.frameRate.toFixed(3)}`] : []),
      ...(audio ? ['AUDIO="audio"'] : []),
    ];
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`, name);
  }
  if (!video.length && audio) {
    // Audio-only media: the audio rendition is the variant itself.
    lines.push(
      `#EXT-X-STREAM-INF:BANDWIDTH=${audioRates?.peak ?? 0},AVERAGE-BANDWIDTH=${audioRates?.average ?? 0},CODECS="${audio.codecs}"`,
      `audio_${audio.id}.m3u8`,
    );
  }
  lines.push('');
  return { master: lines.join('\n'), media };
}
