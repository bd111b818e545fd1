import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { PermanentJobError } from '../../shared/errors.js';
import { ToolFailure } from '../../tools/tool-failure.js';

export interface OpfItem {
  id: string;
  href: string;
  mediaType: string;
  properties: string[];
}

export interface OpfPackage {
  title?: string;
  creators: string[];
  language?: string;
  publisher?: string;
  /** EPUB 2: `<meta name="cover" content="…">`. */
  coverMeta?: string;
  items: OpfItem[];
  /** The reading order: manifest ids of the spine's itemrefs. */
  spine: string[];
}

export interface CoverChoice {
  item: OpfItem;
  source: 'manifest-cover' | 'first-image';
}

const LISTS = new Set(['rootfile', 'item', 'itemref', 'meta', 'title', 'creator', 'language', 'publisher']);

// Entities keep fast-xml-parser's default expansion limits.
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  isArray: (name) => LISTS.has(name),
});

/** Text of an XML file in the EPUB: UTF-8 (BOM dropped) or UTF-16 with a BOM. */
export function xmlText(bytes: Buffer): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder('utf-16le').decode(bytes);
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder('utf-16be').decode(bytes);
  return new TextDecoder('utf-8').decode(bytes);
}

/**
 * An entity declaration that names an outside file (`<!ENTITY x SYSTEM "…">`, or `PUBLIC`), or
 * any parameter entity (`<!ENTITY % x …>`, the way DTD text is pulled in). A DOCTYPE that only
 * names its DTD (legacy OEB 1.x packages do) is not one: the parser never reads a DTD.
 */
const EXTERNAL_ENTITY = /<!ENTITY\s+(?:%|[^\s%>]+\s+(?:SYSTEM|PUBLIC)\b)/i;

/**
 * Parses one XML file of the EPUB. External entities are refused before parsing (they would
 * name files or URLs), and anything the parser rejects is the file's fault, never retried.
 */
function parseXml(xml: string, what: string): Record<string, any> {
  if (EXTERNAL_ENTITY.test(xml)) {
    throw new PermanentJobError(
      `the EPUB's ${what} declares an external entity (one naming an outside file) or a parameter entity, which is not allowed`,
      'unreadable-media',
    );
  }
  // The parser's own messages go to the logs (`detail`); the reason says where, in plain words.
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    throw new ToolFailure(`the EPUB's ${what} is not well-formed XML (line ${valid.err.line})`, 'unreadable-media', valid.err.msg);
  }
  try {
    return parser.parse(xml) as Record<string, any>;
  } catch (err) {
    throw new ToolFailure(`the EPUB's ${what} could not be read as XML`, 'unreadable-media', err instanceof Error ? err.message : String(err));
  }
}

function asArray(v: unknown): any[] {
  return v === undefined || v === null ? [] : Array.isArray(v) ? v : [v];
}

function textOf(v: unknown): string | undefined {
  const t = typeof v === 'string' ? v : typeof v === 'object' && v !== null ? (v as Record<string, unknown>)['#text'] : undefined;
  const s = typeof t === 'string' || typeof t === 'number' ? String(t).replace(/\s+/g, ' ').trim() : '';
  return s || undefined;
}

/** The package document's path inside the zip, from META-INF/container.xml. */
export function parseContainer(xml: string): string {
  const doc = parseXml(xml, 'META-INF/container.xml');
  const rootfiles = asArray(doc.container?.rootfiles?.rootfile);
  const opf = rootfiles.find((r) => r?.['@_media-type'] === 'application/oebps-package+xml') ?? rootfiles[0];
  const fullPath = typeof opf?.['@_full-path'] === 'string' ? opf['@_full-path'].trim() : '';
  if (!fullPath) throw new PermanentJobError("the EPUB's META-INF/container.xml names no package document", 'unreadable-media');
  return zipPath([], fullPath.split('/'), fullPath);
}

