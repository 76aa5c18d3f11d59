/**
 * The command line driven as a process: help for every command, exit codes, and hostile
 * input answered with a clear message, never a stack trace.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CLI } from "../../tools/testbed/helpers/daemon-process.js";

const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-cli-"));
const run = (...args: string[]) => {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env: { ...process.env, MAILFETCHD_CONFIG: "" } });
  return { status: result.status, out: result.stdout, err: result.stderr };
};
const noStackTrace = (text: string) => expect(text).not.toMatch(/\n\s+at .+\(.+:\d+:\d+\)/);
const COMMANDS = ["run", "keygen", "login", "logout", "check", "deadletters", "status", "healthcheck", "migrate", "version"];

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

  it("exits 78 for a YAML alias bomb, naming the cause", () => {
    const levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"];
    for (const name of "bcdefgh") {
      const previous = String.fromCharCode(name.charCodeAt(0) - 1);
      levels.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(", ")}]`);
    }
    const file = path.join(dir, "alias-bomb.yaml");
    writeFileSync(file, `${levels.join("\n")}\n`);
    const result = run("run", "--config", file);
    expect(result.status).toBe(78);
    expect(result.err).toContain("not valid YAML: Excessive alias count");
    noStackTrace(result.err);
  });

  it("exits 78 naming a __proto__, constructor or prototype key under headers or env", () => {
    const config = (handler: string) =>
      `state: { dir: ./state, keyFile: ./key }\nqueues:\n  - name: support\n    address: support@contoso.com\n    handlers:\n      - ${handler}\n`;
    const cases = [
      ['{ type: webhook, url: "https://crm.contoso.com/hook", headers: { __proto__: { file: ./x } } }', "queues[0].handlers[0].headers.__proto__"],
      ["{ type: command, command: [/bin/true], env: { constructor: x } }", "queues[0].handlers[0].env.constructor"],
      ["{ type: command, command: [/bin/true], env: { prototype: x } }", "queues[0].handlers[0].env.prototype"],
    ];
    for (const [index, [handler, key]] of cases.entries()) {
      const file = path.join(dir, `proto-${index}.yaml`);
      writeFileSync(file, config(handler!));
      const result = run("run", "--config", file);
      expect(result.status, handler).toBe(78);
      expect(result.err).toContain(`${key}: the key name`);
      noStackTrace(result.err);
    }
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
