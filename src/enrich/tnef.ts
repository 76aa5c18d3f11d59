/**
 * A small, bounded reader of TNEF (winmail.dat, application/ms-tnef): the attachments Outlook
 * packed into it ([MS-OXTNEF]). No npm TNEF library fits: node-tnef (the only one used much)
 * pulls in a logger with a native build and a CLI parser, and has not been released in years.
 *
 * A TNEF stream is a signature, a key, then attributes: level (1 message, 2 attachment),
 * id, length, data, checksum. Each attachment starts with attAttachRendData; its name is in
 * attAttachTitle (often 8.3) and, better, in the MAPI property PR_ATTACH_LONG_FILENAME of
 * attAttachment; its bytes are attAttachData, or PR_ATTACH_DATA_OBJ for embedded OLE
 * documents and messages. An embedded message is itself TNEF: its attachments are unpacked
 * too (to a bounded depth). The message body (compressed RTF) is not converted: the MIME
 * message carries the text and HTML already.
 *
 * Every length is checked against the bytes left; counts and depth are capped; reading
 * stops at the first attribute that does not fit and keeps what came before. The files are
 * views of the input (no copies, no decompression), so output never exceeds input.
 */
import { PT_LONG, PT_OBJECT, PT_STRING8, PT_UNICODE, readMapiProperties, type MapiProperty } from "./mapi-properties.js";

export interface TnefFile {
  /** The best name the stream has: long file name, title, short file name or display name. */
  readonly name?: string;
  readonly mimeType?: string;
  readonly contentId?: string;
  readonly data: Buffer;
}

export interface TnefContents {
  readonly files: TnefFile[];
  /** What was skipped or cut short, for enrichmentErrors; the files are still good. */
  readonly warnings: string[];
}

const TNEF_SIGNATURE = 0x223e9f78;
const LEVEL_MESSAGE = 1;
const LEVEL_ATTACHMENT = 2;
const ATT_OEM_CODEPAGE = 0x00069007;
const ATT_ATTACH_REND_DATA = 0x00069002;
const ATT_ATTACH_TITLE = 0x00018010;
const ATT_ATTACH_DATA = 0x0006800f;
const ATT_ATTACHMENT = 0x00069005;

const PR_DISPLAY_NAME = 0x3001;
const PR_ATTACH_DATA = 0x3701;
const PR_ATTACH_FILENAME = 0x3704;
const PR_ATTACH_METHOD = 0x3705;
const PR_ATTACH_LONG_FILENAME = 0x3707;
const PR_ATTACH_MIME_TAG = 0x370e;
const PR_ATTACH_CONTENT_ID = 0x3712;
const ATTACH_EMBEDDED_MSG = 5;
/** PT_OBJECT values start with the interface id of the object. */
const IID_BYTES = 16;

/**
 * Per message, across all its winmail.dat parts and the messages embedded in them: counted per
 * stream, eight 107 KB containers gave 4,000 files (and 28 s of naming them).
 */
const MAX_ATTRIBUTES = 100_000;
const MAX_FILES = 500;

/** What is left to read of a message's TNEF: one budget for all its containers. */
export interface TnefBudget {
  attributes: number;
  files: number;
}

export function tnefBudget(): TnefBudget {
  return { attributes: MAX_ATTRIBUTES, files: MAX_FILES };
}
/** An embedded message in an embedded message in a message is as deep as real mail goes. */
const MAX_DEPTH = 3;

interface Draft {
  title?: string;
  longName?: string;
  shortName?: string;
  displayName?: string;
  mimeType?: string;
  contentId?: string;
  method?: number;
  data?: Buffer;
  objectData?: Buffer;
}

export function isTnef(data: Buffer): boolean {
  return data.length >= 6 && data.readUInt32LE(0) === TNEF_SIGNATURE;
}

