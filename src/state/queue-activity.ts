/**
 * What the operators' pictures need beyond the queue status row: per queue and UTC hour, how
 * many deliveries a handler accepted and how many attempts failed (the status page's 24-hour
 * chart), the oldest message not yet delivered, and when each stored sign-in was last renewed.
 *
 * Counts are kept in memory and written in one transaction every FLUSH_MS and on close: one
 * small write every few seconds rather than one per delivery. They are advisory (a picture):
 * a crash costs at most the last few seconds of the chart, never a message.
 * The read queries work on a read-only database too (`mailfetchd status`).
 */
import type { DaemonEvents } from "../events.js";
import type { Logger } from "../interfaces.js";
import type { StateDatabase } from "./database.js";

export const HOUR_MS = 3_600_000;
/** The chart's span, in hours. */
export const CHART_HOURS = 24;
const FLUSH_MS = 5_000;
/** Rows older than this are removed: the chart shows 24 hours; the rest is slack for clocks. */
const KEEP_HOURS = 48;

export interface HourActivity {
  /** The hour's first millisecond (UTC). */
  readonly start: Date;
  /** Messages a handler accepted (one per handler). */
  readonly delivered: number;
  /** Delivery attempts that failed (retried later, or parked as dead letters). */
  readonly deliveryFailures: number;
  /** Fetch cycles that failed. */
  readonly fetchFailures: number;
}

type Kind = "delivered" | "deliveryFailures" | "fetchFailures";
type Counts = Record<Kind, number>;

export class QueueActivity {
  /** Counts not yet written, by `${hour}\n${queue}`. */
  private readonly unwritten = new Map<string, Counts>();
  private timer?: NodeJS.Timeout;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(
    private readonly db: StateDatabase,
    private readonly logger?: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts what the daemon reports from now on, writing every few seconds. */
  listen(events: DaemonEvents): void {
    const on = <K extends "delivered" | "delivery-failed" | "dead-lettered" | "fetch-failed">(event: K, kind: Kind) => {
      const listener = (e: { queue: string; at?: Date }) => this.count(e.queue, kind, e.at?.getTime() ?? this.now());
      events.on(event, listener as never);
      this.unsubscribe.push(() => events.off(event, listener as never));
    };
    on("delivered", "delivered");
    on("delivery-failed", "deliveryFailures");
    on("dead-lettered", "deliveryFailures");
    on("fetch-failed", "fetchFailures");
    this.timer = setInterval(() => this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  count(queue: string, kind: Kind, atMs: number): void {
    const key = `${Math.floor(atMs / HOUR_MS)}\n${queue}`;
    let counts = this.unwritten.get(key);
    if (!counts) this.unwritten.set(key, (counts = { delivered: 0, deliveryFailures: 0, fetchFailures: 0 }));
    counts[kind]++;
  }

  /** Writes the counts kept in memory; on failure (disk full) they stay for the next try. */
  flush(): void {
    if (this.unwritten.size === 0) return;
    const rows = [...this.unwritten];
    try {
      const add = this.db.prepare(
        `INSERT INTO queue_activity (hour, queue, delivered, delivery_failures, fetch_failures) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (hour, queue) DO UPDATE SET delivered = delivered + excluded.delivered,
           delivery_failures = delivery_failures + excluded.delivery_failures, fetch_failures = fetch_failures + excluded.fetch_failures`,
      );
      const forget = this.db.prepare("DELETE FROM queue_activity WHERE hour < ?");
      this.db.transaction(() => {
        for (const [key, c] of rows) {
          const [hour, queue] = key.split("\n") as [string, string];
          add.run(Number(hour), queue, c.delivered, c.deliveryFailures, c.fetchFailures);
        }
        forget.run(Math.floor(this.now() / HOUR_MS) - KEEP_HOURS);
      })();
      for (const [key] of rows) this.unwritten.delete(key);
    } catch (error) {
      this.logger?.warn({ err: error }, "could not write the status page's hourly counts; trying again in a few seconds");
    }
  }

  /** Stops counting and writes what is left; call before the database closes. */
  close(): void {
    for (const off of this.unsubscribe.splice(0)) off();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.flush();
  }

  /**
   * Per queue, the last CHART_HOURS hours up to the current one, oldest first (hours without
   * activity count zero). Writes what is in memory first, so the chart is exact.
   */
  lastDay(queues: readonly string[]): Map<string, HourActivity[]> {
    this.flush();
    const current = Math.floor(this.now() / HOUR_MS);
    const first = current - CHART_HOURS + 1;
    const rows = this.db
      .prepare("SELECT hour, queue, delivered, delivery_failures, fetch_failures FROM queue_activity WHERE hour >= ? AND hour <= ?")
      .all(first, current) as Array<{ hour: number; queue: string; delivered: number; delivery_failures: number; fetch_failures: number }>;
    const byKey = new Map(rows.map((r) => [`${r.hour}\n${r.queue}`, r]));
    const out = new Map<string, HourActivity[]>();
    for (const queue of queues) {
      const hours: HourActivity[] = [];
      for (let hour = first; hour <= current; hour++) {
        const row = byKey.get(`${hour}\n${queue}`);
        hours.push({
          start: new Date(hour * HOUR_MS),
          delivered: row?.delivered ?? 0,
          deliveryFailures: row?.delivery_failures ?? 0,
          fetchFailures: row?.fetch_failures ?? 0,
        });
      }
      out.set(queue, hours);
    }
    return out;
  }

  /**
   * Per queue, when the oldest message still waiting for a handler was spooled (queues with
   * nothing waiting are absent). Dead letters do not count: they wait for an operator, and
   * have their own gauge and alert. One query for every queue.
   */
  oldestUndelivered(): Map<string, Date> {
    const rows = this.db
      .prepare(
        `SELECT m.queue AS queue, MIN(m.spooled_at) AS at FROM deliveries d JOIN messages m ON m.seq = d.message_seq
         WHERE d.state = 'pending' GROUP BY m.queue`,
      )
      .all() as Array<{ queue: string; at: number }>;
    return new Map(rows.map((r) => [r.queue, new Date(r.at)]));
  }

  /**
   * Per queue, when its stored sign-in was last written: MSAL writes the cache on every token
   * response, so this is when the refresh token was last used (and rotated). Microsoft revokes
   * a refresh token unused for 90 days (AADSTS700082). Queues without a stored sign-in are absent.
   */
  signInRenewed(): Map<string, Date> {
    const rows = this.db.prepare("SELECT queue, updated_at FROM token_cache").all() as Array<{ queue: string; updated_at: number }>;
    return new Map(rows.map((r) => [r.queue, new Date(r.updated_at)]));
  }
}
