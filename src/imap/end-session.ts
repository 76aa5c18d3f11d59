/**
 * Ends an IMAP session: LOGOUT when the server answers, the socket closed when it does not.
 * A command that may meet a silently dead connection is bounded the same way (answersWithin).
 * imapflow's logout() waits for the server's answer with no limit of its own but the 5-minute
 * socket timeout: a connection a middlebox dropped without a word held a queue's stop (and so
 * the daemon's) that long. Never rejects.
 */
import type { ImapFlow } from "imapflow";

/** A server that answers at all answers LOGOUT within this. */
const LOGOUT_TIMEOUT_MS = 5_000;

export async function endSession(client: ImapFlow, timeoutMs = LOGOUT_TIMEOUT_MS): Promise<void> {
  if (!(await answersWithin(client.logout(), timeoutMs))) client.close();
}

/**
 * True when `command` succeeds within `timeoutMs`; false when it fails or is still waiting (it is
 * left to settle on its own: the caller closes the connection, which ends it).
 */
export async function answersWithin(command: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    command.then(
      () => true,
      () => false,
    ),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
  ]).finally(() => clearTimeout(timer));
}
