/**
 * The webhook handler end to end: the daemon as its own process, fetching from the test bed's
 * Dovecot over XOAUTH2 and POSTing to a real HTTP receiver that fails the first requests with
 * 500. Every message must reach the receiver accepted exactly once (counted by webhook-id),
 * every request validly signed, and the signing key must appear in no log or state file.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { verifyStandardWebhook, WebhookReceiver } from "../../tools/testbed/helpers/webhook-receiver.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { listFiles, scanForSecrets } from "../../tools/testbed/helpers/secret-scan.js";

const QUEUE = { name: "orders", address: "orders@example.test", password: "orders-Pa55word!" };
const MESSAGES = 10;
const FAILING_REQUESTS = 4;
const SECRET = `whsec_${randomBytes(32).toString("base64")}`;

let bed: TestBed;
let receiver: WebhookReceiver;
let configFile: string;
let stateDir: string;

beforeAll(async () => {
  bed = await startTestBed();
  bed.identity.addUser({ username: QUEUE.address, password: QUEUE.password });
  receiver = await WebhookReceiver.start((_, index) => (index < FAILING_REQUESTS ? { status: 500, body: "warming up" } : { status: 200 }));
  const secretFile = path.join(bed.dir, "webhook.key");
  writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  stateDir = path.join(bed.dir, "state");
  configFile = bed.writeDaemonConfig({
    stateDir,
    logLevel: "debug",
    poll: "1s",
    queues: [{ name: QUEUE.name, address: QUEUE.address, password: QUEUE.password, handlers: [{ type: "webhook", url: receiver.url(), secretFile }] }],
  });
});

afterAll(async () => {
  await receiver?.close();
  await bed?.close();
});

/** webhook-id -> how many times the receiver accepted it (answered 2xx). */
function acceptedById(): Map<string, number> {
  const counts = new Map<string, number>();
  receiver.requests.forEach((request, index) => {
    if (index < FAILING_REQUESTS) return;
    const id = String(request.headers["webhook-id"]);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  });
  return counts;
}

describe("webhook delivery end to end", () => {
  it("delivers every message exactly once by id through 500s, signed, with no key in logs or state", async () => {
    const messages = sampleMessages(MESSAGES, { seed: "webhook-e2e", to: QUEUE.address });
    for (const m of messages) await bed.dovecot.deliver(QUEUE.address, m.raw);

    const daemon = new DaemonProcess(configFile);
    daemon.start();
    await daemon.waitFor(`${MESSAGES} accepted deliveries`, () => acceptedById().size >= MESSAGES);
    // A few more polls and retry rounds: nothing may be sent again.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(await daemon.stop("SIGTERM")).toEqual({ code: 0, signal: null });

    const accepted = acceptedById();
    expect(accepted.size).toBe(MESSAGES);
    expect([...accepted.values()].every((n) => n === 1)).toBe(true);
    expect(receiver.requests.length).toBe(MESSAGES + FAILING_REQUESTS);
    // The failed requests were retried under the same id.
    for (const failed of receiver.requests.slice(0, FAILING_REQUESTS)) expect(accepted.has(String(failed.headers["webhook-id"]))).toBe(true);

    // Each request verifies; the timestamps are checked against the time it arrived, roughly now.
    for (const request of receiver.requests) expect(verifyStandardWebhook(request, SECRET)).toBeUndefined();
    const documents = receiver.requests.slice(FAILING_REQUESTS).map((r) => JSON.parse(r.body.toString("utf8")));
    expect(new Set(documents.map((d) => d.messageId))).toEqual(new Set(messages.map((m) => m.messageId)));
    for (const d of documents) expect(accepted.has(d.id)).toBe(true);

    const retried = daemon.lines.filter((l) => l.msg === "delivery failed; will retry");
    expect(retried.length).toBe(FAILING_REQUESTS);
    expect(String(retried[0]!.reason)).toContain("HTTP 500");

    const logFile = path.join(bed.dir, "daemon.log");
    writeFileSync(logFile, daemon.rawOutput.join(""));
    expect(scanForSecrets([logFile, ...listFiles(stateDir)], [SECRET, SECRET.slice("whsec_".length), QUEUE.password])).toEqual([]);
  });
});
