/**
 * Each configured queue's health at a glance, read from the state database: what the status
 * page, /status.json, /metrics and `mailfetchd status` all show, so they never disagree.
 */
import type { QueueState, QueueStatusStore, RetentionStore, TokenCacheRows } from "../store/ports.js";

/** "unknown": no fetch has been recorded for the queue yet (the daemon never ran it). */
export type HealthState = QueueState | "unknown";

export interface QueueHealth {
  readonly queue: string;
  readonly state: HealthState;
  readonly tokenExpiresAt?: Date;
  readonly lastSuccessAt?: Date;
  readonly lastError?: { readonly code: string; readonly message: string; readonly fix?: string; readonly at: Date };
  readonly consecutiveFailures: number;
  /** Deliveries spooled and waiting for a handler. */
  readonly backlog: number;
  /** Deliveries parked for good, waiting for an operator (`mailfetchd deadletters`). */
  readonly deadLetters: number;
  /** Bytes of raw messages held in the spool (until retention prunes delivered ones). */
  readonly spoolBytes: number;
  /** When the oldest message still waiting for a handler was spooled; undefined when none waits. */
  readonly oldestUndeliveredAt?: Date;
  /** When the stored sign-in (refresh token) was last used; undefined without one. */
  readonly signInRenewedAt?: Date;
}

/**
 * Where the numbers come from: the state store's ports (the daemon's store, or one opened
 * read-only by `status`). Each is asked once for every queue, never once per queue.
 */
export interface HealthSources {
  readonly status: Pick<QueueStatusStore, "all">;
  /** Totals and the oldest waiting message of every queue, in grouped queries. */
  readonly retention: Pick<RetentionStore, "totals" | "oldestUndelivered">;
  /**
   * When each stored sign-in was last written: MSAL writes the cache on every token response,
   * so this is when the refresh token was last used (and rotated). Microsoft revokes a refresh
   * token unused for 90 days (AADSTS700082).
   */
  readonly tokenCaches: Pick<TokenCacheRows, "versions">;
}

export async function readQueueHealth(sources: HealthSources, queues: readonly string[]): Promise<QueueHealth[]> {
  const [statuses, oldestUndelivered, versions, totals] = await Promise.all([
    sources.status.all(),
    sources.retention.oldestUndelivered(),
    sources.tokenCaches.versions(),
    sources.retention.totals(),
  ]);
  const byQueue = new Map(statuses.map((status) => [status.queue, status]));
  return queues.map((queue) => {
    const status = byQueue.get(queue);
    const renewed = versions.get(queue);
    const total = totals.get(queue);
    return {
      queue,
      state: status?.state ?? "unknown",
      tokenExpiresAt: status?.tokenExpiresAt,
      lastSuccessAt: status?.lastSuccessAt,
      lastError: status?.lastError,
      consecutiveFailures: status?.consecutiveFailures ?? 0,
      backlog: total?.backlog ?? 0,
      deadLetters: total?.deadLetters ?? 0,
      spoolBytes: total?.spoolBytes ?? 0,
      oldestUndeliveredAt: oldestUndelivered.get(queue),
      signInRenewedAt: renewed === undefined ? undefined : new Date(renewed),
    };
  });
}

/** Whether an operator needs to look: the queue is not fetching, or letters wait for a decision. */
export function needsAttention(health: QueueHealth): boolean {
  return health.state !== "ok" || health.deadLetters > 0;
}

/** The documented JSON form (`status --json`, /status.json): ISO times, null where unknown. */
export interface QueueHealthJson {
  queue: string;
  state: HealthState;
  ok: boolean;
  tokenExpiresAt: string | null;
  lastSuccessAt: string | null;
  lastError: { code: string; message: string; fix: string | null; at: string } | null;
  consecutiveFailures: number;
  backlog: number;
  deadLetters: number;
  spoolBytes: number;
  oldestUndeliveredAt: string | null;
  signInRenewedAt: string | null;
}

export function healthToJson(health: QueueHealth): QueueHealthJson {
  return {
    queue: health.queue,
    state: health.state,
    ok: !needsAttention(health),
    tokenExpiresAt: health.tokenExpiresAt?.toISOString() ?? null,
    lastSuccessAt: health.lastSuccessAt?.toISOString() ?? null,
    lastError: health.lastError
      ? { code: health.lastError.code, message: health.lastError.message, fix: health.lastError.fix ?? null, at: health.lastError.at.toISOString() }
      : null,
    consecutiveFailures: health.consecutiveFailures,
    backlog: health.backlog,
    deadLetters: health.deadLetters,
    spoolBytes: health.spoolBytes,
    oldestUndeliveredAt: health.oldestUndeliveredAt?.toISOString() ?? null,
    signInRenewedAt: health.signInRenewedAt?.toISOString() ?? null,
  };
}

/** The last error, unless the queue has fetched well since (then it is history). */
export function currentError(health: QueueHealth): QueueHealth["lastError"] {
  const error = health.lastError;
  if (!error) return undefined;
  return !health.lastSuccessAt || error.at >= health.lastSuccessAt ? error : undefined;
}

/** What an operator should know beyond the current error: a queue never fetched, or dead letters waiting. */
export function attentionHints(health: QueueHealth): string[] {
  const hints: string[] = [];
  if (!currentError(health)) {
    if (health.state === "unknown") hints.push("No fetch recorded yet: is the daemon running with this config? (systemctl status mailfetchd, or docker ps)");
    if (health.state === "starting") hints.push("The first fetch has not finished yet; look again in a minute.");
  }
  if (health.deadLetters > 0) {
    hints.push(
      `${health.deadLetters} deliver${health.deadLetters === 1 ? "y was" : "ies were"} parked for good: see \`mailfetchd deadletters list\`, then retry or drop them.`,
    );
  }
  return hints;
}
