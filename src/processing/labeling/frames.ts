import fs from 'node:fs/promises';
import path from 'node:path';
import type { MediaKind } from '../../db/schema.js';
import { hardenedInputArgs } from '../../tools/ffmpeg-hardening.js';
import { runFfmpegStep } from '../ffmpeg-step.js';

/** One picture for the models to look at: a local file and where in the media it is from. */
export interface FrameToLook {
  /** Seconds into the media (0 for a still). */
  t: number;
  file: string;
}

export type LabelingSource = 'poster' | 'thumbnails' | 'frames';

/** The long side frames are decoded at: more than either model's input (300 and 224), small to decode and hand over. */
export const FRAME_LONG_SIDE = 640;
/** A scene change this large (ffmpeg's `scene`, 0-1) adds a frame between the regular ones. */
const SCENE_CHANGE = 0.4;

/**
 * The frames of a video to label, decoded once, small, by one ffmpeg run: one every 1/fps
 * seconds and one at each scene change, at most `maxFrames` (the rate is lowered to fit a long
 * video). Times come from ffmpeg's showinfo, so scene-change frames have theirs too.
 */
export async function decodeVideoFrames(
  source: string,
  outDir: string,
  o: { fps: number; duration: number | null; maxFrames: number; timeoutMs: number },
): Promise<FrameToLook[]> {
  await fs.mkdir(outDir, { recursive: true });
  const fps = o.duration && o.duration * o.fps > o.maxFrames ? o.maxFrames / o.duration : o.fps;
  const gap = (1 / fps).toFixed(6);
  const select = `select='isnan(prev_selected_t)+gte(t-prev_selected_t\\,${gap})+gt(scene\\,${SCENE_CHANGE})'`;
  const scale = `scale=w=${FRAME_LONG_SIDE}:h=${FRAME_LONG_SIDE}:force_original_aspect_ratio=decrease`;
  const args = [
    '-hide_banner',
    '-nostdin',
    '-nostats',
    '-loglevel',
    'info',
    ...hardenedInputArgs(),
    '-i',
    source,
    '-map',
    '0:v:0',
    '-an',
    '-sn',
    '-dn',
    '-vf',
    `${select},${scale},showinfo`,
    '-fps_mode',
    'vfr',
    '-frames:v',
    String(o.maxFrames),
    // Near-lossless: each JPEG generation moves COCO-SSD's borderline calls (a dog becomes a cat).
    '-q:v',
    '2',
    path.join(outDir, 'f_%06d.jpg'),
  ];
  const { stderr } = await runFfmpegStep(args, o.timeoutMs, 'decoding frames for labeling');
  const times = [...stderr.matchAll(/\[Parsed_showinfo[^\]]*\]\s+n:\s*(\d+)\s+pts:\s*-?\d+\s+pts_time:\s*(-?[\d.]+)/g)].map((m) => Number(m[2]));
  const files = (await fs.readdir(outDir)).filter((n) => /^f_\d{6}\.jpg$/.test(n)).sort();
  // showinfo reports every frame written, in order; a mismatch would put labels at wrong times.
  if (times.length !== files.length) throw new Error(`ffmpeg wrote ${files.length} frames but reported the times of ${times.length}`);
  return files.map((n, i) => ({ t: Math.max(0, Math.round(times[i]! * 1000) / 1000), file: path.join(outDir, n) }));
}

/** Where in a video its evenly spaced thumbnails are from (see evenlySpaced in video-command.ts). */
export function thumbnailTimes(count: number, duration: number): number[] {
  return Array.from({ length: count }, (_, i) => Math.round(((i + 0.5) * duration * 1000) / count) / 1000);
}

/** Image formats the model process decodes itself (with sharp); others are looked at through their poster. */
const DECODABLE_IMAGES = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/tiff', 'image/avif']);

/**
 * What the labeler looks at: a video by the setting; an image in its original (the poster is one
 * more JPEG generation, enough to turn a dog into a cat for COCO-SSD: seen), unless it is a
 * format only the image step decodes (HEIC); a document by its poster (the first page).
 */
export function sourceFor(kind: MediaKind, setting: LabelingSource, mime: string): LabelingSource | 'original' {
  if (kind === 'video') return setting;
  if (kind === 'image' && DECODABLE_IMAGES.has(mime)) return 'original';
  return 'poster';
}
