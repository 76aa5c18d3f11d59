/**
 * File names a sender chose, made safe to create on Linux, Windows and macOS.
 *
 * A sender controls an attachment's name completely (RFC 2231 and RFC 2047 let it carry any
 * byte), and the names end up as files in directories other programs read. Nothing here may
 * let a name leave its directory, hide itself, collide with a device, or show a different
 * extension than the real one (bidi overrides: "\u202Egnp.exe" displays as "exe.png").
 */

/** Longest name written, in UTF-8 bytes. Most file systems allow 255; this leaves room for a dedupe suffix and temp prefixes. */
export const MAX_FILE_NAME_BYTES = 200;

/** An extension longer than this (dot included) is not treated as one when shortening a name. */
const MAX_EXTENSION_BYTES = 32;

// C0 controls (NUL included), DEL, C1 controls; bidi embeddings, overrides and isolates, and the
// marks that reorder text (LRM, RLM, ALM); line and paragraph separators; the BOM / ZWNBSP.
const INVISIBLE_OR_CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;
// A lone surrogate cannot be encoded as UTF-8: Buffer.from would silently turn it into U+FFFD,
// so the name on disk would differ from the name we report.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
// Reserved on Windows (and ":" on macOS HFS); "/" and "\" are gone by the time this runs.
const RESERVED_CHARACTERS = /[<>:"/\\|?*]/g;
// Windows opens a device for these whatever the extension ("CON.txt", "com1.tar.gz"), and
// ignores trailing spaces before the dot ("NUL .txt"). Superscript digits count as digits there.
const WINDOWS_DEVICE = /^(?:CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3])$/i;

const encoder = new TextEncoder();

function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

/**
 * A name that is safe as one path segment on Linux, Windows and macOS, or `fallback` (itself
 * made safe) when nothing of `name` survives. Pure: same input, same output.
 */
export function safeFileName(name: string | undefined, fallback: string): string {
  const fromName = name === undefined ? "" : sanitize(name);
  if (fromName !== "") return fromName;
  const fromFallback = sanitize(fallback);
  return fromFallback !== "" ? fromFallback : "file";
}

function sanitize(input: string): string {
  let name = input.replace(INVISIBLE_OR_CONTROL, "").replace(LONE_SURROGATE, "\ufffd");
  // Keep only the last path component, whichever separator the sender's system used.
  name = name.slice(Math.max(name.lastIndexOf("/"), name.lastIndexOf("\\")) + 1);
  name = name.replace(RESERVED_CHARACTERS, "_");
  // Removing characters can bring a base letter and a combining mark together, so normalise
  // after the removals, and before measuring the length.
  name = name.normalize("NFC");
  name = trimDotsAndSpaces(name);
  if (name === "") return "";
  if (isWindowsDeviceName(name)) name = `_${name}`;
  return trimDotsAndSpaces(truncateKeepingExtension(name, MAX_FILE_NAME_BYTES));
}

/** Leading dots make hidden files (and "." / ".."); trailing dots and spaces are dropped by Windows, so two names would collide. */
function trimDotsAndSpaces(name: string): string {
  return name.replace(/^[\s.]+/u, "").replace(/[\s.]+$/u, "");
}

function isWindowsDeviceName(name: string): boolean {
  const stem = name.split(".")[0] ?? "";
  return WINDOWS_DEVICE.test(stem.trimEnd());
}

/** Splits "report.final.pdf" into ["report.final", ".pdf"]; a name without a usable extension has "" as its extension. */
export function splitExtension(name: string): [stem: string, extension: string] {
  const dot = name.lastIndexOf(".");
  if (dot <= 0 || dot === name.length - 1) return [name, ""];
  const extension = name.slice(dot);
  if (utf8Length(extension) > MAX_EXTENSION_BYTES) return [name, ""];
  return [name.slice(0, dot), extension];
}

/** Cuts `text` to at most `maxBytes` of UTF-8, never inside a grapheme (no half emoji, no stray combining mark). */
function truncateToBytes(text: string, maxBytes: number): string {
  if (utf8Length(text) <= maxBytes) return text;
  let result = "";
  let used = 0;
  for (const { segment } of new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text)) {
    const size = utf8Length(segment);
    if (used + size > maxBytes) break;
    result += segment;
    used += size;
  }
  return result;
}

function truncateKeepingExtension(name: string, maxBytes: number): string {
  if (utf8Length(name) <= maxBytes) return name;
  const [stem, extension] = splitExtension(name);
  return truncateToBytes(stem, maxBytes - utf8Length(extension)) + extension;
}

/**
 * `name`, or `name` with " (2)", " (3)", ... before its extension, whichever is not yet in
 * `taken`; the result is added to `taken`. Comparison ignores case and Unicode normalisation,
 * because macOS and Windows file systems do: "A.txt" and "a.txt" are the same file there.
 * `name` must already be safe (see safeFileName); the result stays within the length limit.
 */
export function uniqueFileName(name: string, taken: Set<string>): string {
  const key = (candidate: string): string => candidate.normalize("NFC").toLowerCase();
  let candidate = name;
  const [stem, extension] = splitExtension(name);
  for (let n = 2; taken.has(key(candidate)); n++) {
    const suffix = ` (${n})`;
    candidate = truncateToBytes(stem, MAX_FILE_NAME_BYTES - utf8Length(suffix) - utf8Length(extension)) + suffix + extension;
  }
  taken.add(key(candidate));
  return candidate;
}
