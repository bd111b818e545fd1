import { once } from 'node:events';
import zlib from 'node:zlib';

/** An entry's bytes already deflated (raw), with the CRC and size of what they inflate to. */
export interface PackedData {
  body: Buffer;
  crc: number;
  size: number;
}

export interface ZipItem {
  name: string;
  data: Buffer | string | PackedData;
  store?: boolean;
  /** The uncompressed size written in the headers, when it should not be the real one. */
  declaredSize?: number;
}

function isPacked(data: ZipItem['data']): data is PackedData {
  return typeof data === 'object' && !Buffer.isBuffer(data);
}

/** A zip written by hand, so a test can also lie about an entry's size. */
export function buildZip(items: ZipItem[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const item of items) {
    let body: Buffer;
    let crc: number;
    let realSize: number;
    let method = 8;
    if (isPacked(item.data)) {
      ({ body, crc, size: realSize } = item.data);
    } else {
      const raw = Buffer.isBuffer(item.data) ? item.data : Buffer.from(item.data, 'utf8');
      method = item.store ? 0 : 8;
      body = item.store ? raw : zlib.deflateRawSync(raw, { level: 9 });
      crc = zlib.crc32(raw);
      realSize = raw.length;
    }
    const size = item.declaredSize ?? realSize;
    const name = Buffer.from(item.name, 'utf8');
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // names are UTF-8
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(20, 4);
    entry.writeUInt16LE(20, 6);
    entry.writeUInt16LE(0x0800, 8);
    entry.writeUInt16LE(method, 10);
    entry.writeUInt32LE(crc, 16);
    entry.writeUInt32LE(body.length, 20);
    entry.writeUInt32LE(size, 24);
    entry.writeUInt16LE(name.length, 28);
    entry.writeUInt32LE(offset, 42);
    parts.push(local, name, body);
    central.push(entry, name);
    offset += local.length + name.length + body.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(items.length, 8);
  end.writeUInt16LE(items.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

/** `size` zero bytes deflated, streamed through 1 MiB at a time (never held whole). */
export async function deflatedZeros(size: number): Promise<PackedData> {
  const zeros = Buffer.alloc(1024 * 1024);
  const deflate = zlib.createDeflateRaw({ level: 9 });
  const out: Buffer[] = [];
  deflate.on('data', (b: Buffer) => out.push(b));
  let crc = 0;
  for (let left = size; left > 0; left -= zeros.length) {
    const part = zeros.subarray(0, Math.min(left, zeros.length));
    crc = zlib.crc32(part, crc);
    if (!deflate.write(part)) await once(deflate, 'drain');
  }
  deflate.end();
  await once(deflate, 'end');
  return { body: Buffer.concat(out), crc, size };
}

/**
 * A well-formed EPUB (container, OPF with a title, one chapter) whose chapter is `chapterBytes`
 * of zeros: a small file that unpacks to a huge one, its bomb in an entry no cover or
 * metadata lookup would read.
 */
export async function chapterBombEpub(chapterBytes = 200 * 1024 * 1024): Promise<Buffer> {
  const opf = `<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="id">urn:uuid:0f0e0d0c-0b0a-4000-8000-00000000b0b0</dc:identifier>
    <dc:title>Zeros</dc:title>
  </metadata>
  <manifest><item id="ch1" href="chapter1.xhtml" media-type="application/xhtml+xml"/></manifest>
  <spine><itemref idref="ch1"/></spine>
</package>`;
  return buildZip([
    { name: 'mimetype', data: 'application/epub+zip', store: true },
    {
      name: 'META-INF/container.xml',
      data: '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>',
    },
    { name: 'OEBPS/content.opf', data: opf },
    { name: 'OEBPS/chapter1.xhtml', data: await deflatedZeros(chapterBytes) },
  ]);
}

export interface EpubBook {
  /** dc:title and dc:creator elements, as written (already escaped for XML). */
  title?: string;
  creators?: string[];
  /** The spine's chapters, in reading order: whole XHTML documents. */
  chapters: string[];
  /** More manifest items and files (a cover, images), added as given. */
  manifest?: string;
  files?: ZipItem[];
}

/** An XHTML chapter whose body is `body` (markup, as written). */
export function xhtmlChapter(body: string, head = '<title>Chapter</title>'): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml"><head>${head}</head><body>${body}</body></html>`;
}

/** A well-formed EPUB 3 whose spine is the chapters given (chapter1.xhtml, chapter2.xhtml…). */
export function epubBook(book: EpubBook): Buffer {
  const opf = `<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="id">urn:uuid:0f0e0d0c-0b0a-4000-8000-00000000b00c</dc:identifier>
    ${book.title !== undefined ? `<dc:title>${book.title}</dc:title>` : ''}
    ${(book.creators ?? []).map((c) => `<dc:creator>${c}</dc:creator>`).join('\n    ')}
    <dc:language>en</dc:language>
  </metadata>
  <manifest>
    ${book.chapters.map((_, i) => `<item id="ch${i + 1}" href="chapter${i + 1}.xhtml" media-type="application/xhtml+xml"/>`).join('\n    ')}
    ${book.manifest ?? ''}
  </manifest>
  <spine>${book.chapters.map((_, i) => `<itemref idref="ch${i + 1}"/>`).join('')}</spine>
</package>`;
  return buildZip([
    { name: 'mimetype', data: 'application/epub+zip', store: true },
    {
      name: 'META-INF/container.xml',
      data: '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>',
    },
    { name: 'OEBPS/content.opf', data: opf },
    ...book.chapters.map((data, i) => ({ name: `OEBPS/chapter${i + 1}.xhtml`, data })),
    ...(book.files ?? []),
  ]);
}
