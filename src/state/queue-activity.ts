/**
 * The status page's 24-hour chart: per queue and UTC hour, how many deliveries a handler
 * accepted and how many attempts failed. (The oldest message not yet delivered and when each
 * stored sign-in was last renewed come straight from the store's ports: src/metrics/queue-health.ts.)
 *
 * Counts are kept in memory and written through the ActivityStore (src/store/ports.ts) in one
 * transaction every FLUSH_MS and on close: one small write every few seconds rather than one
 * per delivery. They are advisory (a picture): a crash costs at most the last few seconds of
 * the chart, never a message. Reading works on a read-only store too (`mailfetchd status`).
 */
import type { DaemonEvents } from "../events.js";
import type { Logger } from "../interfaces.js";
import type { ActivityStore, HourCounts } from "../store/ports.js";

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
    private readonly store: ActivityStore,
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
    this.timer = setInterval(() => void this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  count(queue: string, kind: Kind, atMs: number): void {
    const key = `${Math.floor(atMs / HOUR_MS)}\n${queue}`;
    let counts = this.unwritten.get(key);
    if (!counts) this.unwritten.set(key, (counts = { delivered: 0, deliveryFailures: 0, fetchFailures: 0 }));
    counts[kind]++;
  }

  /** Writes the counts kept in memory; on failure (disk full) they stay for the next try. */
  async flush(): Promise<void> {
    if (this.unwritten.size === 0) return;
    // Taken out before the write: counts made while it is under way go to the next one.
    const rows = [...this.unwritten];
    this.unwritten.clear();
    const counts: HourCounts[] = rows.map(([key, c]) => {
      const [hour, queue] = key.split("\n") as [string, string];
      return { hour: Number(hour), queue, ...c };
    });
    try {
      await this.store.add(counts, Math.floor(this.now() / HOUR_MS) - KEEP_HOURS);
    } catch (error) {
      for (const [key, c] of rows) this.merge(key, c);
      this.logger?.warn({ err: error }, "could not write the status page's hourly counts; trying again in a few seconds");
    }
  }

  /** Stops counting and writes what is left; call before the store closes. */
  async close(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /**
   * Per queue, the last CHART_HOURS hours up to the current one, oldest first (hours without
   * activity count zero). Writes what is in memory first, so the chart is exact.
   */
  async lastDay(queues: readonly string[]): Promise<Map<string, HourActivity[]>> {
    await this.flush();
    const current = Math.floor(this.now() / HOUR_MS);
    const first = current - CHART_HOURS + 1;
    const rows = await this.store.hours(first, current);
    const byKey = new Map(rows.map((r) => [`${r.hour}\n${r.queue}`, r]));
    const out = new Map<string, HourActivity[]>();
    for (const queue of queues) {
      const hours: HourActivity[] = [];
      for (let hour = first; hour <= current; hour++) {
        const row = byKey.get(`${hour}\n${queue}`);
        hours.push({
          start: new Date(hour * HOUR_MS),
          delivered: row?.delivered ?? 0,
          deliveryFailures: row?.deliveryFailures ?? 0,
          fetchFailures: row?.fetchFailures ?? 0,
        });
      }
      out.set(queue, hours);
    }
    return out;
  }

  private merge(key: string, add: Counts): void {
    const counts = this.unwritten.get(key);
    if (!counts) return void this.unwritten.set(key, { ...add });
    counts.delivered += add.delivered;
    counts.deliveryFailures += add.deliveryFailures;
    counts.fetchFailures += add.fetchFailures;
  }
}
