import sharp, { type CreateText, type OverlayOptions } from 'sharp';

sharp.cache(false);

/** Longest title and author drawn, in characters; longer ones end with an ellipsis. */
export const DRAWN_TITLE_MAX = 160;
export const DRAWN_AUTHOR_MAX = 100;

const PAPER = '#f4efe6';
const INK = '#1d2433';
const SOFT_INK = '#434a5a';

/**
 * Text from the file made fit to draw: controls and line breaks as spaces, runs of spaces as
 * one, at most `max` characters (an ellipsis marks a cut, never inside a surrogate pair).
 */
export function coverLine(raw: string | undefined, max: number): string {
  const clean = (raw ?? '')
    .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '')
    .replace(/[\u0000-\u001F\u007F-\u009F\u2028\u2029\uFFFE\uFFFF]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  if (clean.length <= max) return clean;
  let end = max - 1;
  const last = clean.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${clean.slice(0, end).trimEnd()}…`;
}

/** Pango markup escaping: the text is drawn as written, never read as markup. */
export function escapeMarkup(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' }[c]};`);
}

interface Box {
  width: number;
  height: number;
}

/**
 * `text` rendered (Pango, through sharp) in the largest size from `startPx` down that fits the
 * box with whole words on each line; a word too long for the box at `minPx` is broken, and
 * the text made to fit.
 */
async function fitted(
  text: string,
  font: string,
  colour: string,
  box: Box,
  startPx: number,
  minPx: number,
): Promise<{ data: Buffer; width: number; height: number }> {
  const markup = `<span foreground="${colour}">${escapeMarkup(text)}</span>`;
  const render = async (options: Omit<CreateText, 'text'>) => {
    const { data, info } = await sharp({ text: { ...options, text: markup, align: 'centre', rgba: true } })
      .png()
      .toBuffer({ resolveWithObject: true });
    return { data, width: info.width, height: info.height };
  };
  for (let px = startPx; px >= minPx; px = Math.floor(px * 0.85)) {
    const r = await render({ font: `${font} ${px}`, dpi: 72, width: box.width, wrap: 'word' });
    if (r.width <= box.width && r.height <= box.height) return r;
  }
  return render({ font, width: box.width, height: box.height, wrap: 'word-char' });
}

/**
 * A plain cover for a book without a usable picture: its title and author on paper, in a
 * frame, as a PNG `longSide` pixels high (2:3). The title and author come from the file: they
 * are cut to DRAWN_TITLE_MAX / DRAWN_AUTHOR_MAX and drawn as text, never read as markup; the
 * frame is our own SVG and holds none of them.
 */
export async function drawCover(meta: { title?: string; author?: string }, longSide: number): Promise<Buffer> {
  const height = Math.max(48, Math.round(longSide));
  const width = Math.round((height * 2) / 3);
  const title = coverLine(meta.title, DRAWN_TITLE_MAX) || 'Untitled';
  const author = coverLine(meta.author, DRAWN_AUTHOR_MAX);
  const inset = Math.round(width * 0.06);
  const stroke = Math.max(1, Math.round(height * 0.004));
  const ruleWidth = Math.round(width * 0.18);
  const ruleY = Math.round(height * 0.655);
  const frame = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
      `<rect x="${inset}" y="${inset}" width="${width - 2 * inset}" height="${height - 2 * inset}" fill="none" stroke="${INK}" stroke-width="${stroke}"/>` +
      (author ? `<rect x="${Math.round((width - ruleWidth) / 2)}" y="${ruleY}" width="${ruleWidth}" height="${stroke}" fill="${INK}"/>` : '') +
      '</svg>',
  );
  const titleBox = { width: Math.round(width * 0.74), height: Math.round(height * (author ? 0.44 : 0.6)) };
  const titleTop = Math.round(height * (author ? 0.17 : 0.2));
  const layers: OverlayOptions[] = [{ input: frame, left: 0, top: 0 }];
  const t = await fitted(title, 'serif bold', INK, titleBox, Math.round(height * 0.08), Math.max(6, Math.round(height * 0.022)));
  layers.push({ input: t.data, left: Math.round((width - t.width) / 2), top: titleTop + Math.round((titleBox.height - t.height) / 2) });
  if (author) {
    const authorBox = { width: Math.round(width * 0.7), height: Math.round(height * 0.17) };
    const a = await fitted(author, 'serif italic', SOFT_INK, authorBox, Math.round(height * 0.045), Math.max(6, Math.round(height * 0.018)));
    layers.push({ input: a.data, left: Math.round((width - a.width) / 2), top: Math.round(height * 0.7) });
  }
  return sharp({ create: { width, height, channels: 3, background: PAPER } })
    .composite(layers)
    .png()
    .toBuffer();
}
