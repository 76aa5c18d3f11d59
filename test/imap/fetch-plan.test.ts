import { describe, expect, it } from "vitest";
import { planFetchRuns } from "../../src/imap/fetch-plan.js";

const MB = 1024 * 1024;
const limits = { streamAbove: 4 * MB, bulkBytes: 8 * MB };

describe("planFetchRuns", () => {
  it("keeps UID order: small messages in bulk runs, each big one streamed on its own", () => {
    const sizes = new Map([
      [1, 10_000],
      [2, 20_000],
      [3, 50 * MB],
      [4, 30_000],
      [5, 5 * MB],
      [6, 1_000],
    ]);
    expect(planFetchRuns([1, 2, 3, 4, 5, 6], (uid) => sizes.get(uid)!, limits)).toEqual([
      { kind: "bulk", uids: [1, 2] },
      { kind: "stream", uid: 3 },
      { kind: "bulk", uids: [4] },
      { kind: "stream", uid: 5 },
      { kind: "bulk", uids: [6] },
    ]);
  });

  it("bounds a bulk run in bytes (imapflow buffers a whole FETCH)", () => {
    const runs = planFetchRuns([1, 2, 3, 4, 5], () => 3 * MB, limits);
    expect(runs).toEqual([
      { kind: "bulk", uids: [1, 2, 3] },
      { kind: "bulk", uids: [4, 5] },
    ]);
  });

  it("plans nothing for nothing", () => {
    expect(planFetchRuns([], () => 0, limits)).toEqual([]);
  });
});
