import { describe, expect, it } from "vitest";
import { DaemonEvents } from "../../src/events.js";
import { ReadinessTracker } from "../../src/http/readiness.js";

const fine = async () => undefined;
const at = new Date();

describe("readiness", () => {
  it("is ready once every queue finished a cycle, well or in a known error state", async () => {
    const events = new DaemonEvents();
    const readiness = new ReadinessTracker(events);
    expect(await readiness.check(["a", "b"], fine)).toEqual({ ready: false, reason: "waiting for the first fetch cycle of a, b" });
    events.emit("fetch-succeeded", { queue: "a", fetched: 0, spooled: 0, at });
    expect(await readiness.check(["a", "b"], fine)).toEqual({ ready: false, reason: "waiting for the first fetch cycle of b" });
    events.emit("fetch-failed", { queue: "b", code: "IDENTITY_BAD_PASSWORD", retryable: false, message: "wrong password", at });
    expect(await readiness.check(["a", "b"], fine)).toEqual({ ready: true });
    // A queue added by a reload must cycle before the daemon is ready again.
    expect((await readiness.check(["a", "b", "c"], fine)).ready).toBe(false);
  });

  it("is not ready when the state database cannot be read, nor once stopping", async () => {
    const events = new DaemonEvents();
    const readiness = new ReadinessTracker(events);
    events.emit("fetch-succeeded", { queue: "a", fetched: 0, spooled: 0, at });
    expect(
      await readiness.check(["a"], async () => {
        throw new Error("The database connection is not open");
      }),
    ).toEqual({ ready: false, reason: "the state database cannot be read (The database connection is not open)" });
    readiness.markStopping();
    expect(await readiness.check(["a"], fine)).toEqual({ ready: false, reason: "stopping" });
  });
});
