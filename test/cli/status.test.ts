/**
 * `mailfetchd status` and `mailfetchd healthcheck` driven as processes (dist/cli.js), the way an
 * operator and a container engine run them, beside a daemon process on the test bed: before it
 * ever ran, while it runs, and after it stopped.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findFreePorts } from "../../tools/testbed/free-port.js";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { CLI, DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { addHttpBlock, waitFor } from "../../tools/testbed/helpers/config-file.js";

let bed: TestBed;
let configFile: string;
let alphaOnlyFile: string;
let noHttpFile: string;
let port: number;
let daemon: DaemonProcess | undefined;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, MAILFETCHD_CONFIG: "" }, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  bed = await startTestBed();
  bed.identity.addUser({ username: "alpha@example.test", password: "alpha-Pa55word!" });
  bed.identity.addUser({ username: "locked@example.test", password: "locked-Pa55word!" });
  for (const m of sampleMessages(2, { seed: "status", to: "alpha@example.test" })) await bed.dovecot.deliver("alpha@example.test", m.raw);
  [port] = (await findFreePorts(1)) as [number];
  const input = {
    stateDir: path.join(bed.dir, "state"),
    poll: "1s",
    queues: [
      {
        name: "alpha",
        address: "alpha@example.test",
        password: "alpha-Pa55word!",
        options: { idle: false },
        handlers: [{ type: "directory", path: path.join(bed.dir, "out") }],
      },
      {
        name: "locked",
        address: "locked@example.test",
        password: "wrong-password",
        options: { idle: false },
        handlers: [{ type: "directory", path: path.join(bed.dir, "out") }],
      },
    ],
  };
  noHttpFile = bed.writeDaemonConfig(input, path.join(bed.dir, "no-http.yaml"));
  configFile = addHttpBlock(noHttpFile, { listen: `127.0.0.1:${port}` }, path.join(bed.dir, "config.yaml"));
  alphaOnlyFile = addHttpBlock(bed.writeDaemonConfig({ ...input, queues: input.queues.slice(0, 1) }, path.join(bed.dir, "alpha-only.yaml")), {
    listen: `127.0.0.1:${port}`,
  });
});

afterAll(async () => {
  await daemon?.stop();
  await bed?.close();
});

describe("mailfetchd status and healthcheck", () => {
  it("before the daemon ever ran: status lists the configured queues as unknown (exit 1), healthcheck is unhealthy", async () => {
    const status = await cli("status", "--config", configFile);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/^alpha\s+unknown\s+no token yet\s+never\s+0\s+-\s+0\s+0 B$/m);
    expect(status.stdout).toContain("No state yet in");
    expect(existsSync(path.join(bed.dir, "state")), "status must not create the state").toBe(false);
    const health = await cli("healthcheck", "--config", configFile);
    expect(health.code).toBe(1);
    expect(health.stderr).toContain(`unhealthy: GET http://127.0.0.1:${port}/readyz failed: ECONNREFUSED`);
    expect(health.stderr).toContain("Is the daemon running");
  });

  it("while it runs: healthy when ready; status shows each queue, the error and its fix, and exits 1 while one needs attention", async () => {
    daemon = new DaemonProcess(configFile);
    daemon.start();
    await daemon.waitFor("readiness", async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200);
    await waitFor("locked's refusal recorded", async () =>
      (await (await fetch(`http://127.0.0.1:${port}/status.json`)).text()).includes("IDENTITY_BAD_PASSWORD"),
    );

    const ready = await cli("healthcheck", "--config", configFile);
    expect(ready).toMatchObject({ code: 0, stdout: "healthy: ready\n" });
    expect(await cli("healthcheck", "--live", "--config", configFile)).toMatchObject({ code: 0, stdout: "healthy: ok\n" });

    const table = await cli("status", "--config", configFile);
    expect(table.code).toBe(1);
    const lines = table.stdout.split("\n");
    expect(lines[0]).toMatch(/^QUEUE\s+STATE\s+TOKEN EXPIRES\s+LAST FETCH OK\s+BACKLOG\s+OLDEST WAITING\s+DEAD LETTERS\s+SPOOL$/);
    expect(lines[1]).toMatch(/^alpha\s+ok\s+in \d+h\d*m?\s+\d+s ago\s+0\s+-\s+0\s+\d+(\.\d)? K?B$/);
    expect(lines[2]).toMatch(/^locked\s+needs-password\s+no token yet\s+never\s+0\s+-\s+0\s+0 B$/);
    expect(table.stdout).toMatch(/^locked:\n {2}last error IDENTITY_BAD_PASSWORD \(.+\): Queue locked: .+\n {2}fix: \S.+$/m);

    const json = await cli("status", "--json", "--config", configFile);
    expect(json.code).toBe(1);
    const parsed = JSON.parse(json.stdout) as { ok: boolean; queues: Array<Record<string, any>> };
    expect(parsed.ok).toBe(false);
    expect(parsed.queues.map((q) => [q.queue, q.state, q.ok])).toEqual([
      ["alpha", "ok", true],
      ["locked", "needs-password", false],
    ]);
    expect(parsed.queues[0]).toMatchObject({ backlog: 0, deadLetters: 0, lastError: null, consecutiveFailures: 0 });
    expect(Date.parse(parsed.queues[0]!.tokenExpiresAt)).toBeGreaterThan(Date.now());
    expect(parsed.queues[1]!.lastError).toMatchObject({ code: "IDENTITY_BAD_PASSWORD", fix: expect.stringMatching(/\S/) });

    // Only the healthy queue configured: every queue ok, exit 0.
    const alphaOnly = await cli("status", "--config", alphaOnlyFile);
    expect(alphaOnly.code).toBe(0);
    expect(alphaOnly.stdout.trim().split("\n")).toHaveLength(2);
  });

  it("says what is wrong with its arguments or config", async () => {
    expect((await cli("status", "--bogus")).code).toBe(2);
    const missing = await cli("status", "--config", path.join(bed.dir, "nope.yaml"));
    expect(missing.code).toBe(78);
    expect(missing.stderr).toContain("Cannot read the config file");
    const noHttp = await cli("healthcheck", "--config", noHttpFile);
    expect(noHttp.code).toBe(1);
    expect(noHttp.stderr).toContain("no `http` block");
  });

  it("after the daemon stopped: unhealthy, and status still reads the state", async () => {
    expect(await daemon!.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    daemon = undefined;
    expect((await cli("healthcheck", "--config", configFile)).code).toBe(1);
    const status = await cli("status", "--config", configFile);
    expect(status.stdout).toMatch(/^alpha\s+ok\s/m);
  });
});
