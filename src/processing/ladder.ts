import type { VideoFacts } from './probe-facts.js';

/** One rendition of the adaptive ladder. */
export interface Rung {
  name: string;
  /** Output size, even, at the source's display aspect ratio. */
  width: number;
  height: number;
  /** Peak rate cap (bits/s) and VBV buffer, H.264 CRF capped by these. */
  maxrate: number;
  bufsize: number;
}

/**
 * Rungs by the short side of the displayed picture, so a portrait phone video gets 1080x1920.
 * Caps follow Apple's HLS authoring spec ranges for H.264 (1080p 4.5-7.8 Mb/s, 720p 3-4.5,
 * 480p ~1.1-2) at their lower end, since CRF 22 spends less on easy content anyway.
 */
export const LADDER = [
  { name: '1080p', short: 1080, maxrate: 5_000_000 },
  { name: '720p', short: 720, maxrate: 3_000_000 },
  { name: '480p', short: 480, maxrate: 1_200_000 },
] as const;

function even(n: number): number {
  return Math.max(2, 2 * Math.round(n / 2));
}

/**
 * The rungs for a source: every standard rung at or below its short side (never upscaled);
 * a source smaller than the lowest rung gets one rung at its own size.
 */
export function planLadder(video: Pick<VideoFacts, 'display_width' | 'display_height'>): Rung[] {
  const w = video.display_width;
  const h = video.display_height;
  const short = Math.min(w, h);
  const landscape = w >= h;
  const sized = (shortSide: number) => {
    const longSide = even((Math.max(w, h) * shortSide) / short);
    const s = even(shortSide);
    return landscape ? { width: longSide, height: s } : { width: s, height: longSide };
  };
  const rungs: Rung[] = LADDER.filter((r) => r.short <= short).map((r) => ({
    name: r.name,
    ...sized(r.short),
    maxrate: r.maxrate,
    bufsize: r.maxrate * 2,
  }));
  if (rungs.length) return rungs;
  // Below 480p: one rung at the source's own size, its cap scaled by pixel count from 480p.
  const own = sized(short);
  const lowest = LADDER[LADDER.length - 1]!;
  const scale = (own.width * own.height) / (854 * 480);
  const maxrate = Math.max(200_000, Math.round((lowest.maxrate * scale) / 1000) * 1000);
  return [{ name: `${even(short)}p`, ...own, maxrate, bufsize: maxrate * 2 }];
}