/** Title, creators, language, publisher and the manifest of an OPF package document. */
export function parseOpf(xml: string): OpfPackage {
  const doc = parseXml(xml, 'package document (OPF)');
  const pkg = doc.package;
  if (!pkg || typeof pkg !== 'object' || !pkg.manifest) {
    throw new PermanentJobError("the EPUB's package document (OPF) has no package manifest", 'unreadable-media');
  }
  const md = (typeof pkg.metadata === 'object' && pkg.metadata) || {};
  const items: OpfItem[] = asArray(pkg.manifest.item)
    .filter((i) => typeof i?.['@_href'] === 'string')
    .map((i) => ({
      id: String(i['@_id'] ?? ''),
      href: String(i['@_href']),
      mediaType: String(i['@_media-type'] ?? '')
        .toLowerCase()
        .trim(),
      properties: String(i['@_properties'] ?? '')
        .split(/\s+/)
        .filter(Boolean),
    }));
  const coverMeta = asArray(md.meta).find((m) => m?.['@_name'] === 'cover' && typeof m['@_content'] === 'string');
  const out: OpfPackage = {
    creators: asArray(md.creator)
      .map(textOf)
      .filter((c): c is string => !!c),
    items,
    spine: asArray(typeof pkg.spine === 'object' && pkg.spine ? pkg.spine.itemref : undefined)
      .map((r) => (typeof r?.['@_idref'] === 'string' ? r['@_idref'].trim() : ''))
      .filter(Boolean),
  };
  const title = textOf(asArray(md.title)[0]);
  const language = textOf(asArray(md.language)[0]);
  const publisher = textOf(asArray(md.publisher)[0]);
  if (title) out.title = title;
  if (language) out.language = language;
  if (publisher) out.publisher = publisher;
  if (coverMeta) out.coverMeta = String(coverMeta['@_content']).trim();
  return out;
}

/** Raster images an EPUB may hold as core media types (SVG is not rendered from an upload). */
const RASTER_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp']);

/**
 * Where the cover is: the EPUB 3 `cover-image` item, else the EPUB 2 cover meta's item (by id,
 * or by href as some writers put it), else the first raster image of the manifest. A declared
 * cover that is not a raster image (SVG) is still the cover: it is returned, and not rendered.
 */
export function chooseCover(opf: OpfPackage): CoverChoice | undefined {
  const declared =
    opf.items.find((i) => i.properties.includes('cover-image')) ??
    (opf.coverMeta ? (opf.items.find((i) => i.id === opf.coverMeta) ?? opf.items.find((i) => i.href === opf.coverMeta)) : undefined);
  if (declared && (declared.mediaType.startsWith('image/') || declared.mediaType === '')) return { item: declared, source: 'manifest-cover' };
  const first = opf.items.find((i) => RASTER_TYPES.has(i.mediaType));
  return first ? { item: first, source: 'first-image' } : undefined;
}

/** Media types of spine documents whose text is read (XHTML, HTML, and OEB 1.x documents of legacy packages). */
const TEXT_TYPES = new Set(['application/xhtml+xml', 'text/html', 'text/x-oeb1-document']);

/** The manifest items of the spine that hold text, in reading order, each once. */
export function spineTextItems(opf: OpfPackage): OpfItem[] {
  const byId = new Map(opf.items.map((i) => [i.id, i]));
  const out = new Map<string, OpfItem>();
  for (const id of opf.spine) {
    const item = byId.get(id);
    if (item && TEXT_TYPES.has(item.mediaType) && !out.has(item.href)) out.set(item.href, item);
  }
  return [...out.values()];
}

/** Whether a manifest media type is one we render. */
export function isRasterType(mediaType: string): boolean {
  return RASTER_TYPES.has(mediaType);
}

/**
 * The zip entry name an href of the package document points at: relative to the OPF's folder,
 * percent-decoded, fragment and query dropped. Absolute URLs, absolute paths and paths that
 * climb out of the zip's root are refused.
 */
export function resolveHref(opfPath: string, href: string): string {
  const bare = href.replace(/[#?].*$/s, '');
  if (!bare || /^[a-z][a-z0-9+.-]*:/i.test(bare) || bare.startsWith('/') || bare.startsWith('\\')) {
    throw new PermanentJobError(`the EPUB points outside itself: ${JSON.stringify(href)}`, 'unreadable-media');
  }
  let segments: string[];
  try {
    segments = bare.split('/').map((s) => decodeURIComponent(s));
  } catch {
    throw new PermanentJobError(`the EPUB has a malformed href: ${JSON.stringify(href)}`, 'unreadable-media');
  }
  return zipPath(opfPath.split('/').slice(0, -1), segments, href);
}

function zipPath(base: string[], segments: string[], original: string): string {
  const out = [...base];
  for (const s of segments) {
    if (s === '' || s === '.') continue;
    if (s.includes('/') || s.includes('\\') || s.includes('\0')) {
      throw new PermanentJobError(`the EPUB has a malformed path: ${JSON.stringify(original)}`, 'unreadable-media');
    }
    if (s === '..') {
      if (!out.length) throw new PermanentJobError(`the EPUB points outside itself: ${JSON.stringify(original)}`, 'unreadable-media');
      out.pop();
    } else out.push(s);
  }
  if (!out.length) throw new PermanentJobError(`the EPUB has an empty path: ${JSON.stringify(original)}`, 'unreadable-media');
  return out.join('/');
}
