/**
 * The benchmark harness itself (`npm run bench -- --quick`, built first): a smoke run on tiny
 * volumes that must finish and report every scenario, so the harness cannot rot between full
 * runs. It asserts nothing about speed (BENCHMARKS.md has the figures).
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const BENCH = fileURLToPath(new URL("../../dist-tools/tools/bench/run.js", import.meta.url));

describe("npm run bench -- --quick", () => {
  it("runs every scenario on the test bed and writes the report", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mailfetchd-bench-test-"));
    try {
      const out = path.join(dir, "report.md");
      await run(process.execPath, [BENCH, "--quick", "--out", out], { timeout: 420_000, maxBuffer: 16 * 1024 * 1024 });
      const report = await readFile(out, "utf8");
      for (const title of [
        "1. Backlog drain",
        "1b. Backlog drain over Microsoft Graph, next to IMAP",
        "2. New-mail latency",
        "3. Many queues",
        "4. One big message among small mail",
        "5. Worst-case parse cost and fairness between queues",
      ])
        expect(report).toContain(`### ${title}`);
      expect(report).toMatch(/\| mailfetchd, 1 queue \| \d/);
      expect(report).toMatch(/\| IDLE \| 10 \| \d/);
      expect(report).toContain("<!-- bench:end -->");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 430_000);
});
