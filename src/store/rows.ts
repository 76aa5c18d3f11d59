/**
 * Rows both SQL adapters read with the same column names (src/store/sqlite/, src/store/postgres/),
 * and how each becomes what the ports return: written once, so the adapters cannot drift apart.
 */
import type { SourceKind } from "../source/message-location.js";
import type { DeadLetterRecord, DueDelivery, QueueState, QueueStatus } from "./ports.js";

/** A pending delivery joined with its message. */
export interface DueRow {
  seq: number;
  id: string;
  stable_id: string | null;
  content_sha256: string;
  handler: string;
  attempts: number;
  source_kind: SourceKind;
  folder: string;
  item_id: string;
  internal_date: number | null;
  size: number;
}

export function dueDeliveryOf(row: DueRow): DueDelivery {
  return {
    seq: row.seq,
    spoolKey: row.id,
    ...(row.stable_id === null ? {} : { stableId: row.stable_id }),
    contentSha256: row.content_sha256,
    handler: row.handler,
    attempts: row.attempts,
    location: { kind: row.source_kind, folder: row.folder, item: row.item_id },
    ...(row.internal_date === null ? {} : { internalDate: new Date(row.internal_date) }),
    size: row.size,
  };
}

/** A dead delivery joined with its message. */
export interface DeadLetterRow {
  queue: string;
  id: string;
  spool_key: string;
  handler: string;
  attempts: number;
  last_error: string | null;
  source_kind: SourceKind;
  folder: string;
  item_id: string;
  size: number;
  spooled_at: number;
  header_message_id: string | null;
  /** SQLite answers 0/1, PostgreSQL a boolean. */
  headers_only: number | boolean;
}

export function deadLetterOf(row: DeadLetterRow): DeadLetterRecord {
  return {
    queue: row.queue,
    id: row.id,
    spoolKey: row.spool_key,
    handler: row.handler,
    attempts: row.attempts,
    reason: row.last_error ?? "",
    location: { kind: row.source_kind, folder: row.folder, item: row.item_id },
    size: row.size,
    spooledAt: new Date(row.spooled_at),
    ...(row.header_message_id === null ? {} : { headerMessageId: row.header_message_id }),
    headersOnly: row.headers_only === true || row.headers_only === 1,
  };
}

/** A row of queue_status. */
export interface QueueStatusRow {
  queue: string;
  state: QueueState;
  last_success_at: number | null;
  last_error_code: string | null;
  last_error_message: string | null;
  last_error_fix: string | null;
  last_error_at: number | null;
  consecutive_failures: number;
  token_expires_at: number | null;
  updated_at: number;
}

export function queueStatusOf(row: QueueStatusRow): QueueStatus {
  return {
    queue: row.queue,
    state: row.state,
    ...(row.last_success_at === null ? {} : { lastSuccessAt: new Date(row.last_success_at) }),
    ...(row.last_error_code === null
      ? {}
      : {
          lastError: {
            code: row.last_error_code,
            message: row.last_error_message ?? "",
            ...(row.last_error_fix === null ? {} : { fix: row.last_error_fix }),
            at: new Date(row.last_error_at ?? 0),
          },
        }),
    consecutiveFailures: row.consecutive_failures,
    ...(row.token_expires_at === null ? {} : { tokenExpiresAt: new Date(row.token_expires_at) }),
    updatedAt: new Date(row.updated_at),
  };
}
