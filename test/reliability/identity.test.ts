/**
 * Identity-endpoint faults with the daemon running: for each fault a new queue signs in while
 * the fault is on (down, HTTP 500, 429 with Retry-After, no answer, a refused password), and
 * a signed-in queue's refresh token is revoked or expires. The steady queue keeps delivering
 * throughout; an affected queue recovers once the fault passes, or sits in its documented
 * state (needs-password) without hammering the endpoint.
 */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { CLI, DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { recordFigures } from "./figures.js";
import { deliveredIds } from "../../tools/testbed/helpers/directory-output.js";

interface Queue {
  name: string;
  address: string;
  password: string;
}
const queue = (name: string): Queue => ({ name, address: `${name}@example.test`, password: `${name}-password-1` });
const STEADY = queue("steady");

let bed: TestBed;
let outDir: string;
let stateDir: string;
let configFile: string;
let daemon: DaemonProcess;
const queues: Queue[] = [STEADY];
const rows: Array<Record<string, string | number | boolean>> = [];

const writeConfig = () =>
  bed.writeDaemonConfig({
    stateDir,
    logLevel: "debug",
    poll: "1s",
    queues: queues.map((q) => ({ ...q, options: { idle: false }, handlers: [{ type: "directory", path: outDir }] })),
  });
const delivered = (name: string) => deliveredIds(outDir, name).length;
const statusJson = () => {
  try {
    return execFileSync(process.execPath, [CLI, "status", "--json", "--config", configFile], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch (error) {
    return String((error as { stdout: string }).stdout); // exit 1 when a queue needs attention
  }
};
const stateIn = (name: string) => (JSON.parse(statusJson()) as { queues: Array<{ queue: string; state: string }> }).queues.find((q) => q.queue === name)?.state;
let mailCounter = 0;
const mailTo = async (q: Queue) => {
  const [message] = sampleMessages(1, { seed: `identity-${mailCounter++}`, to: q.address });
  await bed.dovecot.deliver(q.address, message!.raw);
};

beforeAll(async () => {
  bed = await startTestBed();
  bed.identity.addUser({ username: STEADY.address, password: STEADY.password });
  outDir = path.join(bed.dir, "out");
  stateDir = path.join(bed.dir, "state");
  configFile = writeConfig();
  daemon = new DaemonProcess(configFile);
  daemon.start();
  await mailTo(STEADY);
  await daemon.waitFor("the steady queue", () => delivered(STEADY.name) === 1);
});

afterAll(async () => {
  recordFigures("identity", rows);
  if (daemon) expect(await daemon.stop()).toEqual({ code: 0, signal: null });
  await bed?.close();
});

/** Adds a queue while `fault` is on; checks steady delivers meanwhile; returns when `name` delivered. */
async function signInDuring(name: string, fault: () => void, during: (q: Queue) => Promise<void>) {
  const q = queue(name);
  bed.identity.addUser({ username: q.address, password: q.password });
  queues.push(q);
  fault();
  writeConfig();
  await mailTo(q);
  const steadyBefore = delivered(STEADY.name);
  daemon.signal("SIGHUP");
  await mailTo(STEADY);
  await daemon.waitFor("the steady queue during the fault", () => delivered(STEADY.name) === steadyBefore + 1, 60_000);
  await during(q);
  return q;
}

describe("identity endpoint faults", () => {
  for (const [name, label, fault, clear] of [
    ["down", "identity endpoint down (connections cut) for 4 s", () => bed.identity.setDown(true), () => bed.identity.setDown(false)],
    ["http500", "identity endpoint answering 500 (3 times)", () => bed.identity.failHttpNext({ status: 500 }, 3), () => {}],
    [
      "throttled",
      "identity endpoint answering 429, Retry-After 3 s (2 times)",
      () => bed.identity.failHttpNext({ status: 429, retryAfterSeconds: 3 }, 2),
      () => {},
    ],
    ["hang", "identity endpoint not answering (1 request, 30 s client timeout)", () => bed.identity.failHttpNext({ hang: true }, 1), () => {}],
  ] as const) {
    it(label, { timeout: 180_000 }, async () => {
      const q = await signInDuring(name, fault, async () => {
        await new Promise((resolve) => setTimeout(resolve, 4_000));
      });
      expect(delivered(q.name)).toBe(0);
      expect(["retrying", "starting", "unknown"]).toContain(stateIn(q.name));
      clear();
      const cleared = Date.now();
      await daemon.waitFor(`${name} to recover`, () => delivered(q.name) === 1, 150_000);
      rows.push({
        fault: label,
        runs: 1,
        messages: 1,
        lost: 0,
        duplicated: 0,
        recovered: true,
        secondsToRecover: (Date.now() - cleared) / 1000,
        otherQueuesAffected: false,
      });
    });
  }

  it("a refused password: needs-password, without hammering the endpoint", { timeout: 120_000 }, async () => {
    const q = await signInDuring(
      "badpassword",
      () => bed.identity.failNext(50126, { times: 1, grant: "password" }),
      async () => {},
    );
    await daemon.waitFor("needs-password", () => stateIn(q.name) === "needs-password", 60_000);
    const before = bed.identity.tokenRequests.filter((r) => r.username === q.address).length;
    await new Promise((resolve) => setTimeout(resolve, 6_000)); // six polls
    const after = bed.identity.tokenRequests.filter((r) => r.username === q.address).length;
    expect(after - before).toBe(0);
    expect(delivered(q.name)).toBe(0);
    rows.push({
      fault: "password refused (AADSTS50126)",
      runs: 1,
      messages: 1,
      lost: 0,
      duplicated: 0,
      recovered: false,
      secondsToRecover: "waits in needs-password (fix the password file)",
      otherQueuesAffected: false,
    });
  });

  for (const [name, label, kill] of [
    ["revoked", "refresh token revoked (AADSTS50173): fresh password sign-in", (user: string) => bed.identity.revokeRefreshTokens(user)],
    ["expired", "refresh token expired from inactivity (AADSTS700082): fresh password sign-in", (user: string) => bed.identity.expireRefreshTokens(user)],
  ] as const) {
    it(label, { timeout: 120_000 }, async () => {
      bed.identity.setAccessTokenLifetime(2); // so the queue must refresh soon
      const q = await signInDuring(
        name,
        () => {},
        async (added) => {
          await daemon.waitFor("the first sign-in", () => delivered(added.name) === 1, 60_000);
        },
      );
      bed.identity.setAccessTokenLifetime(4_500);
      kill(q.address);
      const killed = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 2_500)); // the access token runs out
      await mailTo(q);
      await daemon.waitFor(`${name}: delivery after a new sign-in`, () => delivered(q.name) === 2, 90_000);
      const grants = bed.identity.tokenRequests.filter((r) => r.username === q.address && r.grantType === "password" && r.at > killed);
      expect(grants.length).toBeGreaterThanOrEqual(1);
      rows.push({
        fault: label,
        runs: 1,
        messages: 2,
        lost: 0,
        duplicated: 0,
        recovered: true,
        secondsToRecover: (Date.now() - killed) / 1000,
        otherQueuesAffected: false,
      });
    });
  }

  it("the steady queue delivered everything sent to it, once", () => {
    const ids = daemon.lines.filter((l) => l.msg === "delivered" && l.queue === STEADY.name).map((l) => l.messageId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(delivered(STEADY.name));
  });
});
