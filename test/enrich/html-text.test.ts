import { convert } from "html-to-text";
import { describe, expect, it } from "vitest";

import { htmlToPlainText, MAX_MARKED_LEVELS } from "../../src/enrich/html-text.js";
import { sanitizeMessageHtml } from "../../src/enrich/safe-html.js";

describe("htmlToPlainText", () => {
  it.each([
    [
      "a Gmail reply chain",
      `<div>Thanks!</div><div class="gmail_quote">On Mon wrote:<blockquote>Hello<blockquote>first <b>mail</b></blockquote></blockquote></div>`,
    ],
    [
      "lists, nested and numbered",
      `<ul><li>one<ul><li>inner</li></ul></li><li>two</li></ul><ol start="3" type="i"><li>x</li><li>y</li></ol><ol type="A"><li>a</li></ol>`,
    ],
    ["tables and paragraphs", `<table><tr><td>a</td><td>b</td></tr></table><p>para ${"word ".repeat(40)}</p>`],
  ])("writes %s exactly as html-to-text does", (_name, html) => {
    expect(htmlToPlainText(html)).toBe(convert(html, { limits: { maxDepth: 1000 } }));
  });

  it.each([
    ["blockquotes", (depth: number, words: number) => `${"<blockquote>".repeat(depth)}${"x ".repeat(words)}`],
    ["unordered lists", (depth: number, words: number) => `${"<ul><li>".repeat(depth)}${"x ".repeat(words)}`],
    ["ordered lists", (depth: number, words: number) => `${"<ol><li>".repeat(depth)}${"x ".repeat(words)}`],
  ])("keeps the text of deeply nested %s linear in the input, with marks for the first levels only", (_name, make) => {
    // html-to-text alone: 400 levels x 20 000 words gave 1.6 MB of text from 45 KB.
    const sizes = [1, 4, 16].map((k) => {
      const html = make(400, 2000 * k);
      return { html: html.length, text: htmlToPlainText(html) };
    });
    for (const { html, text } of sizes) {
      expect(text.length).toBeLessThan(html * 12);
      expect(text.split("x").length - 1).toBeGreaterThanOrEqual(2000);
    }
    expect(sizes[2]!.text.length / sizes[0]!.text.length).toBeLessThan(16 * 1.1);
  });

  it(`marks ${MAX_MARKED_LEVELS} levels of quotes, then lays the rest out plainly`, () => {
    const text = htmlToPlainText(`${"<blockquote>".repeat(20)}deep`);
    expect(text).toBe(`${"> ".repeat(MAX_MARKED_LEVELS)}deep`);
  });
});

describe("sanitizeMessageHtml on hostile runs (linear patterns)", () => {
  it("an attribute followed by a long run of spaces, and <link repeated, are read in one pass", () => {
    // Both patterns were quadratic here: 400 KB would have taken hours.
    const spaces = sanitizeMessageHtml(`<div background=${" ".repeat(400_000)}x>a</div>`, []);
    expect(spaces.remoteContentBlocked).toBe(false);
    const links = sanitizeMessageHtml(`${"<link".repeat(80_000)}`, []);
    expect(links.remoteContentBlocked).toBe(false);
    expect(sanitizeMessageHtml(`<div background = ' //evil.example/x.png'>a</div><link rel=x href=//e/x.css>`, []).remoteContentBlocked).toBe(true);
  });
});
