/**
 * TensorFlow.js in the model process: the WebAssembly backend (its .wasm files ship inside
 * @tensorflow/tfjs-backend-wasm; no native addon, nothing downloaded), and models built from bytes
 * already read and checked (model-files.ts), never from a URL.
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

export { memoryIOHandler } from './model-json.js';

export { tf };

let ready: Promise<void> | undefined;

/** Selects the wasm backend once (single-threaded in Node). */
export function tfReady(): Promise<void> {
  ready ??= (async () => {
    // The package's main module sits in its dist/ folder, beside the .wasm files.
    const dir = path.dirname(fileURLToPath(import.meta.resolve('@tensorflow/tfjs-backend-wasm')));
    setWasmPaths(`${dir}${path.sep}`);
    // Production mode: no NaN checks on every kernel's output, and no "install tfjs-node" notice.
    tf.enableProdMode();
    if (!(await tf.setBackend('wasm'))) throw new Error('the TensorFlow.js wasm backend did not initialise');
    await tf.ready();
  })();
  ready.catch(() => {
    ready = undefined;
  });
  return ready;
}

const fileHandlers = new Map<string, tf.io.IOHandler>();
let routerRegistered = false;

/**
 * A `file://` URL for a model folder that loads through `handler`, for libraries that only take a
 * model URL (coco-ssd). Only URLs registered here resolve: any other `file://` URL finds no loader.
 */
export function fileUrlFor(dir: string, handler: tf.io.IOHandler): string {
  const url = pathToFileURL(path.join(dir, 'model.json')).href;
  fileHandlers.set(url, handler);
  if (!routerRegistered) {
    // A router answers null for URLs it does not handle (the registry skips those); its type says IOHandler.
    tf.io.registerLoadRouter((u: string | string[]) => (typeof u === 'string' ? fileHandlers.get(u) : undefined) ?? (null as unknown as tf.io.IOHandler));
    routerRegistered = true;
  }
  return url;
}

/** Forgets a URL of fileUrlFor (and the bytes its loader holds) once its model is built. */
export function forgetFileUrl(url: string): void {
  fileHandlers.delete(url);
}
