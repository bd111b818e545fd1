import { PermanentJobError } from '../../shared/errors.js';
import { ToolFailure } from '../../tools/tool-failure.js';
import { runTool, trimStderr, type ToolResult } from '../../tools/run-tool.js';

/*
 * pdfinfo, pdftoppm and pdftotext (poppler) read only the file named on their command line: they fetch no
 * URLs, and poppler does not follow external stream references (/F), links or launch actions
 * when rendering. The only other files they open are system fonts through fontconfig.
 */

export interface PdfInfo {
  pages: number;
  title?: string;
  author?: string;
  page_width_pt?: number;
  page_height_pt?: number;
  page_rotation?: number;
  encrypted: boolean;
}

/** pdfinfo's argv: document facts with the first page's size, text as UTF-8. */
export function pdfinfoArgs(source: string): string[] {
  return ['-enc', 'UTF-8', source];
}

/**
 * pdftoppm's argv for the first page as one PNG whose longest side is `longSide` pixels (the
 * bitmap is bounded by the box whatever the page size says). pdftoppm appends `.png` to
 * `outRoot`. The crop box is what viewers show.
 */
export function pdftoppmArgs(source: string, outRoot: string, longSide: number): string[] {
  if (!Number.isInteger(longSide) || longSide < 1) throw new RangeError(`bad render size ${longSide}`);
  return ['-f', '1', '-l', '1', '-singlefile', '-cropbox', '-png', '-scale-to', String(longSide), source, outRoot];
}

/**
 * pdftotext's argv: the text layer of every page in reading order, as UTF-8 on stdout (`-`),
 * pages separated by form feeds.
 */
export function pdftotextArgs(source: string): string[] {
  return ['-enc', 'UTF-8', '-eol', 'unix', source, '-'];
}

/**
 * Reads pdfinfo's "Key: value" output. Title and author come first and may span lines, so
 * they keep their first occurrence and every later field its last: a title cannot forge them.
 */
export function parsePdfInfo(stdout: string): PdfInfo {
  const fields = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^([A-Za-z ]+):\s*(.*)$/.exec(line.replace(/\r$/, ''));
    if (!m) continue;
    const [, key, value] = m as unknown as [string, string, string];
    if ((key === 'Title' || key === 'Author') && fields.has(key)) continue;
    fields.set(key, value.trim());
  }
  const pages = Number(fields.get('Pages'));
  if (!Number.isInteger(pages) || pages < 1) throw new PermanentJobError('the PDF has no pages', 'unreadable-media');
  const info: PdfInfo = { pages, encrypted: /^yes/i.test(fields.get('Encrypted') ?? '') };
  const title = fields.get('Title');
  const author = fields.get('Author');
  if (title) info.title = title;
  if (author) info.author = author;
  const size = /^([\d.]+) x ([\d.]+) pts/.exec(fields.get('Page size') ?? '');
  if (size) {
    info.page_width_pt = Number(size[1]);
    info.page_height_pt = Number(size[2]);
  }
  const rot = Number(fields.get('Page rot'));
  if (Number.isFinite(rot) && fields.has('Page rot')) info.page_rotation = rot;
  return info;
}

const TRANSIENT = /No space left on device|Cannot allocate memory|Out of memory|Resource temporarily unavailable|Too many open files/i;

/**
 * What a failed poppler run means. Poppler exits 1 when it cannot open the document (not a
 * PDF, damaged, or a password is needed), 3 on a permissions error and 99 on others such as a
 * document without pages: all permanent. Exit 2 is an output file it could not write, and a
 * signal (out of memory aborts) or resource trouble is the machine's: those are retried.
 */
export function popplerFailure(tool: string, res: ToolResult, timeoutMs: number): Error {
  if (res.timedOut) return new PermanentJobError(`reading the PDF took longer than ${Math.max(1, Math.round(timeoutMs / 1000))} s`, 'timeout');
  const reason = trimStderr(res.stderr) || `${tool} exited with ${res.code ?? res.signal}`;
  if (TRANSIENT.test(res.stderr) || res.signal) return new Error(`${tool} failed: ${reason}`);
  if (/incorrect password/i.test(res.stderr)) return new PermanentJobError('the PDF is encrypted and needs a password', 'unreadable-media');
  if (res.code === 1 || res.code === 3 || res.code === 99)
    return new ToolFailure('the file could not be read as PDF: it is damaged or not a PDF', 'unreadable-media', reason);
  return new Error(`${tool} failed: ${reason}`);
}

export async function runPdfinfo(source: string, timeoutMs: number): Promise<PdfInfo> {
  const res = await runTool('pdfinfo', pdfinfoArgs(source), { timeoutMs });
  if (res.timedOut || res.code !== 0) throw popplerFailure('pdfinfo', res, timeoutMs);
  return parsePdfInfo(res.stdout);
}

/** Renders the first page to `${outRoot}.png`; returns that path. */
export async function renderFirstPage(source: string, outRoot: string, longSide: number, timeoutMs: number): Promise<string> {
  const res = await runTool('pdftoppm', pdftoppmArgs(source, outRoot, longSide), { timeoutMs });
  if (res.timedOut || res.code !== 0) throw popplerFailure('pdftoppm', res, timeoutMs);
  return `${outRoot}.png`;
}

export interface PdfText {
  text: string;
  /** pdftotext was stopped at `maxBytes`: the text layer goes on past `text`. */
  cut: boolean;
}

/**
 * The PDF's text layer (pdftotext), at most `maxBytes` of UTF-8: pdftotext is stopped once it
 * has written them, so a huge text layer costs no more than what is kept. Failures are those
 * of the other poppler runs (popplerFailure).
 */
export async function extractPdfText(source: string, timeoutMs: number, maxBytes: number): Promise<PdfText> {
  const res = await runTool('pdftotext', pdftotextArgs(source), { timeoutMs, stdoutLimit: maxBytes });
  if (res.stdoutCut) return { text: res.stdout.replace(/\uFFFD+$/, ''), cut: true };
  if (res.timedOut || res.code !== 0) throw popplerFailure('pdftotext', res, timeoutMs);
  return { text: res.stdout, cut: false };
}
