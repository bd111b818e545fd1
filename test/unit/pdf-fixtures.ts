/** PDFs written by hand for tests: real files poppler reads, with exactly the text a test needs. */

export interface TextPdf {
  /** Each page's lines of text (Latin-1), drawn in Helvetica from the top of a US Letter page. */
  pages: string[][];
  /** The document information dictionary's Title and Author (any Unicode, written as UTF-16). */
  title?: string;
  author?: string;
}

/** A PDF literal string: backslash, parentheses escaped. */
function literal(text: string): string {
  return `(${text.replace(/[\\()]/g, (c) => `\\${c}`)})`;
}

/** A PDF text string in UTF-16BE with its byte order mark, as hex. */
function utf16(text: string): string {
  const units = Buffer.from(text, 'utf16le').swap16();
  return `<FEFF${units.toString('hex').toUpperCase()}>`;
}

/** A PDF whose pages carry the given lines as a text layer (and draw them), with a title and author when given. */
export function textPdf(doc: TextPdf): Buffer {
  const objects: string[] = [];
  const add = (body: string) => objects.push(body);
  add('<< /Type /Catalog /Pages 2 0 R >>');
  add('');
  add('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>');
  const info: string[] = [];
  if (doc.title !== undefined) info.push(`/Title ${utf16(doc.title)}`);
  if (doc.author !== undefined) info.push(`/Author ${utf16(doc.author)}`);
  add(`<< ${info.join(' ')} /Producer (Qasar tests) >>`);
  const kids: number[] = [];
  for (const lines of doc.pages) {
    const content = ['BT', '/F1 11 Tf', '14 TL', '72 740 Td', ...lines.map((l) => `${literal(l)} Tj T*`), 'ET'].join('\n');
    add(`<< /Length ${Buffer.byteLength(content, 'latin1')} >>\nstream\n${content}\nendstream`);
    const contentId = objects.length;
    add(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents ${contentId} 0 R /Resources << /Font << /F1 3 0 R >> >> >>`);
    kids.push(objects.length);
  }
  objects[1] = `<< /Type /Pages /Kids [${kids.map((k) => `${k} 0 R`).join(' ')}] /Count ${kids.length} >>`;

  const chunks: Buffer[] = [Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1')];
  let length = chunks[0]!.length;
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(length);
    const obj = Buffer.from(`${i + 1} 0 obj\n${body}\nendobj\n`, 'latin1');
    chunks.push(obj);
    length += obj.length;
  });
  const xref = [`xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`, ...offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`)].join('');
  const trailer = `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R /Info 4 0 R >>\nstartxref\n${length}\n%%EOF\n`;
  return Buffer.concat([...chunks, Buffer.from(xref + trailer, 'latin1')]);
}
