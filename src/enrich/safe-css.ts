/**
 * CSS from a message, made unable to fetch anything or run anything.
 *
 * Removed: every declaration whose value could load a resource or run code (url(),
 * image-set(), image(), element(), cross-fade(), paint(), expression(), javascript:,
 * behavior, -moz-binding), every declaration containing a CSS escape or a comment (both can
 * hide the former from a naive check: "\75 rl(" is "url("), and every at-rule but @media,
 * @supports, @keyframes and @page (@import and @font-face load resources; @namespace and the
 * rest have no use in a message). A style sheet postcss cannot parse is dropped whole, and so
 * is any result containing "<", so it can never end its <style> element early.
 *
 * What stays can still restyle whatever page it is put into: display safeHtml in a sandboxed
 * iframe (README "Safe HTML").
 */
import { parse, type Declaration, type Root } from "postcss";

export interface CleanCss {
  /** The cleaned CSS; "" when nothing survived. */
  readonly css: string;
  /** Whether something that would have loaded a resource was removed. */
  readonly blockedRemote: boolean;
}

const KEPT_AT_RULES = new Set(["media", "supports", "keyframes", "-webkit-keyframes", "page"]);
const RESOURCE_AT_RULES = new Set(["import", "font-face"]);
const FORBIDDEN_PROPERTIES = new Set(["behavior", "-ms-behavior", "-moz-binding", "binding"]);
const LOADS_RESOURCE = /(?:url|image-set|-webkit-image-set|image|element|-moz-element|cross-fade|-webkit-cross-fade|paint|src)\s*\(/i;
const RUNS_CODE = /expression\s*\(|javascript:|vbscript:|-moz-binding|behavior/i;
/** A style sheet larger than this is not a message's: dropped rather than parsed. */
const MAX_CSS_LENGTH = 512 * 1024;

/** A <style> element's content. */
export function cleanStyleSheet(css: string): CleanCss {
  if (css.length > MAX_CSS_LENGTH) return { css: "", blockedRemote: false };
  let root: Root;
  try {
    // "<!--" and "-->" around a style sheet (Outlook writes them) are ignored by CSS; drop them so the "<" check below does not.
    root = parse(css.replaceAll("<!--", " ").replaceAll("-->", " "));
  } catch {
    return { css: "", blockedRemote: false };
  }
  let blockedRemote = false;
  root.walkComments((comment) => {
    comment.remove();
  });
  root.walkAtRules((rule) => {
    const name = rule.name.toLowerCase();
    if (KEPT_AT_RULES.has(name) && !rule.params.includes("\\")) return;
    if (RESOURCE_AT_RULES.has(name)) blockedRemote = true;
    rule.remove();
  });
  root.walkDecls((declaration) => {
    const verdict = judge(declaration);
    if (verdict === "keep") return;
    if (verdict === "remote") blockedRemote = true;
    declaration.remove();
  });
  // Rules and at-rules left empty are noise; inner ones first, so their parents empty out too.
  root.walk((node) => {
    if ((node.type === "rule" || node.type === "atrule") && node.nodes !== undefined && node.nodes.length === 0) node.remove();
  });
  root.walkAtRules((rule) => {
    if (rule.nodes !== undefined && rule.nodes.length === 0) rule.remove();
  });
  const result = root.toString().trim();
  return { css: result.includes("<") ? "" : result, blockedRemote };
}

/**
 * Declarations with nothing but names, words, numbers, colours and units: nothing in them can
 * load or run anything, so they skip the parser (most of a message's style attributes).
 */
const PLAIN_DECLARATIONS = /^[\w\s\-:;.,#%!'"]*$/;
const PLAIN_BUT_FORBIDDEN = /behavior|binding|expression|javascript|vbscript/i;

/** A style="" attribute's value: declarations only, rebuilt from what survived. */
export function cleanInlineStyle(style: string): CleanCss {
  if (style.length > MAX_CSS_LENGTH) return { css: "", blockedRemote: false };
  if (PLAIN_DECLARATIONS.test(style) && !PLAIN_BUT_FORBIDDEN.test(style)) return { css: style.trim(), blockedRemote: false };
  let root: Root;
  try {
    root = parse(`x{${style}}`);
  } catch {
    return { css: "", blockedRemote: false };
  }
  // A "}" in the attribute would close the rule and start others: then it is not one rule.
  const rule = root.nodes[0];
  if (root.nodes.length !== 1 || rule === undefined || rule.type !== "rule") return { css: "", blockedRemote: false };
  let blockedRemote = false;
  const kept: string[] = [];
  for (const node of rule.nodes) {
    if (node.type !== "decl") continue;
    const verdict = judge(node);
    if (verdict === "remote") blockedRemote = true;
    if (verdict === "keep") kept.push(`${node.prop}: ${node.value}${node.important ? " !important" : ""}`);
  }
  return { css: kept.join("; "), blockedRemote };
}

function judge(declaration: Declaration): "keep" | "remote" | "unsafe" {
  const property = declaration.prop.toLowerCase();
  const value = declaration.value;
  if (property.includes("\\") || FORBIDDEN_PROPERTIES.has(property)) return "unsafe";
  // raws.value exists when postcss cleaned comments out of the value: what the browser sees differs.
  if (value.includes("\\") || value.includes("/*") || declaration.raws.value !== undefined) return "unsafe";
  if (LOADS_RESOURCE.test(value)) return "remote";
  if (RUNS_CODE.test(value) || value.includes("<")) return "unsafe";
  return "keep";
}
