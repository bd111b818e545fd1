/*
 * Plain text of an EPUB's XHTML chapters, for search. A linear scan, not a parser: chapters are
 * often not quite well-formed, and nothing here may expand an entity it does not know or reach
 * outside the text it is given (no DTD, no external entity, no URL is ever read).
 */

/**
 * The named character references an XHTML 1.x chapter may use (the HTML 4 set its DTDs declare,
 * and XML's `&apos;`), as `name:hex code point`. Others are left as written.
 */
const NAMED = new Map(
  [
    'quot:22 amp:26 apos:27 lt:3c gt:3e nbsp:a0 iexcl:a1 cent:a2 pound:a3 curren:a4 yen:a5 brvbar:a6 sect:a7 uml:a8 copy:a9',
    'ordf:aa laquo:ab not:ac shy:ad reg:ae macr:af deg:b0 plusmn:b1 sup2:b2 sup3:b3 acute:b4 micro:b5 para:b6 middot:b7',
    'cedil:b8 sup1:b9 ordm:ba raquo:bb frac14:bc frac12:bd frac34:be iquest:bf Agrave:c0 Aacute:c1 Acirc:c2 Atilde:c3 Auml:c4',
    'Aring:c5 AElig:c6 Ccedil:c7 Egrave:c8 Eacute:c9 Ecirc:ca Euml:cb Igrave:cc Iacute:cd Icirc:ce Iuml:cf ETH:d0 Ntilde:d1',
    'Ograve:d2 Oacute:d3 Ocirc:d4 Otilde:d5 Ouml:d6 times:d7 Oslash:d8 Ugrave:d9 Uacute:da Ucirc:db Uuml:dc Yacute:dd',
    'THORN:de szlig:df agrave:e0 aacute:e1 acirc:e2 atilde:e3 auml:e4 aring:e5 aelig:e6 ccedil:e7 egrave:e8 eacute:e9',
    'ecirc:ea euml:eb igrave:ec iacute:ed icirc:ee iuml:ef eth:f0 ntilde:f1 ograve:f2 oacute:f3 ocirc:f4 otilde:f5 ouml:f6',
    'divide:f7 oslash:f8 ugrave:f9 uacute:fa ucirc:fb uuml:fc yacute:fd thorn:fe yuml:ff OElig:152 oelig:153 Scaron:160',
    'scaron:161 Yuml:178 fnof:192 circ:2c6 tilde:2dc Alpha:391 Beta:392 Gamma:393 Delta:394 Epsilon:395 Zeta:396 Eta:397',
    'Theta:398 Iota:399 Kappa:39a Lambda:39b Mu:39c Nu:39d Xi:39e Omicron:39f Pi:3a0 Rho:3a1 Sigma:3a3 Tau:3a4 Upsilon:3a5',
    'Phi:3a6 Chi:3a7 Psi:3a8 Omega:3a9 alpha:3b1 beta:3b2 gamma:3b3 delta:3b4 epsilon:3b5 zeta:3b6 eta:3b7 theta:3b8 iota:3b9',
    'kappa:3ba lambda:3bb mu:3bc nu:3bd xi:3be omicron:3bf pi:3c0 rho:3c1 sigmaf:3c2 sigma:3c3 tau:3c4 upsilon:3c5 phi:3c6',
    'chi:3c7 psi:3c8 omega:3c9 thetasym:3d1 upsih:3d2 piv:3d6 ensp:2002 emsp:2003 thinsp:2009 zwnj:200c zwj:200d lrm:200e',
    'rlm:200f ndash:2013 mdash:2014 lsquo:2018 rsquo:2019 sbquo:201a ldquo:201c rdquo:201d bdquo:201e dagger:2020 Dagger:2021',
    'bull:2022 hellip:2026 permil:2030 prime:2032 Prime:2033 lsaquo:2039 rsaquo:203a oline:203e frasl:2044 euro:20ac',
    'image:2111 weierp:2118 real:211c trade:2122 alefsym:2135 larr:2190 uarr:2191 rarr:2192 darr:2193 harr:2194 crarr:21b5',
    'lArr:21d0 uArr:21d1 rArr:21d2 dArr:21d3 hArr:21d4 forall:2200 part:2202 exist:2203 empty:2205 nabla:2207 isin:2208',
    'notin:2209 ni:220b prod:220f sum:2211 minus:2212 lowast:2217 radic:221a prop:221d infin:221e ang:2220 and:2227 or:2228',
    'cap:2229 cup:222a int:222b there4:2234 sim:223c cong:2245 asymp:2248 ne:2260 equiv:2261 le:2264 ge:2265 sub:2282',
    'sup:2283 nsub:2284 sube:2286 supe:2287 oplus:2295 otimes:2297 perp:22a5 sdot:22c5 lceil:2308 rceil:2309 lfloor:230a',
    'rfloor:230b lang:2329 rang:232a loz:25ca spades:2660 clubs:2663 hearts:2665 diams:2666',
  ]
    .join(' ')
    .split(' ')
    .map((pair) => {
      const [name, hex] = pair.split(':') as [string, string];
      return [name, String.fromCodePoint(Number.parseInt(hex, 16))] as const;
    }),
);

const REFERENCE = /&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([A-Za-z][A-Za-z0-9]{1,31}));/g;

