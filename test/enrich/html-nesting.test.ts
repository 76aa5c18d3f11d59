import { Parser } from "htmlparser2";
import { describe, expect, it } from "vitest";

import { exceedsHtmlNestingDepth, measureHtmlNesting } from "../../src/enrich/html-nesting.js";

/** The depth htmlparser2 itself reaches: its stack length whenever it opens an element. */
function parserDepth(html: string): number {
  let max = 0;
  const parser: Parser = new Parser({
    onopentagname() {
      max = Math.max(max, (parser as unknown as { stack: string[] }).stack.length);
    },
  });
  parser.write(html);
  parser.end();
  return max;
}

/** Deterministic pseudo-random HTML from pieces that exercise every rule of the measure. */
function randomHtml(seed: number, pieces: number): string {
  const alphabet = [
    "<p>",
    "</p>",
    "<li>",
    "</li>",
    "<ul>",
    "</ul>",
    "<div>",
    "</div>",
    "<b>",
    "</b>",
    "<td>",
    "<tr>",
    "<table>",
    "</table>",
    "<br>",
    "<br/>",
    "</br>",
    "<img src=x>",
    "<svg>",
    "</svg>",
    "<path/>",
    "<g/>",
    "<math>",
    "</math>",
    "<title>",
    "</title>",
    "<script>",
    "</script>",
    "<style>",
    "</style>",
    "<!-- c -->",
    "<!--",
    "-->",
    '<i title="</b>">',
    "<i title='<p>'>",
    "</i>",
    "<b.x>",
    "</b.x>",
    "<B>",
    "</B >",
    "<dd>",
    "<dt>",
    "<option>",
    "<select>",
    "<h1>",
    "</h1>",
    "<textarea>",
    "</textarea>",
    "<xmp>",
    "</xmp>",
    "<![CDATA[",
    "]]>",
    "<!doctype html>",
    "<?pi?>",
    "text ",
    "<",
    ">",
    "&amp;",
    "<a/>",
    "</a>",
    "<foreignObject>",
    "</foreignObject>",
    "<desc>",
    "</desc>",
    "</ p>",
    "<tbody>",
    "<tfoot>",
    "<thead>",
    "<rt>",
    "<rp>",
  ];
  let state = seed || 1;
  let html = "";
  for (let i = 0; i < pieces; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    html += alphabet[(state >>> 0) % alphabet.length];
  }
  return html;
}

describe("measureHtmlNesting", () => {
  it("gives exactly the depth htmlparser2 builds, on 500 random documents of tricky pieces", () => {
    for (let seed = 1; seed <= 500; seed++) {
      const html = randomHtml(seed, 300);
      expect(measureHtmlNesting(html).maxDepth, html).toBe(parserDepth(html));
    }
  });

  it.each([
    ["<p><li> repeated (li closes only an li on top of the stack)", (n: number) => "<p><li>".repeat(n)],
    ["end tags hidden in attribute values", (n: number) => '<b><i title="</b></i>">'.repeat(n)],
    ["end tags inside <script>", (n: number) => "<b><script></b></script>".repeat(n)],
    ["tags with names the old pattern cut short", (n: number) => "<b.x></b>".repeat(n)],
  ])("sees nesting the old approximation missed: %s", (_name, make) => {
    const html = make(2000);
    expect(parserDepth(html)).toBeGreaterThan(512);
    expect(exceedsHtmlNestingDepth(html)).toBe(true);
  });

  it("lets real mail through: closed elements, implied closes, void elements", () => {
    const html = `<table>${"<tr><td><p>a<p>b<br><img src=x></td>".repeat(3000)}</table>${"<div><b>x</b></div>".repeat(3000)}`;
    expect(exceedsHtmlNestingDepth(html)).toBe(false);
    expect(measureHtmlNesting(html).maxDepth).toBe(parserDepth(html));
  });

  it("costs steps linear in the input, whatever the shape (n, 4n, 16n)", () => {
    const shapes = [
      (n: number) => "<p><li>".repeat(n),
      (n: number) => "<div>".repeat(n),
      (n: number) => `${"<div>".repeat(511)}${"</x>".repeat(n)}`,
      (n: number) => "<b></b>".repeat(n),
      (n: number) => `${"<div>".repeat(900)}${"</div>".repeat(n)}`,
    ];
    for (const shape of shapes) {
      const [small, medium, large] = [1000, 4000, 16000].map((n) => measureHtmlNesting(shape(n)));
      const perInput = (result: { steps: number }, n: number) => result.steps / shape(n).length;
      expect(perInput(medium!, 4000)).toBeLessThanOrEqual(perInput(small!, 1000) * 1.1);
      expect(perInput(large!, 16000)).toBeLessThanOrEqual(perInput(small!, 1000) * 1.1);
    }
  });

  it("stops reading once the limit is passed", () => {
    const html = "<div>".repeat(100_000);
    const stopped = measureHtmlNesting(html, 1000);
    expect(stopped.maxDepth).toBe(1001);
    expect(stopped.steps).toBeLessThan(measureHtmlNesting(html).steps / 10);
  });
});
