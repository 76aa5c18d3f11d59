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

// Characters that show nothing, or reorder or hide what follows, so a name can look like another:
// controls (Cc: C0, DEL, C1); format characters (Cf: bidi embeddings, overrides, isolates and
// marks, zero-width space/joiners, word joiner, invisible operators, soft hyphen, BOM, tag
// characters); line and paragraph separators; variation selectors; the combining grapheme
// joiner; Hangul fillers and the Braille blank, which render as nothing.
const INVISIBLE_OR_CONTROL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f\uffa0\u{e0100}-\u{e01ef}]/gu;
// Any run of white space (no-break, ideographic, en/em spaces...) becomes one plain space: a
// run of spaces pushes the real extension out of sight ("invoice.pdf<50 spaces>.exe").
const WHITE_SPACE_RUN = /\s+/gu;
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
  // Tabs and line breaks are controls, but they separated words: a space, not nothing.
  let name = input
    .replace(/[\t\r\n]+/g, " ")
    .replace(INVISIBLE_OR_CONTROL, "")
    .replace(LONE_SURROGATE, "\ufffd");
  name = name.replace(WHITE_SPACE_RUN, " ");
  // Keep only the last path component, whichever separator the sender's system used.
  name = name.slice(Math.max(name.lastIndexOf("/"), name.lastIndexOf("\\")) + 1);
  name = name.replace(RESERVED_CHARACTERS, "_");
  // Removing characters can bring a base letter and a combining mark together, so normalise
  // after the removals, and before measuring the length.
  name = name.normalize("NFC");
  name = trimBeforeExtension(trimDotsAndSpaces(name));
  if (name === "") return "";
  if (isWindowsDeviceName(name)) name = `_${name}`;
  return trimDotsAndSpaces(trimBeforeExtension(truncateKeepingExtension(name, MAX_FILE_NAME_BYTES)));
}

/** Leading dots make hidden files (and "." / ".."); trailing dots and spaces are dropped by Windows, so two names would collide. */
function trimDotsAndSpaces(name: string): string {
  return name.replace(/^[\s.]+/u, "").replace(/[\s.]+$/u, "");
}

/**
 * "invoice.pdf .exe" -> "invoice.pdf.exe", "report . pdf" -> "report.pdf": spaces and dots
 * next to the last dot make the extension look like something else, or push it out of view.
 */
function trimBeforeExtension(name: string): string {
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return name;
  const stem = name.slice(0, dot).replace(/[ .]+$/, "");
  const extension = name.slice(dot + 1).replace(/^ +/, "");
  return stem === "" || extension === "" ? name : `${stem}.${extension}`;
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
 * How names are compared for uniqueness: as Windows (NTFS upper-cases) and macOS (APFS and HFS+
 * fold case, canonical-equivalent spellings are one name) compare them. Upper- then lower-casing
 * folds more than either (ß and SS, final and medial sigma): a false "same" costs a " (2)",
 * a false "different" costs a file.
 */
export function fileNameKey(name: string): string {
  return name.normalize("NFC").toUpperCase().toLowerCase().normalize("NFC");
}

/** Room for " (n)" whatever n: a long name is cut once, to the same stem for every n. */
const SUFFIX_BYTES = " (999999999)".length;

interface Numbering {
  /** Per folded stem and extension: the next number to try, so repeats never start again at 2. */
  readonly next: Map<string, number>;
  /** Names tried, for tests: at most one per call plus one per name someone else already took. */
  probes: number;
}
const numberings = new WeakMap<Set<string>, Numbering>();

/**
 * `name`, or `name` with " (2)", " (3)", ... before its extension, whichever is not yet in
 * `taken`; the result is added to `taken`. Comparison folds case and Unicode normalisation
 * (fileNameKey), because macOS and Windows file systems do: "A.txt" and "a.txt" are the same
 * file there. `name` must already be safe (see safeFileName); the result stays within the length
 * limit. Linear over many calls: the next number for a name is remembered beside `taken`, so
 * 4,000 attachments called "image.png" cost 4,000 look-ups, not 8 million.
 */
export function uniqueFileName(name: string, taken: Set<string>): string {
  let numbering = numberings.get(taken);
  if (numbering === undefined) numberings.set(taken, (numbering = { next: new Map(), probes: 0 }));
  numbering.probes++;
  if (!taken.has(fileNameKey(name))) {
    taken.add(fileNameKey(name));
    return name;
  }
  const [fullStem, extension] = splitExtension(name);
  const stem = truncateToBytes(fullStem, MAX_FILE_NAME_BYTES - SUFFIX_BYTES - utf8Length(extension));
  const counterKey = fileNameKey(stem + extension);
  let n = numbering.next.get(counterKey) ?? 2;
  let candidate = `${stem} (${n})${extension}`;
  while (taken.has(fileNameKey(candidate))) {
    numbering.probes++;
    candidate = `${stem} (${++n})${extension}`;
  }
  numbering.next.set(counterKey, n + 1);
  taken.add(fileNameKey(candidate));
  return candidate;
}

/** How many names uniqueFileName tried for `taken` (tests prove it linear). */
export function uniqueFileNameProbes(taken: Set<string>): number {
  return numberings.get(taken)?.probes ?? 0;
}
