/**
 * Network, server and handler faults, each against the real daemon process and a real
 * Dovecot: the IMAP server killed mid-fetch and mid-IDLE, the connection cut mid-literal by a
 * proxy, a slow server, and a webhook receiver down for a whole drain. Every phase ends with
 * every message delivered (lost = 0) and counts repeats.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startFaultProxy, type FaultProxy } from "../../tools/testbed/fault-proxy.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { WebhookReceiver } from "../../tools/testbed/helpers/webhook-receiver.js";
import { recordFigures } from "./figures.js";
import { deliveredIds } from "../../tools/testbed/helpers/directory-output.js";

let bed: TestBed;
let proxy: FaultProxy;
const rows: Array<Record<string, string | number | boolean>> = [];

beforeAll(async () => {
  bed = await startTestBed();
  proxy = await startFaultProxy(bed.dovecot.port);
});

afterAll(async () => {
  recordFigures("faults", rows);
  await proxy?.close();
  await bed?.close();
});

interface Phase {
  name: string;
  messages: Buffer[];
  options?: Record<string, unknown>;
  viaProxy?: boolean;
  handlers?: Array<Record<string, unknown>>;
}

/** Sets up one queue for a phase; returns its config and a count of its directory output. */
function phaseQueue(phase: Phase) {
  const address = `${phase.name}@example.test`;
  const password = `${phase.name}-password-1`;
  bed.identity.addUser({ username: address, password });
  const outDir = path.join(bed.dir, `out-${phase.name}`);
  const configFile = bed.writeDaemonConfig(
    {
      stateDir: path.join(bed.dir, `state-${phase.name}`),
      logLevel: "debug",
      poll: "1s",
      queues: [
        {
          name: phase.name,
          address,
          password,
          options: { ...phase.options, ...(phase.viaProxy ? { imap: { port: proxy.port } } : {}) },
          handlers: phase.handlers ?? [{ type: "directory", path: outDir }],
        },
      ],
    },
    path.join(bed.dir, `${phase.name}.yaml`),
  );
  const delivered = () => deliveredIds(outDir, phase.name).length;
  return { address, configFile, delivered };
}

function repeatsIn(daemons: DaemonProcess[]): { delivered: number; distinct: number } {
  const ids = daemons.flatMap((d) => d.lines).filter((l) => l.msg === "delivered").map((l) => `${l.handler}:${l.messageId}`);
  return { delivered: ids.length, distinct: new Set(ids).size };
}

const bigMessage = (n: number) =>
  Buffer.from(
    [
      `From: big${n}@example.net`,
      "To: q@example.test",
      `Subject: big ${n}`,
      `Message-ID: <big-${n}@faults.example>`,
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="b"',
      "",
      "--b",
      "Content-Type: text/plain",
      "",
      "see attached",
      "--b",
      'Content-Type: application/octet-stream; name="blob.bin"',
      "Content-Transfer-Encoding: base64",
      "",
      ...(Buffer.alloc(2 * 1024 * 1024, n).toString("base64").match(/.{1,76}/g) ?? []),
      "--b--",
      "",
    ].join("\r\n"),
  );

