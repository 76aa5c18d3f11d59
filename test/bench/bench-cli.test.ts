/**
 * `npm run bench -- --help` and a mistyped option: the harness explains itself instead of
 * printing a stack trace (and starts no test bed).
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const BENCH = fileURLToPath(new URL("../../dist-tools/tools/bench/run.js", import.meta.url));

async function bench(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BENCH, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe("npm run bench -- --help", () => {
  it("prints the scenarios and options and exits 0", async () => {
    const { code, stdout } = await bench("--help");
    expect(code).toBe(0);
    for (const word of ["drain", "latency", "many", "big", "worst", "--scale", "--reps", "--only", "--out", "--cpu-prof", "--quick", "getmail6"])
      expect(stdout).toContain(word);
  });

  it.each([["--only", "nope"], ["--scale", "-1"], ["--reps", "0"], ["--bogus"]])("refuses %s %s with the usage, no stack trace, exit 2", async (...args) => {
    const { code, stderr } = await bench(...args.filter((a): a is string => typeof a === "string"));
    expect(code).toBe(2);
    expect(stderr).toMatch(/^bench: /);
    expect(stderr).toContain("usage: npm run bench");
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
