/**
 * For `check`: can the queue log in over IMAP with this token, and does its folder exist?
 * Connects the way the daemon does (XOAUTH2, user= the queue address, the extra CA), opens the
 * folder read-only, and logs out. Nothing is fetched.
 */
import { ImapFlow } from "imapflow";
import { rootCertificates } from "node:tls";
import type { QueueConfig } from "../config/schema.js";
import type { MailfetchdError } from "../errors.js";
import { classifyImapError } from "../imap/imap-errors.js";

export type ProbeOutcome = { readonly ok: true; readonly detail: string } | { readonly ok: false; readonly error: MailfetchdError };

export interface ImapProbeResult {
  readonly login: ProbeOutcome;
  /** Undefined when the login failed: the folder could not be looked at. */
  readonly folder?: ProbeOutcome;
}

export async function probeImap(queue: QueueConfig, accessToken: string): Promise<ImapProbeResult> {
  const { host, port, tls, ca } = queue.imap;
  const context = { folder: queue.folder, host };
  const client = new ImapFlow({
    host,
    port,
    secure: tls,
    tls: ca ? { ca: [...rootCertificates, ca] } : undefined,
    auth: { user: queue.address, accessToken },
    logger: false,
    disableAutoIdle: true,
    connectionTimeout: 30_000,
    greetingTimeout: 16_000,
    socketTimeout: 60_000,
  });
  client.on("error", () => {
    // Reported through the failing command below.
  });
  try {
    await client.connect();
  } catch (error) {
    client.close();
    return { login: { ok: false, error: classifyImapError(error, queue.name, context) } };
  }
  const login: ProbeOutcome = { ok: true, detail: `${host}:${port} as ${queue.address}` };
  try {
    const mailbox = await client.mailboxOpen(queue.folder, { readOnly: true });
    return { login, folder: { ok: true, detail: `${queue.folder}: ${mailbox.exists} messages, UIDVALIDITY ${String(mailbox.uidValidity)}` } };
  } catch (error) {
    return { login, folder: { ok: false, error: classifyImapError(error, queue.name, context) } };
  } finally {
    await client.logout().catch(() => client.close());
  }
}
