/**
 * An attachment's bytes, wherever the parser left them: in memory (`content`) or, for a big
 * one, in a scratch file (`file`), so handlers need not care which.
 */
import { readFile } from "node:fs/promises";
import type { ParsedAttachment } from "../interfaces.js";

export function attachmentBytes(attachment: ParsedAttachment): Promise<Buffer> {
  if (attachment.content !== undefined) return Promise.resolve(attachment.content);
  if (attachment.file !== undefined) return readFile(attachment.file);
  return Promise.resolve(Buffer.alloc(0));
}
