/**
 * Whether HTML nests elements deeper than a limit, in one linear pass. Needed before handing
 * a message's HTML to htmlparser2 (sanitize-html, our style extraction) or html-to-text:
 * htmlparser2 keeps its element stack at the front of an array, so parsing is quadratic in the
 * nesting depth (200 000 nested <b> take seconds), and html-to-text's recursive walk overflows
 * the call stack at about 2000 levels. Real mail stays far below: browsers flatten anything
 * nested deeper than 512 levels.
 *
 * Approximates what htmlparser2 builds: a start tag opens an element (void elements and the
 * ones a sibling closes implicitly, like td and li, do not count), an end tag closes down to
 * the nearest open element of its name and is ignored otherwise; comments are skipped.
 */

export const MAX_HTML_NESTING_DEPTH = 1000;

const VOID_ELEMENTS = new Set(["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"]);
const IMPLIED_END_ELEMENTS = new Set(["p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "thead", "tbody", "tfoot", "rt", "rp"]);
const TAG = /<(\/?)([A-Za-z][A-Za-z0-9:_-]*)|<!--/g;

export function exceedsHtmlNestingDepth(html: string, maxDepth: number = MAX_HTML_NESTING_DEPTH): boolean {
  const stack: string[] = [];
  const open = new Map<string, number>();
  TAG.lastIndex = 0;
  for (let match = TAG.exec(html); match !== null; match = TAG.exec(html)) {
    if (match[0] === "<!--") {
      const end = html.indexOf("-->", TAG.lastIndex);
      if (end === -1) break;
      TAG.lastIndex = end + 3;
      continue;
    }
    const name = match[2]!.toLowerCase();
    if (VOID_ELEMENTS.has(name) || IMPLIED_END_ELEMENTS.has(name)) continue;
    if (match[1] === "") {
      stack.push(name);
      open.set(name, (open.get(name) ?? 0) + 1);
      if (stack.length > maxDepth) return true;
    } else if ((open.get(name) ?? 0) > 0) {
      // Close down to the nearest open element of this name, as the parser does.
      for (let closed = stack.pop(); closed !== undefined; closed = stack.pop()) {
        open.set(closed, (open.get(closed) ?? 1) - 1);
        if (closed === name) break;
      }
    }
  }
  return false;
}
