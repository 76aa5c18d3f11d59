/**
 * How deep HTML nests elements, measured in one linear pass. Needed before handing a message's
 * HTML to htmlparser2 (sanitize-html, our style extraction) or html-to-text: htmlparser2 keeps
 * its element stack at the front of an array, so parsing is quadratic in the nesting depth
 * (200 000 nested <b> take seconds), and html-to-text's recursive walk overflows the call stack
 * at about 2000 levels. Real mail stays far below: browsers flatten anything nested deeper than
 * 512 levels.
 *
 * The measure is exact, not a guess: htmlparser2's own tokenizer (linear, a state machine) reads
 * the tags, script/style/title/textarea/xmp contents, comments, attributes and quotes exactly as
 * the parser will, and the stack rules below are htmlparser2's Parser rules (which elements a
 * new one closes implicitly, void elements, an end tag closing down to its nearest open element,
 * self-closing tags in SVG/MathML), with a stack that costs O(1) per tag instead of O(depth).
 * An earlier approximation skipped p and li entirely, so `<p><li>` repeated, which htmlparser2
 * nests without end (li only closes an li at the top of the stack), passed as depth 0 and
 * took 10 s for 350 KB.
 */
import { Tokenizer } from "htmlparser2";

/**
 * Browsers flatten deeper nesting (so nothing deeper is ever shown), and htmlparser2's cost per
 * element grows with the depth: at 1000 levels, HTML of short elements parsed at ~2 s per MB.
 */
export const MAX_HTML_NESTING_DEPTH = 512;

// From htmlparser2 10.1 (Parser.js): the elements an opening tag closes while they are on top.
const P = ["p"];
const FORM = ["input", "option", "optgroup", "select", "button", "datalist", "textarea"];
const OPEN_IMPLIES_CLOSE: ReadonlyMap<string, ReadonlySet<string>> = new Map(
  (
    [
      ["tr", ["tr", "th", "td"]],
      ["th", ["th"]],
      ["td", ["thead", "th", "td"]],
      ["body", ["head", "link", "script"]],
      ["li", ["li"]],
      ["option", ["option"]],
      ["optgroup", ["optgroup", "option"]],
      ["dd", ["dd", "dt"]],
      ["dt", ["dd", "dt"]],
      ["rt", ["rt", "rp"]],
      ["rp", ["rt", "rp"]],
      ["tbody", ["thead", "tbody"]],
      ["tfoot", ["thead", "tbody"]],
      ...["select", "input", "output", "button", "datalist", "textarea"].map((name) => [name, FORM] as const),
      ...["p", "h1", "h2", "h3", "h4", "h5", "h6", "address", "article", "aside", "blockquote", "details", "div", "dl", "fieldset"].map(
        (name) => [name, P] as const,
      ),
      ...["figcaption", "figure", "footer", "form", "header", "hr", "main", "nav", "ol", "pre", "section", "table", "ul"].map((name) => [name, P] as const),
    ] as const
  ).map(([name, closes]) => [name, new Set<string>(closes)]),
);
const VOID_ELEMENTS = new Set([
  "area",
  "base",
  "basefont",
  "br",
  "col",
  "command",
  "embed",
  "frame",
  "hr",
  "img",
  "input",
  "isindex",
  "keygen",
  "link",
  "meta",
  "param",
  "source",
  "track",
  "wbr",
]);
const FOREIGN_CONTEXT = new Set(["math", "svg"]);
const HTML_INTEGRATION = new Set(["mi", "mo", "mn", "ms", "mtext", "annotation-xml", "foreignobject", "desc", "title"]);

export interface HtmlNesting {
  /** The deepest the element stack got (up to the point measuring stopped). */
  readonly maxDepth: number;
  /** Tokenizer events plus stack operations: grows linearly with the input (tests assert it). */
  readonly steps: number;
}

/**
 * The nesting of `html` as htmlparser2 builds it; stops early (maxDepth then just above
 * `stopAbove`) once the depth passes `stopAbove`.
 */
export function measureHtmlNesting(html: string, stopAbove: number = Number.POSITIVE_INFINITY): HtmlNesting {
  // The stack top is the array's end; `open` counts each name on the stack, so an end tag
  // knows in O(1) whether it closes anything (htmlparser2 searches the stack for it).
  const stack: string[] = [];
  const open = new Map<string, number>();
  // htmlparser2's foreign context: inside svg/math, "<x/>" closes itself; elsewhere it does not.
  const foreign: boolean[] = [false];
  let maxDepth = 0;
  let steps = 0;
  let tagName = "";
  let stopped = false;

  const push = (name: string): void => {
    stack.push(name);
    open.set(name, (open.get(name) ?? 0) + 1);
    steps++;
    if (stack.length > maxDepth) maxDepth = stack.length;
  };
  const pop = (): string | undefined => {
    const name = stack.pop();
    if (name !== undefined) open.set(name, open.get(name)! - 1);
    steps++;
    return name;
  };
  const openTag = (name: string): void => {
    tagName = name;
    const closes = OPEN_IMPLIES_CLOSE.get(name);
    if (closes !== undefined) while (stack.length > 0 && closes.has(stack[stack.length - 1]!)) pop();
    if (VOID_ELEMENTS.has(name)) return;
    push(name);
    if (FOREIGN_CONTEXT.has(name)) foreign.push(true);
    else if (HTML_INTEGRATION.has(name)) foreign.push(false);
  };

  const nothing = (): void => {
    steps++;
  };
  const tokenizer: Tokenizer = new Tokenizer(
    { xmlMode: false, decodeEntities: true },
    {
      onopentagname(start, end) {
        steps++;
        openTag(html.slice(start, end).toLowerCase());
        if (maxDepth > stopAbove && !stopped) {
          stopped = true;
          tokenizer.pause();
        }
      },
      onclosetag(start, end) {
        steps++;
        const name = html.slice(start, end).toLowerCase();
        if (FOREIGN_CONTEXT.has(name) || HTML_INTEGRATION.has(name)) {
          if (foreign.length > 1) foreign.pop();
        }
        if (VOID_ELEMENTS.has(name)) return;
        if ((open.get(name) ?? 0) > 0) {
          for (let closed = pop(); closed !== undefined && closed !== name; closed = pop());
        } else if (name === "p") {
          // htmlparser2 opens and closes an implied <p>: net, only the p's on top are closed.
          openTag("p");
          if (stack[stack.length - 1] === "p") pop();
        }
      },
      onselfclosingtag() {
        steps++;
        if (foreign[foreign.length - 1] === true && stack[stack.length - 1] === tagName) pop();
        tagName = "";
      },
      onopentagend() {
        steps++;
        tagName = "";
      },
      onattribdata: nothing,
      onattribentity: nothing,
      onattribend: nothing,
      onattribname: nothing,
      oncdata: nothing,
      oncomment: nothing,
      ondeclaration: nothing,
      onend: nothing,
      onprocessinginstruction: nothing,
      ontext: nothing,
      ontextentity: nothing,
    },
  );
  tokenizer.write(html);
  if (!stopped) tokenizer.end();
  return { maxDepth, steps };
}

/** Whether HTML nests elements deeper than `maxDepth` (stops reading as soon as it does). */
export function exceedsHtmlNestingDepth(html: string, maxDepth: number = MAX_HTML_NESTING_DEPTH): boolean {
  return measureHtmlNesting(html, maxDepth).maxDepth > maxDepth;
}
