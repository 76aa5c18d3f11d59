/**
 * A message's HTML made safe to show an agent: sanitize-html with an allow-list for email
 * (README "Safe HTML" says why this library and version).
 *
 * - Only formatting elements survive: no script, style-sheet links, forms, frames, objects,
 *   SVG/MathML, meta or base. Text inside removed containers (a form's labels) is kept;
 *   the content of script, template, SVG and the like is not.
 * - No event handlers or ids/names (they can clobber the hosting page's DOM); class and
 *   style stay for layout, with the CSS cleaned (safe-css.ts).
 * - Links: only http(s), mailto and tel; each opens in a new tab without an opener or referrer.
 * - Images: cid: references become "attachments/<filename>" (URL-encoded) when the message has
 *   that inline part; data: images stay when they are raster images; every other source is
 *   removed: a remote image tells the sender when and where the agent read the mail.
 * - <style> elements are collected, cleaned and put first as one <style> element.
 */
import { Parser } from "htmlparser2";
import sanitizeHtml from "sanitize-html";

import type { ParsedAttachment } from "../interfaces.js";
import { cleanInlineStyle, cleanStyleSheet } from "./safe-css.js";

export interface SafeHtml {
  readonly html: string;
  readonly remoteContentBlocked: boolean;
}

const ALLOWED_TAGS = [
  "a",
  "abbr",
  "address",
  "article",
  "aside",
  "b",
  "bdi",
  "bdo",
  "big",
  "blockquote",
  "br",
  "caption",
  "center",
  "cite",
  "code",
  "col",
  "colgroup",
  "dd",
  "del",
  "details",
  "dfn",
  "div",
  "dl",
  "dt",
  "em",
  "figcaption",
  "figure",
  "font",
  "footer",
  "h1",
  "h2",
  "h3",
  "h4",
  "h5",
  "h6",
  "header",
  "hr",
  "i",
  "img",
  "ins",
  "kbd",
  "li",
  "main",
  "mark",
  "nav",
  "ol",
  "p",
  "pre",
  "q",
  "s",
  "samp",
  "section",
  "small",
  "span",
  "strike",
  "strong",
  "sub",
  "summary",
  "sup",
  "table",
  "tbody",
  "td",
  "tfoot",
  "th",
  "thead",
  "time",
  "tr",
  "tt",
  "u",
  "ul",
  "var",
  "wbr",
];
// Everything inside these goes, text included (sanitize-html keeps the text of other removed elements).
const DROP_WITH_CONTENT = [
  "script",
  "style",
  "title",
  "textarea",
  "option",
  "select",
  "noscript",
  "template",
  "svg",
  "math",
  "iframe",
  "frame",
  "frameset",
  "noframes",
  "object",
  "embed",
  "applet",
  "audio",
  "video",
  "canvas",
  "xml",
];
const LAYOUT_ATTRIBUTES = [
  "align",
  "valign",
  "width",
  "height",
  "bgcolor",
  "color",
  "border",
  "cellpadding",
  "cellspacing",
  "colspan",
  "rowspan",
  "face",
  "size",
  "dir",
  "lang",
  "title",
  "class",
  "style",
  "span",
  "start",
  "type",
  "nowrap",
  "scope",
  "headers",
  "abbr",
];
const SAFE_LINK = /^(?:https?:|mailto:|tel:)/i;
const RASTER_DATA_IMAGE = /^data:image\/(?:png|gif|jpe?g|webp|bmp);base64,[a-z0-9+/=\s]*$/i;
// Browsers ignore these inside a URL scheme ("java\tscript:"), so checks must too.
const IGNORED_IN_URLS = /[\u0000-\u0020\u007f-\u009f]/g;
// Both run over the sender's whole HTML, so neither may backtrack more than linearly: no two
// adjacent quantifiers that can match the same characters (spaces, an optional quote, spaces
// took O(n^2) on a run of spaces), and no `[^>]*` that can run over the next "<link" (O(n^2) on "<link" repeated).
const REMOTE_IN_DROPPED_ATTRIBUTE = /\b(?:background|srcset|poster)\s*=\s*(?:["']\s*)?(?:https?:)?\/\//i;
const LINK_WITH_HREF = /<link\b[^<>]*\bhref\s*=/i;

export function sanitizeMessageHtml(html: string, attachments: readonly ParsedAttachment[]): SafeHtml {
  let remoteContentBlocked = false;
  const inlineImages = inlineImagePaths(attachments);

  const styleSheets: string[] = [];
  for (const css of /<style/i.test(html) ? styleElementContents(html) : []) {
    const cleaned = cleanStyleSheet(css);
    remoteContentBlocked ||= cleaned.blockedRemote;
    if (cleaned.css !== "") styleSheets.push(cleaned.css);
  }

  const body = sanitizeHtml(html, {
    allowedTags: ALLOWED_TAGS,
    nonTextTags: DROP_WITH_CONTENT,
    disallowedTagsMode: "discard",
    allowedAttributes: {
      "*": LAYOUT_ATTRIBUTES,
      a: ["href", "target", "rel"],
      img: ["src", "alt"],
    },
    allowedSchemes: ["http", "https", "mailto", "tel"],
    allowedSchemesByTag: { img: ["data"] },
    allowedSchemesAppliedToAttributes: ["href", "src", "cite"],
    allowProtocolRelative: false,
    // style attributes are cleaned in the "*" transform below (stricter than sanitize-html's own check).
    parseStyleAttributes: false,
    transformTags: {
      a: (tagName, attribs) => {
        const { href, target: _target, rel: _rel, ...rest } = attribs;
        const url = href === undefined ? undefined : href.replace(IGNORED_IN_URLS, "");
        if (url !== undefined && SAFE_LINK.test(url)) {
          return { tagName, attribs: { href: url, ...rest, target: "_blank", rel: "noopener noreferrer" } };
        }
        return { tagName, attribs: rest };
      },
      img: (tagName, attribs) => {
        const { src, srcset: _srcset, ...rest } = attribs;
        const source = src === undefined ? "" : src.replace(IGNORED_IN_URLS, "");
        const local = /^cid:/i.test(source) ? inlineImages(cidOf(source)) : undefined;
        if (local !== undefined) return { tagName, attribs: { src: local, ...rest } };
        if (RASTER_DATA_IMAGE.test(source)) return { tagName, attribs: { src: source.replace(/\s+/g, ""), ...rest } };
        if (source !== "" && !/^cid:/i.test(source)) remoteContentBlocked = true;
        return { tagName, attribs: rest };
      },
      "*": (tagName, attribs) => {
        if (attribs.style === undefined) return { tagName, attribs };
        const { style, ...rest } = attribs;
        const cleaned = cleanInlineStyle(style);
        remoteContentBlocked ||= cleaned.blockedRemote;
        return { tagName, attribs: cleaned.css === "" ? rest : { ...rest, style: cleaned.css } };
      },
    },
  });

  // Remote content can also hide in attributes the allow-list drops (background=, srcset=, <link>):
  // count it, so the agent is told that something was not loaded.
  remoteContentBlocked ||= REMOTE_IN_DROPPED_ATTRIBUTE.test(html) || LINK_WITH_HREF.test(html);

  const style = styleSheets.length > 0 ? `<style>${styleSheets.join("\n")}</style>\n` : "";
  return { html: style + body, remoteContentBlocked };
}

/** The text of every <style> element, as the HTML parser sees it (so exactly what a browser would apply). */
function styleElementContents(html: string): string[] {
  const sheets: string[] = [];
  let inside = 0;
  let current = "";
  const parser = new Parser(
    {
      onopentag(name) {
        if (name === "style") inside++;
      },
      ontext(text) {
        if (inside > 0) current += text;
      },
      onclosetag(name) {
        if (name !== "style" || inside === 0) return;
        inside--;
        if (inside === 0) {
          sheets.push(current);
          current = "";
        }
      },
    },
    { decodeEntities: true },
  );
  parser.write(html);
  parser.end();
  return sheets;
}

/** Content-ID -> "attachments/<filename>", for the inline parts the message has; exact match first, then ignoring case. */
function inlineImagePaths(attachments: readonly ParsedAttachment[]): (cid: string) => string | undefined {
  const exact = new Map<string, string>();
  const folded = new Map<string, string>();
  for (const attachment of attachments) {
    if (attachment.contentId === undefined) continue;
    const path = `attachments/${encodeURIComponent(attachment.filename)}`;
    const id = attachment.contentId.trim().replace(/^<|>$/g, "");
    if (!exact.has(id)) exact.set(id, path);
    if (!folded.has(id.toLowerCase())) folded.set(id.toLowerCase(), path);
  }
  return (cid) => exact.get(cid) ?? folded.get(cid.toLowerCase());
}

/** "cid:part1.abc%40example" -> "part1.abc@example" (RFC 2392: a cid URL is URL-encoded). */
function cidOf(source: string): string {
  const encoded = source.slice(4).trim().replace(/^<|>$/g, "");
  try {
    return decodeURIComponent(encoded);
  } catch {
    return encoded;
  }
}
