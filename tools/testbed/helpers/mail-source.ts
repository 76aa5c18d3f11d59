/**
 * The reliability suites run once per mail source (`describe.each(MAIL_SOURCES)`): these put a
 * raw message into a queue's mailbox and count what is there, through Dovecot for `imap` and
 * through the Graph stand-in's control for `graph`, and name the queue keys and the secrets
 * each source adds.
 */
import type { TestBed } from "../test-bed.js";

export type MailSourceKind = "imap" | "graph";
export const MAIL_SOURCES: readonly MailSourceKind[] = ["imap", "graph"];

/** Makes the queue's mailbox exist on the source's server, with these extra folders. */
export async function prepareMailbox(bed: TestBed, source: MailSourceKind, address: string, folders: readonly string[] = []): Promise<void> {
  if (source === "graph") {
    bed.graph.addMailbox(address);
    for (const folder of folders) bed.graph.addFolder(address, folder);
    return;
  }
  for (const folder of folders) await bed.dovecot.createFolder(address, folder);
}

/**
 * Puts a raw message into the inbox; returns how the message document's `source` will name it:
 * the UID for IMAP (counted per mailbox, as Dovecot assigns them to a fresh inbox), the
 * immutable id (`source.item`) for Graph.
 */
export async function putRawMessage(bed: TestBed, source: MailSourceKind, address: string, raw: Buffer): Promise<string> {
  if (source === "graph") return bed.graph.putMessage(address, "inbox", raw);
  await bed.dovecot.deliver(address, raw);
  const mailbox = `${bed.dir}\0${address}`;
  const uid = (imapUidsDelivered.get(mailbox) ?? 0) + 1;
  imapUidsDelivered.set(mailbox, uid);
  return String(uid);
}
/** Per bed and mailbox: the UIDs Dovecot gave so far (a message it refused took none). */
const imapUidsDelivered = new Map<string, number>();

/** How putRawMessage named the message, from a message document's or dead letter's `source`. */
export function sourceKey(source: MailSourceKind, fields: { readonly uid?: number; readonly item: string }): string {
  return source === "graph" ? fields.item : String(fields.uid);
}

export async function countMessages(bed: TestBed, source: MailSourceKind, address: string, folder?: string): Promise<number> {
  if (source === "graph") return bed.graph.messages(address, folder ?? "inbox").length;
  return bed.dovecot.countMessages(address, folder);
}

/** The queue keys that select the source (IMAP is the default: nothing to add). */
export function sourceOptions(source: MailSourceKind): Record<string, unknown> {
  return source === "graph" ? { source: "graph" } : {};
}

/**
 * What must never reach a log line, status output, error or file: every token the identity
 * stand-in issued, and for Graph the request-id of every Graph error body (a body that leaked
 * carries it).
 */
export function issuedSecrets(bed: TestBed, source: MailSourceKind): string[] {
  return [...bed.identity.secretsIssued, ...(source === "graph" ? bed.graph.errorBodyIdsSent : [])];
}

/**
 * Graph's delta and skip link tokens: never in a log line, status output, error or plaintext
 * file. The state database is where they belong: the folder's cursor is the delta link to
 * call next (src/graph/graph-source.ts), kept like the rest of the state (0600 in a 0700 dir).
 */
export function linkTokens(bed: TestBed, source: MailSourceKind): string[] {
  return source === "graph" ? [...bed.graph.linkTokensIssued] : [];
}
