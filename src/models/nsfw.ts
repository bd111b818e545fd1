/**
 * nsfwjs's MobileNetV2 classifier (Drawing, Hentai, Neutral, Porn, Sexy). Its model ships inside the
 * nsfwjs package as two script bundles (the model.json, and its weights as base64); they are read and
 * checked here, then evaluated in an empty context, rather than imported by nsfwjs's own loader.
 */
import path from 'node:path';
import vm from 'node:vm';
import { NSFWJS } from 'nsfwjs/core';
import { ModelFilesError, nsfwjsModelsDir, readVerified } from './model-files.js';
import type { NsfwClass } from './model-protocol.js';
import { memoryIOHandler, type tf, tfReady } from './tfjs.js';

/** The network's input: 224x224 RGB. */
export const NSFW_INPUT = 224;

const MODEL = 'nsfwjs MobileNetV2 moderation';
const FIX = 'reinstall the npm packages (npm ci)';

/**
 * What one of the bundles (a browserify wrapper around a value) exports, run in a context of its own
 * with nothing but `module`: no require, no process, no network. Copied out through JSON, so the
 * value belongs to this realm.
 */
function bundleValue(code: Buffer): unknown {
  const module = { exports: {} as unknown };
  vm.runInNewContext(code.toString('utf8'), { module, exports: module.exports }, { timeout: 10_000 });
  return JSON.parse(JSON.stringify(module.exports));
}

export async function loadNsfw(): Promise<NSFWJS> {
  const files = readVerified({ model: MODEL, listed: 'nsfwjs/mobilenet_v2/', dir: path.join(nsfwjsModelsDir(), 'mobilenet_v2'), fix: FIX });
  const modelJson = bundleValue(files.get('model.min.js')!) as tf.io.ModelJSON;
  const handler = memoryIOHandler(modelJson, (name) => {
    const bundle = files.get(`${name}.min.js`);
    const base64 = bundle && bundleValue(bundle);
    if (typeof base64 !== 'string') throw new ModelFilesError(`The ${MODEL} model's weights ${name} are not where its model names them: ${FIX}.`, name);
    return Buffer.from(base64, 'base64');
  });
  await tfReady();
  const model = new NSFWJS(handler, { size: NSFW_INPUT });
  await model.load();
  return model;
}

/** The five classes' scores, highest first, for an RGB picture of NSFW_INPUT² (disposed by the caller). */
export async function classifyNsfw(model: NSFWJS, rgb: tf.Tensor3D): Promise<Array<{ cls: NsfwClass; score: number }>> {
  const top = await model.classify(rgb, 5);
  return top.map((p) => ({ cls: p.className as NsfwClass, score: p.probability }));
}
