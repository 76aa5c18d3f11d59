/**
 * The poller's decisions, as pure functions of what it knows (src/queue/poller.ts keeps the
 * timers, the probe and the cycles around them). Kept apart so the timing rules are tested on
 * a fake clock in milliseconds rather than only end to end: one timing bug (a queue left
 * unpolled behind a 15-minute retry timer) was found only under load.
 */
import { backoffDelay } from "../support/backoff.js";

export const FAILURE_BACKOFF = { baseMs: 5_000, maxMs: 15 * 60_000 };

/** What a scheduled poll is decided on. Times are monotonic milliseconds (performance.now()). */
export interface PollView {
  readonly now: number;
  /** The queue's last look succeeded and no failure spell is on. */
  readonly healthy: boolean;
  /** The source can answer "anything new?" cheaply (IMAP: its IDLE session's STATUS). */
  readonly canProbe: boolean;
  /** wake() asked for a full cycle: the sign-in changed, and only a cycle finds out what that means. */
  readonly fullCycleRequested: boolean;
  /** From this instant the next scheduled poll is a full cycle whatever the probe says. */
  readonly safetyNetDueAt: number;
}

export type PollDecision =
  | { readonly action: "cycle"; readonly why: "requested" | "no-probe" | "unhealthy" | "safety-net"; readonly safetyNetDueAt: number }
  /** Ask the probe; a full cycle only when it cannot say the spool has everything. */
  | { readonly action: "probe"; readonly safetyNetDueAt: number };

/** A scheduled poll: a full cycle, or first the probe. The safety net moves on when it is taken. */
export function decidePoll(view: PollView, fullCycleEveryMs: number): PollDecision {
  const keep = view.safetyNetDueAt;
  if (view.fullCycleRequested) return { action: "cycle", why: "requested", safetyNetDueAt: keep };
  if (!view.canProbe) return { action: "cycle", why: "no-probe", safetyNetDueAt: keep };
  if (!view.healthy) return { action: "cycle", why: "unhealthy", safetyNetDueAt: keep };
  if (view.now >= view.safetyNetDueAt) return { action: "cycle", why: "safety-net", safetyNetDueAt: view.now + fullCycleEveryMs };
  return { action: "probe", safetyNetDueAt: keep };
}

/**
 * The first safety-net cycle: anywhere within one period of the start (`random` in [0, 1)), so
 * queues started together spread theirs evenly instead of all falling due in the same minute.
 */
export function firstSafetyNet(now: number, fullCycleEveryMs: number, random: number): number {
  return now + fullCycleEveryMs * random;
}

/** A new push session opened: a catch-up cycle only when it showed mail the spool lacks, or the queue is not healthy. */
export function cycleWhenSessionOpens(healthy: boolean, upToDate: boolean): boolean {
  return !(healthy && upToDate);
}

export interface ScheduleView {
  readonly consecutiveFailures: number;
  readonly lastError?: { readonly retryable: boolean; readonly retryAfterMs?: number };
  /** An interval, or a cron expression (node-cron then starts the polls: no timer of ours). */
  readonly poll: { readonly intervalMs: number } | { readonly cron: string };
}

/**
 * When the next scheduled poll is, after one: undefined when cron schedules them. During a
 * failure spell, backoff with jitter, never sooner than the failing party asked (Retry-After);
 * after a failure nobody can fix by waiting (consent, a refused password), rarely.
 */
export function nextPollDelay(view: ScheduleView, random: () => number = Math.random): number | undefined {
  if (view.consecutiveFailures > 0) {
    const hinted = view.lastError?.retryAfterMs ?? 0;
    if (view.lastError && !view.lastError.retryable) return Math.max(FAILURE_BACKOFF.maxMs, hinted);
    return Math.max(backoffDelay(view.consecutiveFailures, FAILURE_BACKOFF, random), hinted);
  }
  return "intervalMs" in view.poll ? view.poll.intervalMs : undefined;
}

/**
 * A success that ends a failure spell may come from a cycle IDLE or a sign-in started while a
 * long retry timer (up to 15 min) was set: the schedule goes back to normal at once ("interval"
 * after this many ms; "none" for cron), or the queue would go unpolled until the timer fires.
 */
export function scheduleAfterRecovery(poll: ScheduleView["poll"]): { readonly inMs: number } | "none" {
  return "intervalMs" in poll ? { inMs: poll.intervalMs } : "none";
}
