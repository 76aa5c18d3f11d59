/**
 * The poller's timing rules (src/queue/poll-policy.ts) on a fake clock: pure functions, no
 * timers, so each rule is checked exactly and at once.
 */
import { describe, expect, it } from "vitest";
import {
  cycleWhenSessionOpens,
  decidePoll,
  FAILURE_BACKOFF,
  firstSafetyNet,
  nextPollDelay,
  scheduleAfterRecovery,
  type PollView,
} from "../../src/queue/poll-policy.js";

const MINUTE = 60_000;
const EVERY = 30 * MINUTE;
const healthy: PollView = { now: 0, healthy: true, canProbe: true, fullCycleRequested: false, safetyNetDueAt: 10 * MINUTE };

/** Runs scheduled polls a minute apart on a fake clock; what each decided. */
function pollsEveryMinute(minutes: number, start: PollView = healthy): string[] {
  let view = start;
  const seen: string[] = [];
  for (let minute = 0; minute < minutes; minute++) {
    const decision = decidePoll({ ...view, now: minute * MINUTE }, EVERY);
    seen.push(decision.action === "cycle" ? decision.why : "probe");
    view = { ...view, safetyNetDueAt: decision.safetyNetDueAt };
  }
  return seen;
}

describe("poll policy", () => {
  it("probes a healthy queue and runs the safety-net cycle once per period, then the next one a whole period later", () => {
    const seen = pollsEveryMinute(71);
    expect(seen.filter((s) => s === "safety-net").length).toBe(3);
    expect(seen.indexOf("safety-net")).toBe(10);
    expect(seen.indexOf("safety-net", 11)).toBe(40);
    expect(seen.indexOf("safety-net", 41)).toBe(70);
    expect(seen.filter((s) => s === "probe").length).toBe(68);
  });

  it("runs a full cycle at every poll without a probe, while unhealthy, and once when a sign-in change asks for it", () => {
    expect(new Set(pollsEveryMinute(5, { ...healthy, canProbe: false }))).toEqual(new Set(["no-probe"]));
    expect(new Set(pollsEveryMinute(5, { ...healthy, healthy: false }))).toEqual(new Set(["unhealthy"]));
    const requested = decidePoll({ ...healthy, fullCycleRequested: true }, EVERY);
    expect(requested).toEqual({ action: "cycle", why: "requested", safetyNetDueAt: healthy.safetyNetDueAt });
    // The request takes the poll's place, not the safety net's: that stays due when it was.
    expect(decidePoll({ ...healthy, fullCycleRequested: true, now: 20 * MINUTE }, EVERY).safetyNetDueAt).toBe(healthy.safetyNetDueAt);
  });

  it("spreads the first safety net over one period", () => {
    expect(firstSafetyNet(1_000, EVERY, 0)).toBe(1_000);
    expect(firstSafetyNet(1_000, EVERY, 0.5)).toBe(1_000 + EVERY / 2);
    expect(firstSafetyNet(1_000, EVERY, 0.999)).toBeLessThan(1_000 + EVERY);
  });

  it("catches up when a push session opens only if it saw mail the spool lacks or the queue is not healthy", () => {
    expect(cycleWhenSessionOpens(true, true)).toBe(false);
    expect(cycleWhenSessionOpens(true, false)).toBe(true);
    expect(cycleWhenSessionOpens(false, true)).toBe(true);
  });

  it("polls at the interval, leaves cron to cron, and backs off with jitter during a failure spell, never sooner than Retry-After", () => {
    const interval = { intervalMs: MINUTE };
    expect(nextPollDelay({ consecutiveFailures: 0, poll: interval })).toBe(MINUTE);
    expect(nextPollDelay({ consecutiveFailures: 0, poll: { cron: "*/5 * * * *" } })).toBeUndefined();
    const retryable = { retryable: true };
    // Half the step fixed, half random: random 0 gives the floor, random 1 the ceiling.
    expect(nextPollDelay({ consecutiveFailures: 1, lastError: retryable, poll: interval }, () => 0)).toBe(FAILURE_BACKOFF.baseMs / 2);
    expect(nextPollDelay({ consecutiveFailures: 3, lastError: retryable, poll: interval }, () => 1)).toBe(FAILURE_BACKOFF.baseMs * 4);
    expect(nextPollDelay({ consecutiveFailures: 30, lastError: retryable, poll: interval }, () => 1)).toBe(FAILURE_BACKOFF.maxMs);
    expect(nextPollDelay({ consecutiveFailures: 1, lastError: { retryable: true, retryAfterMs: 90_000 }, poll: interval }, () => 1)).toBe(90_000);
    // Nothing changes by waiting (consent missing, password refused): look again rarely.
    expect(nextPollDelay({ consecutiveFailures: 1, lastError: { retryable: false }, poll: interval }, () => 0)).toBe(FAILURE_BACKOFF.maxMs);
  });

  it("puts a queue back on its normal schedule when a cycle it did not schedule ends a failure spell", () => {
    expect(scheduleAfterRecovery({ intervalMs: MINUTE })).toEqual({ inMs: MINUTE });
    expect(scheduleAfterRecovery({ cron: "* * * * *" })).toBe("none");
  });
});
