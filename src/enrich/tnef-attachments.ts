/**
 * winmail.dat unpacked into the attachments it hides (README "TNEF"). The container stays in
 * the list, untouched: nothing is lost if unpacking misses something (an embedded message's
 * body, an RTF body), and a consumer that can read TNEF still can. Each unpacked file follows
 * its container, named safely and uniquely among all the message's attachments, with
 * `extractedFrom` naming the container.
 */
import { createHash } from "node:crypto";

import type { ParsedAttachment } from "../interfaces.js";
import { safeFileName, uniqueFileName } from "../support/safe-filename.js";
import { isTnef, readTnef, tnefBudget } from "./tnef.js";

export interface UnpackedAttachments {
  readonly attachments: ParsedAttachment[];
  readonly warnings: string[];
}

const TNEF_TYPES = new Set(["application/ms-tnef", "application/vnd.ms-tnef"]);
const TNEF_NAMES = new Set(["winmail.dat", "win.dat"]);

const TYPES_BY_EXTENSION: Readonly<Record<string, string>> = {
  ".pdf": "application/pdf",
  ".doc": "application/msword",
  ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  ".xls": "application/vnd.ms-excel",
  ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  ".ppt": "application/vnd.ms-powerpoint",
  ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  ".msg": "application/vnd.ms-outlook",
  ".eml": "message/rfc822",
  ".txt": "text/plain",
  ".csv": "text/csv",
  ".htm": "text/html",
  ".html": "text/html",
  ".rtf": "application/rtf",
  ".xml": "application/xml",
  ".zip": "application/zip",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".png": "image/png",
  ".gif": "image/gif",
  ".bmp": "image/bmp",
  ".tif": "image/tiff",
  ".tiff": "image/tiff",
  ".mp3": "audio/mpeg",
  ".wav": "audio/wav",
  ".ics": "text/calendar",
  ".vcf": "text/vcard",
};

/** Whether an attachment may be a TNEF container, from what its MIME part says. */
export function mayBeTnef(contentType: string, filename: string | undefined): boolean {
  return TNEF_TYPES.has(contentType) || TNEF_NAMES.has((filename ?? "").toLowerCase());
}

export function isTnefContainer(attachment: ParsedAttachment): boolean {
  const name = (attachment.originalFilename ?? attachment.filename).toLowerCase();
  return (TNEF_TYPES.has(attachment.contentType) || TNEF_NAMES.has(name)) && attachment.content !== undefined && isTnef(attachment.content);
}

export function unpackTnefAttachments(attachments: readonly ParsedAttachment[]): UnpackedAttachments {
  if (!attachments.some(isTnefContainer)) return { attachments: [...attachments], warnings: [] };
  const taken = new Set<string>();
  // The existing names are unique already; registering them keeps the new ones from colliding.
  for (const attachment of attachments) uniqueFileName(attachment.filename, taken);

  const result: ParsedAttachment[] = [];
  const warnings: string[] = [];
  // One budget for the whole message: a cap per container let eight containers give 4,000 files.
  const budget = tnefBudget();
  for (const attachment of attachments) {
    result.push(attachment);
    if (attachment.extractedFrom !== undefined || !isTnefContainer(attachment)) continue;
    const contents = readTnef(attachment.content!, 0, budget); // isTnefContainer checked it is in memory
    warnings.push(...contents.warnings.map((warning) => `${attachment.filename}: ${warning}`));
    for (const [index, file] of contents.files.entries()) {
      const fallback = `${attachment.filename}-${index + 1}`;
      const filename = uniqueFileName(safeFileName(file.name, fallback), taken);
      const contentId = file.contentId?.trim().replace(/^<|>$/g, "").trim();
      result.push({
        filename,
        ...(file.name === undefined ? {} : { originalFilename: file.name }),
        contentType: contentTypeOf(file.mimeType, filename),
        size: file.data.length,
        sha256: createHash("sha256").update(file.data).digest("hex"),
        ...(contentId ? { contentId } : {}),
        inline: false,
        content: file.data,
        extractedFrom: attachment.filename,
      });
    }
  }
  return { attachments: result, warnings };
}

function contentTypeOf(mimeType: string | undefined, filename: string): string {
  const declared = mimeType?.trim().toLowerCase();
  if (declared !== undefined && /^[a-z0-9.+-]+\/[a-z0-9.+-]+$/.test(declared)) return declared;
  const dot = filename.lastIndexOf(".");
  return (dot > 0 ? TYPES_BY_EXTENSION[filename.slice(dot).toLowerCase()] : undefined) ?? "application/octet-stream";
}