function fromCodePoint(cp: number): string {
  // NUL, surrogates and code points past Unicode are not characters; C0/C1 controls are whitespace here.
  if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return '\uFFFD';
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return ' ';
  return String.fromCodePoint(cp);
}

/** Decodes numeric character references and the named ones of XHTML 1.x; unknown names stay as written. */
export function decodeReferences(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(REFERENCE, (whole, dec: string | undefined, hex: string | undefined, name: string | undefined) => {
    if (dec !== undefined) return fromCodePoint(Number(dec));
    if (hex !== undefined) return fromCodePoint(Number.parseInt(hex, 16));
    return NAMED.get(name!) ?? whole;
  });
}

/** Elements whose content is not text a reader sees. */
const SKIPPED = new Set(['head', 'script', 'style', 'template', 'noscript']);

/** Elements that end a line of text (so words on either side of them stay apart). */
const BREAKS = new Set([
  'address',
  'article',
  'aside',
  'blockquote',
  'br',
  'caption',
  'dd',
  'div',
  'dl',
  'dt',
  'figcaption',
  'figure',
  'footer',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'header',
  'hr',
  'li',
  'main',
  'nav',
  'ol',
  'p',
  'pre',
  'section',
  'table',
  'td',
  'th',
  'tr',
  'ul',
  'body',
  'html',
  'math',
  'svg',
  'img',
]);

const TAG_NAME = /<\/?\s*([A-Za-z_][\w.:-]*)/y;

/**
 * Where the tag opened at `lt` ends (the index of its `>`), skipping `>` inside quoted
 * attribute values (a quote opens a value only after `=`); -1 when the text ends first.
 */
function tagEnd(s: string, lt: number): number {
  let quote = '';
  let afterEquals = false;
  for (let i = lt + 1; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '>') return i;
    else if ((c === '"' || c === "'") && afterEquals) quote = c;
    if (c === '=') afterEquals = true;
    else if (c !== ' ' && c !== '\t' && c !== '\n' && c !== '\r') afterEquals = false;
  }
  return -1;
}

export interface ChapterText {
  text: string;
  /** False when the scan stopped at `maxChars`, before the end of the chapter. */
  complete: boolean;
}

/**
 * The text a reader sees in an XHTML (or HTML) chapter: text of the body with character
 * references decoded, block elements as line breaks, without scripts, styles, the head,
 * comments, processing instructions or the DOCTYPE. Stops once more than `maxChars` characters
 * are collected (the text returned may run a little past it). Linear in the input's length.
 */
export function xhtmlToText(s: string, maxChars = Number.POSITIVE_INFINITY): ChapterText {
  const out: string[] = [];
  let length = 0;
  // Line breaks in the markup are spaces, as a browser shows them; only block elements break lines.
  const text = (raw: string, decode: boolean) => {
    if (!raw) return;
    const t = (decode ? decodeReferences(raw) : raw).replace(/[ \t\n\r\f]+/g, ' ');
    out.push(t);
    length += t.length;
  };
  let i = 0;
  while (i < s.length && length <= maxChars) {
    const lt = s.indexOf('<', i);
    if (lt < 0) {
      text(s.slice(i), true);
      i = s.length;
      break;
    }
    text(s.slice(i, lt), true);
    if (s.startsWith('<!--', lt)) {
      const end = s.indexOf('-->', lt + 4);
      i = end < 0 ? s.length : end + 3;
      continue;
    }
    if (s.startsWith('<![CDATA[', lt)) {
      const end = s.indexOf(']]>', lt + 9);
      text(s.slice(lt + 9, end < 0 ? s.length : end), false);
      i = end < 0 ? s.length : end + 3;
      continue;
    }
    if (s.startsWith('<!', lt) || s.startsWith('<?', lt)) {
      // A DOCTYPE with an internal subset ends at `]>`; anything else at the next `>`.
      const subset = s.startsWith('<!DOCTYPE', lt) || s.startsWith('<!doctype', lt) ? s.indexOf('[', lt) : -1;
      const close = s.indexOf('>', lt);
      const end = subset >= 0 && (close < 0 || subset < close) ? s.indexOf(']>', subset) : close;
      i = end < 0 ? s.length : end + (end === close ? 1 : 2);
      continue;
    }
    TAG_NAME.lastIndex = lt;
    const m = TAG_NAME.exec(s);
    if (!m) {
      // A lone `<` is text.
      out.push('<');
      length++;
      i = lt + 1;
      continue;
    }
    const end = tagEnd(s, lt);
    if (end < 0) {
      // A tag left open at the end: nothing after it is text.
      i = s.length;
      break;
    }
    const closing = s[lt + 1] === '/';
    const name = m[1]!.slice(m[1]!.lastIndexOf(':') + 1).toLowerCase();
    i = end + 1;
    if (BREAKS.has(name)) {
      out.push('\n');
      length++;
    }
    if (!closing && SKIPPED.has(name) && s[end - 1] !== '/') {
      // Its content is skipped up to its own end tag (these elements do not nest).
      const close = new RegExp(`</\\s*(?:[\\w.-]+:)?${name}\\s*>`, 'gi');
      close.lastIndex = i;
      const found = close.exec(s);
      i = found ? found.index + found[0].length : s.length;
    }
  }
  return { text: out.join(''), complete: i >= s.length };
}
