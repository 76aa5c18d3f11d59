/** The refresh rule alone (pure logic, no clock): ahead of expiry with jitter, and at least daily. */
import { describe, expect, it } from "vitest";
import { DEFAULT_MAX_IDLE_MS, MIN_REFRESH_INTERVAL_MS, MSAL_RENEWAL_OFFSET_MS, nextRefreshAt } from "../../src/tokens/refresh-schedule.js";

const NOW = Date.UTC(2025, 0, 1);
const MINUTE = 60_000;
const plan = (over: Partial<Parameters<typeof nextRefreshAt>[0]>) =>
  nextRefreshAt({ now: NOW, expiresOn: NOW + 75 * MINUTE, lastRefreshAt: NOW, maxIdleMs: DEFAULT_MAX_IDLE_MS, random: () => 0, ...over });

describe("nextRefreshAt", () => {
  it("refreshes a 75-minute token 10 to 20 minutes before MSAL would (MSAL renews 5 minutes early)", () => {
    const renewAt = NOW + 75 * MINUTE - MSAL_RENEWAL_OFFSET_MS;
    expect(plan({ random: () => 0 })).toBe(renewAt - 10 * MINUTE);
    expect(plan({ random: () => 0.5 })).toBe(renewAt - 15 * MINUTE);
  });

  it("never assumes 60 minutes: a short token is refreshed at a share of its own life", () => {
    // The stand-in's 2-second token: expires_in 302 s.
    const at = plan({ expiresOn: NOW + 302_000, random: () => 0.5 });
    expect(at).toBeGreaterThan(NOW);
    expect(at).toBeLessThan(NOW + 2_000);
    expect(at).toBe(NOW + 2_000 - 400 - 200);
  });

  it("spreads queues that got their tokens together", () => {
    const times = [0, 0.25, 0.5, 0.75].map((r) => plan({ random: () => r }));
    expect(new Set(times).size).toBe(4);
  });

  it("refreshes a token MSAL already considers expired halfway through its life, never sooner than 20 s after the last refresh", () => {
    // A 60-second token (expires_in 60): MSAL counts it as expired on arrival.
    expect(plan({ expiresOn: NOW + 60_000 })).toBe(NOW + 30_000);
    expect(plan({ expiresOn: NOW + 10_000 })).toBe(NOW + MIN_REFRESH_INTERVAL_MS);
    expect(plan({ expiresOn: NOW - 60_000 })).toBe(NOW + MIN_REFRESH_INTERVAL_MS);
    // The last refresh long ago: an expired token is refreshed at once.
    expect(plan({ expiresOn: NOW - 60_000, lastRefreshAt: NOW - 10 * MINUTE })).toBe(NOW);
  });

  it("uses the refresh token at least daily, even when the access token would last longer", () => {
    const at = plan({ expiresOn: NOW + 30 * 24 * 60 * MINUTE, lastRefreshAt: NOW - 23 * 60 * MINUTE, random: () => 0 });
    expect(at).toBe(NOW + 60 * MINUTE);
    const jittered = plan({ expiresOn: NOW + 30 * 24 * 60 * MINUTE, lastRefreshAt: NOW, random: () => 0.5 });
    expect(jittered).toBe(NOW + DEFAULT_MAX_IDLE_MS - DEFAULT_MAX_IDLE_MS * 0.05);
  });

  it("an overdue daily refresh happens now", () => {
    expect(plan({ lastRefreshAt: NOW - 2 * DEFAULT_MAX_IDLE_MS })).toBe(NOW);
  });
});
