import { describe, expect, it } from "vitest";
import { backoffDelay, sleep } from "../../src/support/backoff.js";

describe("backoff", () => {
  const options = { baseMs: 1_000, maxMs: 60_000 };
  it("doubles per attempt between half and all of the step, and caps", () => {
    expect(backoffDelay(1, options, () => 0)).toBe(500);
    expect(backoffDelay(1, options, () => 1)).toBe(1_000);
    expect(backoffDelay(3, options, () => 0)).toBe(2_000);
    expect(backoffDelay(3, options, () => 1)).toBe(4_000);
    expect(backoffDelay(30, options, () => 1)).toBe(60_000);
  });
  it("sleep ends early on abort", async () => {
    const controller = new AbortController();
    const started = Date.now();
    const done = sleep(60_000, controller.signal);
    controller.abort();
    await done;
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
