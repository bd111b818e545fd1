/**
 * The `vision` method: one picture file, decoded by sharp to RGB at each model's input size (JPEG's
 * shrink-on-load makes that cheap), through COCO-SSD (objects) and nsfwjs (moderation classes).
 */
import sharp, { type OutputInfo } from 'sharp';
import { BadInput, MAX_INPUT_PIXELS, NOT_A_PICTURE } from './inputs.js';
import { COCO_SSD_INPUT, type CocoSsd, detectObjects } from './coco-ssd.js';
import type { LazyModel } from './lazy-model.js';
import type { VisionOptions, VisionResult } from './model-protocol.js';
import { classifyNsfw, NSFW_INPUT } from './nsfw.js';
import type { NSFWJS } from 'nsfwjs/core';
import { tf } from './tfjs.js';

// One picture at a time in this process: no libvips operation cache (it would keep decoded
// pictures), and one thread (the worker's jobs run beside it).
sharp.cache(false);
sharp.concurrency(1);

/** Upright RGB pixels of the picture's first frame, stretched to size x size (the networks' own preprocessing also stretches). */
async function rgbOf(file: string, size: number): Promise<Buffer> {
  let data: Buffer;
  let info: OutputInfo;
  try {
    ({ data, info } = await sharp(file, { limitInputPixels: MAX_INPUT_PIXELS, pages: 1, failOn: 'error' })
      .autoOrient()
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .resize(size, size, { fit: 'fill' })
      .raw()
      .toBuffer({ resolveWithObject: true }));
  } catch (err) {
    throw new BadInput(NOT_A_PICTURE, String((err as Error)?.message ?? err));
  }
  if (info.channels !== 3 || info.width !== size || info.height !== size)
    throw new BadInput(NOT_A_PICTURE, `decoded to ${info.width}x${info.height}x${info.channels}`);
  return data;
}

const tensorOf = (rgb: Buffer, size: number): tf.Tensor3D => tf.tensor3d(Int32Array.from(rgb), [size, size, 3], 'int32');

export async function vision(file: string, opts: VisionOptions, models: { coco: LazyModel<CocoSsd>; nsfw: LazyModel<NSFWJS> }): Promise<VisionResult> {
  const [coco, nsfw] = await Promise.all([models.coco.get(), models.nsfw.get()]);
  const [objectsRgb, nsfwRgb] = await Promise.all([rgbOf(file, COCO_SSD_INPUT), rgbOf(file, NSFW_INPUT)]);
  const objectsInput = tensorOf(objectsRgb, COCO_SSD_INPUT);
  const nsfwInput = tensorOf(nsfwRgb, NSFW_INPUT);
  try {
    let t = performance.now();
    const objects = await detectObjects(coco, objectsInput, opts.maxObjects, opts.minObjectScore);
    const objectsMs = performance.now() - t;
    t = performance.now();
    const classes = await classifyNsfw(nsfw, nsfwInput);
    const nsfwMs = performance.now() - t;
    return { objects, nsfw: classes, ms: { objects: Math.round(objectsMs), nsfw: Math.round(nsfwMs) } };
  } finally {
    objectsInput.dispose();
    nsfwInput.dispose();
  }
}
