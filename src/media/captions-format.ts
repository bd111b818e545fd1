/**
 * Reading caption files: WebVTT is checked and kept as written (normalised line ends, no BOM);
 * SubRip (SRT) is converted to WebVTT. Both are parsed strictly: a cue that cannot be read is
 * reported with its line number rather than silently dropped, so what players show is what
 * was sent.
 */

export interface Cue {
  start: number;
  end: number;
  /** Cue payload lines (WebVTT markup). */
  lines: string[];
}

export interface CaptionProblem {
  line: number;
  message: string;
}

export class CaptionFormatError extends Error {
  constructor(
    message: string,
    readonly problems: CaptionProblem[],
  ) {
    super(message);
    this.name = 'CaptionFormatError';
  }
}

export interface ParsedCaptions {
  format: 'webvtt' | 'srt';
  /** The WebVTT file to store. */
  vtt: string;
  cues: Cue[];
  /** Text of every cue without markup, one cue per line. */
  plainText: string;
}

/** At most this many problems are listed; a file with more is surely not a caption file. */
const MAX_PROBLEMS = 20;

const SRT_TIME = /^(\d{1,3}):([0-5]\d):([0-5]\d)[,.](\d{3})$/;
const VTT_TIME = /^(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})$/;

function seconds(m: RegExpExecArray): number {
  return Number(m[1] ?? 0) * 3600 + Number(m[2]) * 60 + Number(m[3]) + Number(m[4]) / 1000;
}

