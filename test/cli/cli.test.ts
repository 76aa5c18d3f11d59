/**
 * The command line driven as a process: help for every command, exit codes, and hostile
 * input answered with a clear message, never a stack trace.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CLI } from "../e2e/daemon-process.js";

const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-cli-"));
const run = (...args: string[]) => {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env: { ...process.env, MAILFETCHD_CONFIG: "" } });
  return { status: result.status, out: result.stdout, err: result.stderr };
};
const noStackTrace = (text: string) => expect(text).not.toMatch(/\n\s+at .+\(.+:\d+:\d+\)/);
const COMMANDS = ["run", "keygen", "login", "logout", "check", "deadletters", "status", "healthcheck", "version"];

describe("mailfetchd command line", () => {
  it("has help for every command", () => {
    const top = run("--help");
    expect(top.status).toBe(0);
    for (const command of COMMANDS) {
      expect(top.out).toContain(command);
      const help = run(command, "--help");
      expect(help.status, command).toBe(0);
      expect(help.out).toMatch(/^Usage: mailfetchd /);
    }
  });

  it("prints the version", () => {
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };
    expect(run("version").out.trim()).toBe(pkg.version);
    expect(run("--version").out.trim()).toBe(pkg.version);
  });

  it("exits 2 on bad usage", () => {
    expect(run("bogus").status).toBe(2);
    expect(run("run", "--no-such-option").status).toBe(2);
    expect(run("keygen").status).toBe(2); // --out is required
  });

  it("exits 78 with the fix for a missing or invalid config, without a stack trace", () => {
    const missing = run("run", "--config", path.join(dir, "nope.yaml"));
    expect(missing.status).toBe(78);
    expect(missing.err).toContain("Cannot read the config file");
    noStackTrace(missing.err);

    const hostile = [
      "state: [unclosed",
      "\u0000\u0001binary",
      "queues: 12",
      "state: { dir: /tmp, keyFile: /tmp/k }\nqueues:\n  - name: ../../etc\n    address: x\n    handlers: [{ type: shell }]",
      "a: &a [*a, *a, *a]",
      `state: { dir: ${"x".repeat(100_000)} }`,
    ];
    for (const [index, text] of hostile.entries()) {
      const file = path.join(dir, `hostile-${index}.yaml`);
      writeFileSync(file, text);
      const result = run("run", "--config", file);
      expect(result.status, text.slice(0, 40)).toBe(78);
      expect(result.err).toMatch(/^mailfetchd: /);
      noStackTrace(result.err);
    }
    const named = run("run", "--config", path.join(dir, "hostile-3.yaml"));
    expect(named.err).toContain("queues[0].name:");
    expect(named.err).toContain("queues[0].address: write a full e-mail address");
  });

  it("writes a 0600 key and refuses to overwrite it", () => {
    const key = path.join(dir, "token.key");
    expect(run("keygen", "--out", key).status).toBe(0);
    expect(statSync(key).mode & 0o777).toBe(0o600);
    const again = run("keygen", "--out", key);
    expect(again.status).toBe(1);
    expect(again.err).toContain("keygen never overwrites a key");
    noStackTrace(again.err);
  });
});
