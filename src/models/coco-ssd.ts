/**
 * COCO-SSD object detection (SSDLite-MobileNetV2, 80 COCO classes) through @tensorflow-models/coco-ssd,
 * built from the model files scripts/setup.sh unpacks into `.cache/models/coco-ssd` (checked here).
 */
import * as cocoSsd from '@tensorflow-models/coco-ssd';
import { DEFAULT_COCO_SSD_DIR, ModelFilesError, readVerified } from './model-files.js';
import type { ObjectDetection } from './model-protocol.js';
import { fileUrlFor, forgetFileUrl, memoryIOHandler, type tf, tfReady } from './tfjs.js';

/** The network's input is 300x300 (its graph resizes to it): pictures are scaled to that once, by sharp. */
export const COCO_SSD_INPUT = 300;

export type CocoSsd = cocoSsd.ObjectDetection;

export async function loadCocoSsd(dir = DEFAULT_COCO_SSD_DIR): Promise<CocoSsd> {
  const files = readVerified({ model: 'COCO-SSD object detection', listed: 'coco-ssd/', dir, fix: 'run scripts/setup.sh' });
  const modelJson = JSON.parse(files.get('model.json')!.toString('utf8')) as tf.io.ModelJSON;
  const handler = memoryIOHandler(modelJson, (name) => {
    const bytes = files.get(name);
    if (!bytes)
      throw new ModelFilesError('The COCO-SSD object detection model names a weight file that is not in its checksum list: run scripts/setup.sh.', name);
    return bytes;
  });
  await tfReady();
  // coco-ssd takes a model URL only: a file:// URL that resolves to the checked bytes, never a download.
  const url = fileUrlFor(dir, handler);
  try {
    return await cocoSsd.load({ base: 'lite_mobilenet_v2', modelUrl: url });
  } finally {
    forgetFileUrl(url);
  }
}

/** Detections on an RGB picture of COCO_SSD_INPUT² (int32 tensor, disposed by the caller); boxes relative to it. */
export async function detectObjects(model: CocoSsd, rgb: tf.Tensor3D, maxObjects: number, minScore: number): Promise<ObjectDetection[]> {
  const [height, width] = rgb.shape;
  const found = await model.detect(rgb, maxObjects, minScore);
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  return found.map((d) => {
    const x = clamp(d.bbox[0] / width);
    const y = clamp(d.bbox[1] / height);
    const w = clamp((d.bbox[0] + d.bbox[2]) / width) - x;
    const h = clamp((d.bbox[1] + d.bbox[3]) / height) - y;
    return { cls: d.class, score: d.score, box: [x, y, w, h] };
  });
}
