/** The stable id the daemon gives a message, worked out the way it does: parsed by the real parser. */
import { createHash } from "node:crypto";
import { MailparserParser } from "../../../src/parse/mail-parser.js";
import { stableIdOfParsed } from "../../../src/spool/stable-id.js";

const parser = new MailparserParser();

export async function expectedStableId(queueAddress: string, raw: Buffer): Promise<string> {
  const parsed = await parser.parse(raw);
  return stableIdOfParsed(queueAddress, parsed.contentFingerprint, createHash("sha256").update(raw).digest("hex"));
}
