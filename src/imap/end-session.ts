/**
 * Ends an IMAP session: LOGOUT when the server answers, the socket closed when it does not.
 * imapflow's logout() waits for the server's answer with no limit of its own but the 5-minute
 * socket timeout: a connection a middlebox dropped without a word held a queue's stop (and so
 * the daemon's) that long. Never rejects.
 */
import type { ImapFlow } from "imapflow";

/** A server that answers at all answers LOGOUT within this. */
const LOGOUT_TIMEOUT_MS = 5_000;

export async function endSession(client: ImapFlow, timeoutMs = LOGOUT_TIMEOUT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const answered = await Promise.race([
    client.logout().then(
      () => true,
      () => false,
    ),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
  ]).finally(() => clearTimeout(timer));
  if (!answered) client.close();
}
