import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cutText, normalizeText, TextCollector } from '../../src/processing/document/document-text.js';
import { decodeReferences, xhtmlToText } from '../../src/processing/document/xhtml-text.js';
import { distinctWordsField } from '../../src/search/text.js';

describe('document text (pure)', () => {
  describe('XHTML chapters to text', () => {
    const text = (s: string) => normalizeText(xhtmlToText(s).text);

    it('keeps what a reader sees: body text, references decoded, blocks as line breaks, inline elements joined', () => {
      assert.equal(
        text(
          '<html><head><title>Head</title></head><body><h1>One</h1><p>a <em>b</em>c&amp;d &lt;e&gt; &#233;&#xE9;&eacute; &hellip;</p><p>x<br/>y</p></body></html>',
        ),
        'One\n\na bc&d <e> ééé …\n\nx\ny',
      );
      assert.equal(text('<p>line\n   broken   in\tthe markup</p>'), 'line broken in the markup', 'markup line breaks are spaces');
    });

    it('leaves out the head, scripts, styles, comments, processing instructions and the DOCTYPE (with its internal subset)', () => {
      const doc = `<?xml version="1.0"?><?xml-stylesheet href="x.css"?>
<!DOCTYPE html [<!ENTITY x "<p>entity text</p>"> <!ENTITY y SYSTEM "file:///etc/passwd">]>
<html><head><style>p{}</style><script>head()</script></head><body><!-- a > comment -->
<script type="text/javascript">if (a < b && c > d) { document.write("<p>no</p>"); }</script>
<STYLE>.a > .b { }</STYLE><ns:script xmlns:ns="x">also not</ns:script><p>kept &x; &y;</p><template><p>not shown</p></template></body></html>`;
      assert.equal(text(doc), 'kept &x; &y;');
    });

    it('CDATA is text as written; an unknown or malformed reference stays as written; bad code points are replaced', () => {
      assert.equal(text('<p><![CDATA[a &amp; <b>]]></p>'), 'a &amp; <b>');
      assert.equal(decodeReferences('&nosuch; &amp &#xZZ; &#0; &#xD800; &#x110000; &#65;&#x42;&apos;'), "&nosuch; &amp &#xZZ; \uFFFD \uFFFD \uFFFD AB'");
      assert.equal(decodeReferences('&#7;&#x85;'), '  ', 'controls become spaces');
    });

    it('copes with broken markup: a lone <, a > inside a quoted attribute, an apostrophe in an unquoted one, an unclosed tag or script', () => {
      assert.equal(text('<p>1 < 2 and 3 <4</p>'), '1 < 2 and 3 <4');
      assert.equal(text('<p title="a > b">x</p><img alt=\'c > d\'/>y'), 'x\n\ny');
      assert.equal(text("<p class=don't>z</p>"), 'z');
      assert.equal(text('<p>before</p><p unclosed="'), 'before');
      assert.equal(text('<p>before</p><script>never closed <p>x</p>'), 'before');
    });

    it('stops once it has enough, and says so', () => {
      const long = `<p>${'word '.repeat(10_000)}</p><p>end</p>`;
      const part = xhtmlToText(long, 100);
      assert.equal(part.complete, false);
      assert.ok(part.text.length < 60_000);
      assert.equal(xhtmlToText(long).complete, true);
    });

    it('runs in linear time on hostile markup', () => {
      const inputs = [
        '<'.repeat(2_000_000),
        '<a '.repeat(700_000),
        `<p a="${'>'.repeat(2_000_000)}`,
        '&'.repeat(2_000_000),
        '&#1'.repeat(500_000),
        '<!--'.repeat(500_000),
        '<script>'.repeat(250_000),
        `<!DOCTYPE x [${'<!ENTITY a "b">'.repeat(100_000)}`,
      ];
      for (const input of inputs) {
        const started = process.hrtime.bigint();
        xhtmlToText(input);
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        assert.ok(ms < 2000, `${JSON.stringify(input.slice(0, 12))}…: ${ms.toFixed(0)} ms`);
      }
    });
  });

  describe('normalising and cutting', () => {
    it('normalises: NFC, line ends, page breaks as blank lines, controls and lone surrogates out, spaces squeezed', () => {
      assert.equal(normalizeText('  e\u0301t\u00e9\r\nnext\rline\fpage\u0000x\u0007y \u00a0\t z \n\n\n\n w\ud800 '), 'été\nnext\nline\n\npage x y z\n\nw');
    });

    it('cuts at the limit, between words when a space is near, never inside a surrogate pair', () => {
      assert.equal(cutText('short', 10), 'short');
      assert.equal(cutText('alpha beta gamma', 13), 'alpha beta');
      assert.equal(cutText('alpha beta gamma', 11), 'alpha beta');
      assert.equal(cutText('x'.repeat(100), 50), 'x'.repeat(50), 'a long run without spaces is cut where it must be');
      assert.equal(cutText('😀😀😀', 3), '😀');
    });

    it('collects parts up to the limit, and tells when text was cut or left out', () => {
      const c = new TextCollector(20);
      assert.equal(c.add('  first   part '), true);
      assert.equal(c.add(''), true);
      assert.equal(c.add('second part is long'), false);
      assert.equal(c.full, true);
      assert.equal(c.add('more'), false);
      assert.deepEqual(c.result(), { text: 'first part\n\nsecond', truncated: true });

      const d = new TextCollector(100);
      d.add('a');
      d.markTruncated();
      assert.equal(d.full, false, 'a part left out does not stop the rest');
      d.add('b');
      assert.deepEqual(d.result(), { text: 'a\n\nb', truncated: true });
      assert.deepEqual(new TextCollector(100).result(), { text: '', truncated: false });
    });
  });

  describe('the body field of a search document', () => {
    it('holds each word once, folded, in order of first appearance, and leaves out very long ones', () => {
      assert.equal(distinctWordsField('The cat saw THE Cat. Übermäßig über-cat!', 10_000), 'the cat saw ubermaßig uber');
      assert.equal(distinctWordsField(`a ${'x'.repeat(65)} b ${'y'.repeat(64)}`, 10_000), `a b ${'y'.repeat(64)}`);
      assert.equal(distinctWordsField(undefined, 100), '');
    });

    it('stays within its byte budget (each word counts its UTF-8 bytes and 10 more), whatever the text holds', () => {
      const words = Array.from({ length: 100_000 }, (_, i) => `w${i.toString(36)}`);
      const field = distinctWordsField(words.join(' '), 50_000);
      const kept = field.split(' ');
      const cost = kept.reduce((n, w) => n + Buffer.byteLength(w) + 10, 0);
      assert.ok(cost <= 50_000 && cost > 49_000, `${cost} bytes`);
      assert.deepEqual(kept, words.slice(0, kept.length), 'the first words of the text');
      const cjk = Array.from({ length: 30_000 }, (_, i) => String.fromCodePoint(0x4e00 + i)).join(' ');
      const wide = distinctWordsField(cjk, 13 * 1000);
      assert.equal(wide.split(' ').length, 1000, 'three bytes and ten each');
    });
  });
});