describe("faults", () => {
  it("IMAP server killed and restarted mid-fetch", { timeout: 300_000 }, async () => {
    const phase = { name: "killfetch", messages: sampleMessages(300, { seed: "killfetch", to: "killfetch@example.test" }).map((m) => m.raw) };
    const q = phaseQueue(phase);
    for (const m of phase.messages) await bed.dovecot.deliver(q.address, m);
    const daemon = new DaemonProcess(q.configFile);
    daemon.start();
    await daemon.waitFor("the drain to start", () => q.delivered() >= 20);
    await bed.dovecot.stop();
    const down = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await bed.dovecot.start();
    const back = Date.now();
    await daemon.waitFor("all 300 after the restart", () => q.delivered() === 300, 120_000);
    const recovered = Date.now();
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    const r = repeatsIn([daemon]);
    expect(r.distinct).toBe(300);
    rows.push({ fault: "IMAP server killed mid-fetch, back after 2 s", runs: 1, messages: 300, lost: 0, duplicated: r.delivered - r.distinct, recovered: true, secondsToRecover: (recovered - back) / 1000, secondsDown: (back - down) / 1000 });
  });

  it("connection cut mid-literal by a proxy, three times in a row", { timeout: 300_000 }, async () => {
    // IDLE off: only fetch sessions may take the planned cuts.
    const phase = { name: "midliteral", messages: [1, 2, 3, 4].map(bigMessage), viaProxy: true, options: { idle: false } };
    const q = phaseQueue(phase);
    for (const m of phase.messages) await bed.dovecot.deliver(q.address, m);
    const cutsBefore = proxy.cuts;
    proxy.cutAfterServerBytes(1_500_000, 3); // inside the first 2.8 MB literal
    const daemon = new DaemonProcess(q.configFile);
    const started = Date.now();
    daemon.start();
    await daemon.waitFor("the big messages despite the cuts", () => q.delivered() === 4, 120_000);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    expect(proxy.cuts - cutsBefore).toBe(3);
    const r = repeatsIn([daemon]);
    expect(r.distinct).toBe(4);
    rows.push({ fault: "connection cut mid-literal (3 cuts, 2.8 MB messages)", runs: 1, messages: 4, lost: 0, duplicated: r.delivered - r.distinct, recovered: true, secondsToRecover: (Date.now() - started) / 1000 });
  });

  it("a slow server (every chunk delayed 30 ms)", { timeout: 300_000 }, async () => {
    const phase = { name: "slow", messages: sampleMessages(40, { seed: "slow", to: "slow@example.test" }).map((m) => m.raw), viaProxy: true, options: { idle: false } };
    const q = phaseQueue(phase);
    for (const m of phase.messages) await bed.dovecot.deliver(q.address, m);
    proxy.setDelay(30);
    const daemon = new DaemonProcess(q.configFile);
    const started = Date.now();
    daemon.start();
    try {
      await daemon.waitFor("all 40 from the slow server", () => q.delivered() === 40, 180_000);
    } finally {
      proxy.setDelay(0);
    }
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    const r = repeatsIn([daemon]);
    expect(r.distinct).toBe(40);
    rows.push({ fault: "slow server (30 ms per chunk)", runs: 1, messages: 40, lost: 0, duplicated: r.delivered - r.distinct, recovered: true, secondsToRecover: (Date.now() - started) / 1000 });
  });

  it("IMAP server killed mid-IDLE", { timeout: 300_000 }, async () => {
    const mail = sampleMessages(6, { seed: "killidle", to: "killidle@example.test" }).map((m) => m.raw);
    const q = phaseQueue({ name: "killidle", messages: mail, options: { idle: true, poll: "1h" } });
    const daemon = new DaemonProcess(q.configFile);
    daemon.start();
    await daemon.waitFor("an IDLE session", () => daemon.lines.some((l) => l.msg === "IDLE session open"));
    for (const m of mail.slice(0, 3)) await bed.dovecot.deliver(q.address, m);
    await daemon.waitFor("the first three through IDLE", () => q.delivered() === 3);
    await bed.dovecot.stop();
    await bed.dovecot.start();
    const back = Date.now();
    for (const m of mail.slice(3)) await bed.dovecot.deliver(q.address, m);
    await daemon.waitFor("the rest through a new IDLE session", () => q.delivered() === 6, 60_000);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    const r = repeatsIn([daemon]);
    expect(r.distinct).toBe(6);
    rows.push({ fault: "IMAP server killed mid-IDLE (poll 1 h: IDLE only)", runs: 1, messages: 6, lost: 0, duplicated: r.delivered - r.distinct, recovered: true, secondsToRecover: (Date.now() - back) / 1000 });
  });

  it("a webhook receiver down for the whole drain, then back", { timeout: 300_000 }, async () => {
    let down = true;
    const receiver = await WebhookReceiver.start(() => (down ? { status: 503 } : { status: 200 }));
    try {
      const mail = sampleMessages(200, { seed: "outage", to: "outage@example.test" }).map((m) => m.raw);
      const q = phaseQueue({ name: "outage", messages: mail, handlers: [{ type: "webhook", url: receiver.url() }] });
      for (const m of mail) await bed.dovecot.deliver(q.address, m);
      const daemon = new DaemonProcess(q.configFile);
      daemon.start();
      const accepted = () => new Set(receiver.requests.filter((r) => r.headers["x-test-accepted"] !== "no").map((r) => String(r.headers["webhook-id"])));
      await daemon.waitFor("the whole drain to be spooled and tried", () => daemon.lines.filter((l) => l.msg === "delivery failed; will retry").length >= 200, 120_000);
      const failedAttempts = receiver.requests.length;
      down = false;
      const back = Date.now();
      const okIds = () => receiver.requests.slice(failedAttempts).map((r) => String(r.headers["webhook-id"]));
      await daemon.waitFor("every message once the receiver is back", () => new Set(okIds()).size === 200, 240_000);
      expect(await daemon.stop()).toEqual({ code: 0, signal: null });
      expect(accepted().size).toBe(200);
      const repeats = okIds().length - new Set(okIds()).size;
      expect(repeats).toBe(0); // a retried message is accepted once: the deliverer never sends an accepted one again
      rows.push({ fault: "webhook receiver answering 503 for the whole drain", runs: 1, messages: 200, lost: 0, duplicated: repeats, recovered: true, secondsToRecover: (Date.now() - back) / 1000 });
    } finally {
      await receiver.close();
    }
  });
});
