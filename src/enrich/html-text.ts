/**
 * A message's HTML as plain text: html-to-text with its defaults (what mailparser used), except
 * that quote marks and list indentation stop growing after a few levels.
 *
 * Why: html-to-text puts "> " before every line for each enclosing <blockquote>, and indents
 * nested lists by their prefixes, while still wrapping at 80 columns. Once the marks are wider
 * than a line, every word gets a line of its own, led by all the marks: 40 KB of words inside
 * 400 nested blockquotes became 1.6 MB of text and took 1.3 s (cost and output grow with
 * words x depth). Beyond MAX_MARKED_LEVELS the text is laid out as plain blocks, so the output
 * stays within a small multiple of the input. Real quoted replies rarely nest more than a few
 * levels; the text is all still there, only the marks stop.
 *
 * formatList and the ordered-list numbering are adapted from html-to-text 9/10 (MIT, Kiril
 * Krasnov): the package does not export its formatters, so they cannot be wrapped.
 */
import { compile, type FormatCallback } from "html-to-text";

import { MAX_HTML_NESTING_DEPTH } from "./html-nesting.js";

/** Nested blockquotes and lists beyond this many are laid out without further marks or indentation. */
export const MAX_MARKED_LEVELS = 8;

let markedLevels = 0;

/** Runs `format` one level deeper; beyond the limit, `plain` instead. html-to-text walks synchronously, so a counter is exact. */
function bounded(format: FormatCallback, plain: FormatCallback): FormatCallback {
  return (elem, walk, builder, options) => {
    if (markedLevels >= MAX_MARKED_LEVELS) return plain(elem, walk, builder, options);
    markedLevels++;
    try {
      format(elem, walk, builder, options);
    } finally {
      markedLevels--;
    }
  };
}

const plainBlock: FormatCallback = (elem, walk, builder, options) => {
  builder.openBlock({ leadingLineBreaks: options.leadingLineBreaks || 2 });
  walk(elem.children, builder);
  builder.closeBlock({ trailingLineBreaks: options.trailingLineBreaks || 2 });
};

/**
 * A list past the limit: its items still on lines of their own, as plain blocks. Not an
 * html-to-text list without prefixes: each open list costs html-to-text work on every word
 * inside it (8 s for 1 MB of words in 490 nested lists).
 */
const plainList: FormatCallback = (elem, walk, builder, options) => {
  builder.openBlock({ leadingLineBreaks: options.leadingLineBreaks || 2 });
  for (const child of (elem.children ?? []) as Elem[]) {
    if (child.name !== "li") {
      walk([child], builder);
      continue;
    }
    builder.openBlock({ leadingLineBreaks: 1 });
    walk(child.children, builder);
    builder.closeBlock({ trailingLineBreaks: 1 });
  }
  builder.closeBlock({ trailingLineBreaks: options.trailingLineBreaks || 2 });
};

const blockquote: FormatCallback = (elem, walk, builder, options) => {
  builder.openBlock({ leadingLineBreaks: options.leadingLineBreaks || 2, reservedLineLength: 2 });
  walk(elem.children, builder);
  builder.closeBlock({
    trailingLineBreaks: options.trailingLineBreaks || 2,
    blockTransform: (text: string) =>
      (options.trimEmptyLines !== false ? text.replace(/^\n+|\n+$/g, "") : text)
        .split("\n")
        .map((line) => `> ${line}`)
        .join("\n"),
  });
};

type Elem = Parameters<FormatCallback>[0];

function formatList(
  elem: Elem,
  walk: Parameters<FormatCallback>[1],
  builder: Parameters<FormatCallback>[2],
  options: Parameters<FormatCallback>[3],
  nextPrefix: () => string,
): void {
  const nested = (elem as { parent?: { name?: string } }).parent?.name === "li";
  let maxPrefixLength = 0;
  const items = ((elem.children ?? []) as Elem[])
    .filter((child) => child.type !== "text" || !/^\s*$/.test((child as { data?: string }).data ?? ""))
    .map((child) => {
      if (child.name !== "li") return { node: child, prefix: "" };
      const prefix = nested ? nextPrefix().trimStart() : nextPrefix();
      maxPrefixLength = Math.max(maxPrefixLength, prefix.length);
      return { node: child, prefix };
    });
  if (items.length === 0) return;
  builder.openList({ interRowLineBreaks: 1, leadingLineBreaks: nested ? 1 : options.leadingLineBreaks || 2, maxPrefixLength, prefixAlign: "left" });
  for (const { node, prefix } of items) {
    builder.openListItem({ prefix });
    walk([node], builder);
    builder.closeListItem();
  }
  builder.closeList({ trailingLineBreaks: nested ? 1 : options.trailingLineBreaks || 2 });
}

const unorderedList: FormatCallback = (elem, walk, builder, options) => {
  const prefix = (options as { itemPrefix?: string }).itemPrefix ?? " * ";
  formatList(elem, walk, builder, options, () => prefix);
};

const orderedList: FormatCallback = (elem, walk, builder, options) => {
  let next = Number((elem as { attribs?: Record<string, string> }).attribs?.start ?? "1");
  const index = orderedIndex((elem as { attribs?: Record<string, string> }).attribs?.type);
  formatList(elem, walk, builder, options, () => ` ${index(next++)}. `);
};

function orderedIndex(type = "1"): (n: number) => string {
  switch (type) {
    case "a":
      return (n) => letters(n, "a");
    case "A":
      return (n) => letters(n, "A");
    case "i":
      return (n) => roman(n).toLowerCase();
    case "I":
      return (n) => roman(n);
    default:
      return (n) => n.toString();
  }
}

function letters(n: number, base: string): string {
  const digits: number[] = [];
  do {
    n -= 1;
    digits.push(n % 26);
    n = Math.floor(n / 26);
  } while (n > 0);
  return digits
    .reverse()
    .map((digit) => String.fromCharCode(base.charCodeAt(0) + digit))
    .join("");
}

const ONES = ["I", "X", "C", "M"];
const FIVES = ["V", "L", "D"];
function roman(n: number): string {
  return [...String(n)]
    .map(Number)
    .reverse()
    .map((v, i) => (v % 5 < 4 ? (v < 5 ? "" : FIVES[i]!) + ONES[i]!.repeat(v % 5) : ONES[i]! + (v < 5 ? FIVES[i]! : ONES[i + 1]!)))
    .reverse()
    .join("");
}

const convert = compile({
  limits: { maxDepth: MAX_HTML_NESTING_DEPTH },
  formatters: {
    boundedBlockquote: bounded(blockquote, plainBlock),
    boundedUnorderedList: bounded(unorderedList, plainList),
    boundedOrderedList: bounded(orderedList, plainList),
  },
  selectors: [
    { selector: "blockquote", format: "boundedBlockquote", options: { leadingLineBreaks: 2, trailingLineBreaks: 2, trimEmptyLines: true } },
    { selector: "ul", format: "boundedUnorderedList", options: { itemPrefix: " * ", leadingLineBreaks: 2, trailingLineBreaks: 2 } },
    { selector: "ol", format: "boundedOrderedList", options: { leadingLineBreaks: 2, trailingLineBreaks: 2 } },
  ],
});

/** `html` as text; call only with HTML that passed the nesting check (enrich.ts). */
export function htmlToPlainText(html: string): string {
  markedLevels = 0;
  return convert(html);
}
