/**
 * Which queues this replica owns, kept up by lease rounds (./ports.ts QueueLeaseStore), and the
 * fence the shared store's writes ask (QueueFence).
 *
 * Timing, for a lease time L (default 15 s): a round every L/5 renews and claims; a lease is
 * valid for 4L/5 from the round that renewed it, so a replica's queues are claimed by another
 * within L of its last renewal (valid 4L/5, then at most one round). Renewal happens four times
 * within a validity: a round that fails (PostgreSQL slow or gone) costs nothing until the
 * validity ends. This replica counts its own validity from *before* the round's query, by its
 * monotonic clock, so it always gives a queue up no later than the database does: a pause
 * (GC, SIGSTOP, a frozen VM) past the validity stops the queue's pipeline before any write, and
 * a write that still slips through is refused by the epoch check in its transaction.
 */
import { performance } from "node:perf_hooks";
import type { Logger } from "../interfaces.js";
import { describeError } from "../errors.js";
import type { HeldLease, QueueFence, QueueLeaseStore } from "./ports.js";

export const DEFAULT_LEASE_MS = 15_000;

export interface OwnershipListener {
  /** This replica now holds the queue: start its pipeline. */
  acquired(lease: HeldLease, tookOver: boolean): void;
  /** This replica no longer holds the queue: stop its pipeline at once. */
  lost(queue: string, reason: "expired" | "fenced" | "released" | "handed-over"): void;
}

interface Held extends HeldLease {
  /** performance.now() after which this replica no longer counts on the lease. */
  readonly validUntil: number;
}

export interface OwnershipCounters {
  takeovers: number;
  fencingRejections: number;
  renewFailures: number;
  lastRenewError?: { readonly message: string; readonly at: Date };
}

export class QueueOwnership implements QueueFence {
  private readonly held = new Map<string, Held>();
  private timer?: NodeJS.Timeout;
  private inFlight?: Promise<void>;
  private stopped = false;
  readonly counters: OwnershipCounters = { takeovers: 0, fencingRejections: 0, renewFailures: 0 };

  constructor(
    private readonly store: QueueLeaseStore,
    readonly owner: string,
    private queues: readonly string[],
    private readonly leaseMs: number,
    private readonly listener: OwnershipListener,
    private readonly logger?: Logger,
  ) {}

  private get roundMs(): number {
    return this.leaseMs / 5;
  }

  private get validMs(): number {
    return this.leaseMs - this.roundMs;
  }

  /** Runs the first round (resolves after it, failed or not) and keeps going every L/5. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.round();
    this.timer = setInterval(() => void this.tick(), this.roundMs);
    this.timer.unref();
  }

  /** The configured queues changed (reload). */
  setQueues(queues: readonly string[]): void {
    this.queues = queues;
    for (const queue of [...this.held.keys()]) if (!queues.includes(queue)) this.drop(queue, "released");
  }

  epochOf(queue: string): number | undefined {
    const lease = this.held.get(queue);
    if (lease === undefined) return undefined;
    if (performance.now() >= lease.validUntil) {
      this.drop(queue, "expired");
      return undefined;
    }
    return lease.epoch;
  }

  lost(queue: string, epoch: number): void {
    this.counters.fencingRejections++;
    if (this.held.get(queue)?.epoch === epoch) this.drop(queue, "fenced");
  }

  /** For /metrics. */
  figures(): { leasesHeld: number; takeovers: number; fencingRejections: number; renewFailures: number } {
    this.expireOverdue();
    return {
      leasesHeld: this.held.size,
      takeovers: this.counters.takeovers,
      fencingRejections: this.counters.fencingRejections,
      renewFailures: this.counters.renewFailures,
    };
  }

  /**
   * Leases held now, for status. Those that ran out by this replica's clock are dropped first:
   * between two rounds (or while a round hangs) the list is as current as epochOf's answer.
   */
  leases(): HeldLease[] {
    this.expireOverdue();
    return [...this.held.values()].map(({ queue, epoch, since }) => ({ queue, epoch, since }));
  }

  /** Stops renewing and gives every lease back, so other replicas take the queues at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    // A round in flight is not waited for (PostgreSQL may hang): its result is ignored.
    for (const queue of [...this.held.keys()]) this.drop(queue, "released");
    await this.store
      .release(this.owner)
      .catch((error: unknown) =>
        this.logger?.warn({ err: describeError(error) }, "could not give the queue leases back; other replicas take them when they run out"),
      );
  }

  private tick(): Promise<void> {
    this.expireOverdue();
    if (this.inFlight) return this.inFlight;
    return this.round();
  }

  private round(): Promise<void> {
    const started = performance.now();
    const run = (async () => {
      try {
        const result = await this.store.round(this.owner, this.queues, this.validMs);
        if (this.stopped) return;
        const validUntil = started + this.validMs;
        const now = new Set(result.held.map((l) => l.queue));
        for (const queue of [...this.held.keys()]) if (!now.has(queue)) this.drop(queue, "handed-over");
        const tookOver = new Set(result.tookOver);
        for (const lease of result.held) {
          const before = this.held.get(lease.queue);
          this.held.set(lease.queue, { ...lease, validUntil });
          if (before?.epoch === lease.epoch) continue;
          if (before) this.listener.lost(lease.queue, "handed-over");
          if (tookOver.has(lease.queue)) this.counters.takeovers++;
          this.logger?.info({ queue: lease.queue, epoch: lease.epoch, tookOver: tookOver.has(lease.queue) }, "queue lease acquired");
          this.listener.acquired({ queue: lease.queue, epoch: lease.epoch, since: lease.since }, tookOver.has(lease.queue));
        }
      } catch (error) {
        this.counters.renewFailures++;
        this.counters.lastRenewError = { message: describeError(error), at: new Date() };
        this.logger?.warn({ err: describeError(error) }, "could not renew the queue leases; the queues stop here when the leases run out");
      } finally {
        this.expireOverdue();
      }
    })();
    this.inFlight = run.finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private expireOverdue(): void {
    const now = performance.now();
    for (const [queue, lease] of this.held) if (now >= lease.validUntil) this.drop(queue, "expired");
  }

  private drop(queue: string, reason: "expired" | "fenced" | "released" | "handed-over"): void {
    if (!this.held.delete(queue)) return;
    this.logger?.info({ queue, reason }, "queue lease lost; its pipeline stops here");
    this.listener.lost(queue, reason);
  }
}
