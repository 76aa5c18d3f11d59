/** `mailfetchd status`'s table on its own (pure); the command is run as a process in status.test.ts. */
import { describe, expect, it } from "vitest";
import { renderTable } from "../../src/cli/status.js";
import type { QueueHealth } from "../../src/metrics/queue-health.js";

const now = new Date("2026-05-20T10:00:00Z");

describe("status table", () => {
  it("lines up one row per queue, then each problem with its fix", () => {
    const health: QueueHealth[] = [
      {
        queue: "support",
        state: "ok",
        tokenExpiresAt: new Date("2026-05-20T10:52:00Z"),
        lastSuccessAt: new Date("2026-05-20T09:59:48Z"),
        consecutiveFailures: 0,
        backlog: 0,
        deadLetters: 0,
        spoolBytes: 0,
      },
      {
        queue: "sales",
        state: "needs-password",
        tokenExpiresAt: new Date("2026-05-20T07:00:00Z"),
        lastSuccessAt: new Date("2026-05-20T06:30:00Z"),
        lastError: {
          code: "IDENTITY_BAD_PASSWORD",
          message: "Queue sales: the password was refused.",
          fix: "Write the current password to the passwordFile.",
          at: new Date("2026-05-20T09:58:00Z"),
        },
        consecutiveFailures: 4,
        backlog: 12,
        oldestUndeliveredAt: new Date("2026-05-20T09:17:00Z"),
        deadLetters: 1,
        spoolBytes: 3_355_443,
      },
      { queue: "new", state: "unknown", consecutiveFailures: 0, backlog: 0, deadLetters: 0, spoolBytes: 0 },
    ];
    expect(renderTable(health, now)).toBe(
      [
        "QUEUE    STATE           TOKEN EXPIRES   LAST FETCH OK  BACKLOG  OLDEST WAITING  DEAD LETTERS   SPOOL",
        "support  ok              in 52m          12s ago              0               -             0     0 B",
        "sales    needs-password  expired 3h ago  3h30m ago           12             43m             1  3.2 MB",
        "new      unknown         no token yet    never                0               -             0     0 B",
        "",
        "sales:",
        "  last error IDENTITY_BAD_PASSWORD (2m ago, 4 in a row): Queue sales: the password was refused.",
        "  fix: Write the current password to the passwordFile.",
        "  1 delivery was parked for good: see `mailfetchd deadletters list`, then retry or drop them.",
        "",
        "new:",
        "  No fetch recorded yet: is the daemon running with this config? (systemctl status mailfetchd, or docker ps)",
        "",
      ].join("\n"),
    );
  });

  it("leaves out an error the queue has recovered from", () => {
    const recovered: QueueHealth = {
      queue: "support",
      state: "ok",
      lastSuccessAt: new Date("2026-05-20T09:59:00Z"),
      lastError: { code: "IMAP_UNAVAILABLE", message: "gone", at: new Date("2026-05-20T09:00:00Z") },
      consecutiveFailures: 0,
      backlog: 0,
      deadLetters: 0,
      spoolBytes: 0,
    };
    expect(renderTable([recovered], now)).not.toContain("IMAP_UNAVAILABLE");
  });
});
