/**
 * What the daemon's subsystems report, as one typed event map: metrics, the status page and
 * tests subscribe here instead of reaching into the subsystems.
 */
import { EventEmitter } from "node:events";

export interface DaemonEventMap {
  /**
   * A fetch cycle ended well, or (`probed`) a scheduled poll asked the queue's IDLE session and
   * found nothing new, without a connection of its own: a successful look all the same.
   */
  "fetch-succeeded": [{ queue: string; fetched: number; spooled: number; at: Date; probed?: boolean }];
  /** A fetch cycle failed; `code` is a MailfetchdError code. */
  "fetch-failed": [{ queue: string; code: string; retryable: boolean; message: string; fix?: string; at: Date }];
  /**
   * The IDLE session said mail arrived (EXISTS): where mailfetchd's own share of new-mail
   * latency starts (npm run bench).
   */
  "new-mail-signalled": [{ queue: string }];
  /** An IDLE session opened the queue's folder and listens for new mail. */
  "idle-session-opened": [{ queue: string }];
  /** A message is durable in the spool; `key` is its spool key (its stable id comes with its first parse). */
  spooled: [{ queue: string; key: string; size: number }];
  /** A message whose content was spooled before (same stable id) was not delivered again. */
  "repeat-recognised": [{ queue: string; id: string }];
  /** `arrivedAt`: when the message arrived in the mailbox (IMAP INTERNALDATE), when known. */
  delivered: [{ queue: string; id: string; handler: string; attempt: number; durationMs: number; arrivedAt?: Date }];
  "delivery-failed": [{ queue: string; id: string; handler: string; attempt: number; retryInMs: number; reason: string }];
  "dead-lettered": [{ queue: string; id: string; handler: string; reason: string }];
  /** A queue's condition changed (ok, retrying, needs-sign-in, ...). */
  "queue-state": [{ queue: string; state: string; previous: string }];
  /** An access token was obtained; for expiry gauges (never carries the token). */
  "token-acquired": [{ queue: string; expiresOn: Date }];
}

export class DaemonEvents extends EventEmitter<DaemonEventMap> {}