export function readTnef(data: Buffer, depth = 0, budget: TnefBudget = tnefBudget()): TnefContents {
  const files: TnefFile[] = [];
  const warnings: string[] = [];
  if (!isTnef(data)) return { files, warnings: ["not a TNEF stream (no signature)"] };

  let codepage = 1252;
  const drafts: Draft[] = [];
  let current: Draft | undefined;
  let offset = 6; // signature (4) + legacy key (2)
  while (offset < data.length) {
    if (budget.attributes <= 0) {
      warnings.push(`more than ${MAX_ATTRIBUTES} TNEF attributes in the message; the rest was not read`);
      break;
    }
    budget.attributes--;
    if (offset + 9 > data.length) {
      warnings.push(`${data.length - offset} bytes after the last TNEF attribute were ignored`);
      break;
    }
    const level = data[offset]!;
    const id = data.readUInt32LE(offset + 1);
    const length = data.readUInt32LE(offset + 5);
    const start = offset + 9;
    if (level !== LEVEL_MESSAGE && level !== LEVEL_ATTACHMENT) {
      warnings.push(`unexpected data at byte ${offset} of the TNEF stream; the rest was ignored`);
      break;
    }
    if (length > data.length - start) {
      warnings.push(`TNEF attribute 0x${id.toString(16)} at byte ${offset} is truncated; the rest was ignored`);
      break;
    }
    const value = data.subarray(start, start + length);
    offset = start + length + 2; // the checksum is not verified: a wrong one does not make the bytes less useful

    if (level === LEVEL_MESSAGE) {
      if (id === ATT_OEM_CODEPAGE && value.length >= 4) codepage = value.readUInt32LE(0);
      continue;
    }
    if (id === ATT_ATTACH_REND_DATA || current === undefined) {
      current = {};
      drafts.push(current);
    }
    if (id === ATT_ATTACH_TITLE) current.title = decode8bit(value, codepage);
    else if (id === ATT_ATTACH_DATA) current.data = value;
    else if (id === ATT_ATTACHMENT) applyProperties(current, value, codepage, warnings);
  }

  for (const draft of drafts) {
    if (budget.files <= 0) {
      if (depth === 0) warnings.push(`more than ${MAX_FILES} files in the message's TNEF; the rest was not unpacked`);
      break;
    }
    const name = draft.longName ?? draft.title ?? draft.shortName ?? draft.displayName;
    // An embedded message's attAttachData is only a placeholder text for old clients; the message is the object.
    if (draft.objectData !== undefined && draft.method === ATTACH_EMBEDDED_MSG) {
      const embedded = draft.objectData;
      if (isTnef(embedded) && depth + 1 < MAX_DEPTH) {
        const inner = readTnef(embedded, depth + 1, budget);
        files.push(...inner.files);
        warnings.push(...inner.warnings);
        warnings.push(`embedded message ${JSON.stringify(name ?? "(unnamed)")}: only its attachments were unpacked`);
      } else {
        warnings.push(`embedded message ${JSON.stringify(name ?? "(unnamed)")} was not unpacked`);
      }
      continue;
    }
    const bytes = draft.data ?? draft.objectData;
    if (bytes === undefined) continue; // a rendering-only entry (an OLE icon) or a missing attachment
    budget.files--;
    files.push({
      ...(name === undefined ? {} : { name }),
      ...(draft.mimeType === undefined ? {} : { mimeType: draft.mimeType }),
      ...(draft.contentId === undefined ? {} : { contentId: draft.contentId }),
      data: bytes,
    });
  }
  return { files, warnings };
}

function applyProperties(draft: Draft, value: Buffer, codepage: number, warnings: string[]): void {
  const list = readMapiProperties(value);
  if (list.error !== undefined) warnings.push(`attachment properties: ${list.error}`);
  for (const property of list.properties) {
    switch (property.id) {
      case PR_ATTACH_LONG_FILENAME:
        draft.longName = stringValue(property, codepage) ?? draft.longName;
        break;
      case PR_ATTACH_FILENAME:
        draft.shortName = stringValue(property, codepage) ?? draft.shortName;
        break;
      case PR_DISPLAY_NAME:
        draft.displayName = stringValue(property, codepage) ?? draft.displayName;
        break;
      case PR_ATTACH_MIME_TAG:
        draft.mimeType = stringValue(property, codepage) ?? draft.mimeType;
        break;
      case PR_ATTACH_CONTENT_ID:
        draft.contentId = stringValue(property, codepage) ?? draft.contentId;
        break;
      case PR_ATTACH_METHOD:
        if (property.type === PT_LONG && property.values[0] !== undefined) draft.method = property.values[0].readUInt32LE(0);
        break;
      case PR_ATTACH_DATA: {
        const bytes = property.values[0];
        if (bytes === undefined) break;
        draft.objectData = property.type === PT_OBJECT ? bytes.subarray(Math.min(IID_BYTES, bytes.length)) : bytes;
        break;
      }
    }
  }
}

function stringValue(property: MapiProperty, codepage: number): string | undefined {
  const bytes = property.values[0];
  if (bytes === undefined) return undefined;
  let text: string;
  if (property.type === PT_UNICODE) text = bytes.toString("utf16le");
  else if (property.type === PT_STRING8) text = decode8bit(bytes, codepage);
  else return undefined;
  const value = text.split("\0", 1)[0]!.trim();
  return value === "" ? undefined : value;
}

/** An 8-bit string in the stream's code page, up to its NUL. Unknown code pages read as Latin-1. */
function decode8bit(bytes: Buffer, codepage: number): string {
  const end = bytes.indexOf(0);
  const text = end === -1 ? bytes : bytes.subarray(0, end);
  const label = codepageLabel(codepage);
  if (label !== undefined) {
    try {
      return new TextDecoder(label).decode(text).trim();
    } catch {
      // a code page this Node's ICU does not know: fall through
    }
  }
  return text.toString("latin1").trim();
}

function codepageLabel(codepage: number): string | undefined {
  if (codepage === 65001) return "utf-8";
  if (codepage >= 1250 && codepage <= 1258) return `windows-${codepage}`;
  if (codepage >= 28591 && codepage <= 28606) return `iso-8859-${codepage - 28590}`;
  const named: Readonly<Record<number, string>> = {
    874: "windows-874",
    932: "shift_jis",
    936: "gbk",
    949: "euc-kr",
    950: "big5",
    20866: "koi8-r",
    21866: "koi8-u",
    50220: "iso-2022-jp",
    51932: "euc-jp",
    54936: "gb18030",
  };
  return named[codepage];
}