export function formatVttTime(t: number): string {
  const ms = Math.round(t * 1000);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(h)}:${pad(m)}:${pad(s)}.${pad(ms % 1000, 3)}`;
}

/** Decodes UTF-8 strictly, drops a byte-order mark and unifies line ends. */
export function decodeCaptionText(bytes: Uint8Array): string {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new CaptionFormatError('the file is not valid UTF-8 text', []);
  }
  if (text.includes('\0')) throw new CaptionFormatError('the file contains NUL characters: it is not a text file', []);
  return text.replace(/\r\n?/g, '\n');
}

/** WebVTT if it says so on its first line; SRT if a block starts with an SRT timing line. */
export function detectCaptionFormat(text: string): 'webvtt' | 'srt' | undefined {
  if (/^WEBVTT(?:[ \t][^\n]*)?(?:\n|$)/.test(text)) return 'webvtt';
  if (/(?:^|\n)\s*\d{1,3}:\d{2}:\d{2}[,.]\d{3}\s*-->\s*\d{1,3}:\d{2}:\d{2}[,.]\d{3}/.test(text)) return 'srt';
  return undefined;
}

/** Parses caption bytes (WebVTT or SRT, decided from the content) into the WebVTT to store. */
export function parseCaptions(bytes: Uint8Array): ParsedCaptions {
  const text = decodeCaptionText(bytes);
  const format = detectCaptionFormat(text);
  if (!format) {
    throw new CaptionFormatError('the file is neither WebVTT (it would start with "WEBVTT") nor SRT (no "00:00:01,000 --> 00:00:02,000" timing line)', [
      { line: 1, message: 'no WEBVTT header and no SRT timing line' },
    ]);
  }
  const parsed = format === 'webvtt' ? parseWebVtt(text) : parseSrt(text);
  if (!parsed.cues.length) throw new CaptionFormatError('the file has no cues', []);
  return {
    format,
    ...parsed,
    plainText: parsed.cues
      .map((c) => plainTextOf(c.lines))
      .filter(Boolean)
      .join('\n'),
  };
}

interface Block {
  line: number;
  lines: string[];
}

function blocksOf(text: string): Block[] {
  const out: Block[] = [];
  let current: Block | undefined;
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') {
      current = undefined;
      return;
    }
    if (!current) {
      current = { line: i + 1, lines: [] };
      out.push(current);
    }
    current.lines.push(raw);
  });
  return out;
}

function fail(problems: CaptionProblem[]): never {
  const shown = problems.slice(0, MAX_PROBLEMS);
  const first = shown[0]!;
  throw new CaptionFormatError(`${problems.length} malformed cue${problems.length === 1 ? '' : 's'}; the first at line ${first.line}: ${first.message}`, shown);
}

function timing(line: string, re: RegExp): { start: number; end: number; settings: string } | string {
  const m = /^\s*(\S+)\s+-->\s+(\S+)(.*)$/.exec(line);
  if (!m) return `expected a timing line "start --> end", got "${line.slice(0, 80)}"`;
  const a = re.exec(m[1]!);
  const b = re.exec(m[2]!);
  if (!a) return `start time "${m[1]}" is not a valid timestamp`;
  if (!b) return `end time "${m[2]}" is not a valid timestamp`;
  const start = seconds(a);
  const end = seconds(b);
  if (!(end > start)) return `the cue ends (${m[2]}) before or when it starts (${m[1]})`;
  return { start, end, settings: m[3]!.trim() };
}

/** Tags SRT files use that WebVTT knows; others are dropped (font) or shown as text. */
const VTT_TAG = /^<\/?(?:b|i|u)>$/i;

/** Makes one SRT text line valid WebVTT cue text: b/i/u kept, font and ASS overrides dropped, the rest escaped. */
function srtLineToVtt(line: string): string {
  let out = '';
  const re = /<[^<>\n]*>|\{\\[^{}]*\}|&(?:[a-zA-Z][a-zA-Z0-9]*|#\d+|#x[0-9a-fA-F]+);|[<>&]/g;
  let last = 0;
  for (const m of line.matchAll(re)) {
    out += line.slice(last, m.index);
    last = m.index + m[0].length;
    const tok = m[0];
    if (tok.startsWith('<') && tok.length > 1) {
      if (VTT_TAG.test(tok)) out += tok.toLowerCase();
      else if (/^<\/?font\b/i.test(tok)) continue;
      else out += tok.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    } else if (tok.startsWith('{\\')) {
      // An SSA override tag such as {\an8}: dropped.
    } else if (tok.startsWith('&') && tok.length > 1) {
      out += tok;
    } else {
      out += tok === '<' ? '&lt;' : tok === '>' ? '&gt;' : '&amp;';
    }
  }
  out += line.slice(last);
  return out.replace(/-->/g, '--&gt;');
}

/** SRT's {\an7}-{\an9} overrides put a cue at the top; WebVTT says that with a line setting. */
function srtPlacement(lines: string[]): string {
  const m = /\{\\an([1-9])\}/.exec(lines.join(''));
  if (!m) return '';
  const n = Number(m[1]);
  const settings = [];
  if (n >= 7) settings.push('line:0');
  else if (n >= 4) settings.push('line:50%');
  if (n % 3 === 1) settings.push('align:left');
  else if (n % 3 === 0) settings.push('align:right');
  return settings.join(' ');
}

function parseSrt(text: string): { vtt: string; cues: Cue[] } {
  const problems: CaptionProblem[] = [];
  const cues: Array<Cue & { settings: string }> = [];
  for (const block of blocksOf(text)) {
    let i = 0;
    // The cue number is optional in practice; when present it must be a number.
    if (!block.lines[0]!.includes('-->')) {
      if (!/^\s*\d+\s*$/.test(block.lines[0]!)) {
        problems.push({ line: block.line, message: `expected a cue number or a timing line, got "${block.lines[0]!.slice(0, 80)}"` });
        continue;
      }
      i = 1;
    }
    const timingLine = block.lines[i];
    if (timingLine === undefined) {
      problems.push({ line: block.line, message: 'a cue number with no timing line after it' });
      continue;
    }
    // SRT coordinates (X1:… X2:… Y1:… Y2:…) have no WebVTT equivalent and are dropped.
    const t = timing(timingLine.replace(/\s+X1:.*$/i, ''), SRT_TIME);
    if (typeof t === 'string') {
      problems.push({ line: block.line + i, message: t });
      continue;
    }
    const body = block.lines.slice(i + 1);
    if (!body.length) {
      problems.push({ line: block.line + i, message: 'the cue has no text' });
      continue;
    }
    const converted = body.map(srtLineToVtt);
    if (converted.every((l) => !l.trim())) {
      problems.push({ line: block.line + i + 1, message: 'the cue has no text' });
      continue;
    }
    cues.push({ start: t.start, end: t.end, lines: converted, settings: srtPlacement(body) });
  }
  if (problems.length) fail(problems);
  const out = ['WEBVTT', ''];
  for (const c of cues) {
    out.push(`${formatVttTime(c.start)} --> ${formatVttTime(c.end)}${c.settings ? ` ${c.settings}` : ''}`, ...c.lines, '');
  }
  return { vtt: out.join('\n'), cues: cues.map(({ start, end, lines }) => ({ start, end, lines })) };
}

function parseWebVtt(text: string): { vtt: string; cues: Cue[] } {
  const problems: CaptionProblem[] = [];
  const cues: Cue[] = [];
  const blocks = blocksOf(text);
  // The first block is the header (WEBVTT line and optional header lines such as X-TIMESTAMP-MAP).
  const header = blocks.shift()!;
  if (header.lines.some((l) => l.includes('-->'))) {
    problems.push({ line: header.line + 1, message: 'a blank line must separate the WEBVTT header from the first cue' });
  }
  let seenCue = false;
  for (const block of blocks) {
    const first = block.lines[0]!;
    if (/^NOTE(?:[ \t]|$)/.test(first)) continue;
    if (/^(?:STYLE|REGION)[ \t]*$/.test(first)) {
      if (seenCue) problems.push({ line: block.line, message: `${first.trim()} blocks must come before the first cue` });
      continue;
    }
    let i = 0;
    if (!first.includes('-->')) {
      // A cue identifier line.
      i = 1;
      if (block.lines[1] === undefined || !block.lines[1].includes('-->')) {
        problems.push({
          line: block.line + (block.lines[1] === undefined ? 0 : 1),
          message: `expected a timing line "start --> end" after "${first.slice(0, 80)}"`,
        });
        continue;
      }
    }
    const t = timing(block.lines[i]!, VTT_TIME);
    if (typeof t === 'string') {
      problems.push({ line: block.line + i, message: t });
      continue;
    }
    const payload = block.lines.slice(i + 1);
    const arrow = payload.findIndex((l) => l.includes('-->'));
    if (arrow >= 0) {
      problems.push({ line: block.line + i + 1 + arrow, message: 'cue text may not contain "-->" (is a blank line missing before this cue?)' });
      continue;
    }
    seenCue = true;
    cues.push({ start: t.start, end: t.end, lines: payload });
  }
  if (problems.length) fail(problems);
  return { vtt: text.endsWith('\n') ? text : `${text}\n`, cues };
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', nbsp: '\u00a0', lrm: '\u200e', rlm: '\u200f' };

/** Cue text without tags, entities decoded, lines joined by spaces. */
export function plainTextOf(lines: string[]): string {
  return lines
    .join(' ')
    .replace(/<[^>]*>/g, '')
    .replace(/&(#x[0-9a-fA-F]+|#\d+|[a-zA-Z]+);/g, (m, e: string) => {
      if (e.startsWith('#')) {
        const cp = e.startsWith('#x') ? parseInt(e.slice(2), 16) : Number(e.slice(1));
        return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : m;
      }
      return ENTITIES[e] ?? m;
    })
    .replace(/\s+/g, ' ')
    .trim();
}
