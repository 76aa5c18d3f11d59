/**
 * A `source: graph` queue end to end: the daemon as its own process, the Graph and identity
 * stand-ins over HTTPS, real SQLite and the directory handler. Every message is delivered once
 * under the id its content gives, marked read only once spooled; and a queue that switches from
 * IMAP to Graph (Graph serving its own MIME rendering of the same mail) delivers nothing again.
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseContent, render } from "../../tools/testbed/message-renderings.js";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { WebhookReceiver } from "../../tools/testbed/helpers/webhook-receiver.js";
import { expectedStableId } from "../../tools/testbed/helpers/expected-id.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { deliveredIds } from "../../tools/testbed/helpers/directory-output.js";
import { scanForSecrets } from "../../tools/testbed/helpers/secret-scan.js";

let bed: TestBed;
let receiver: WebhookReceiver;

beforeAll(async () => {
  bed = await startTestBed();
  receiver = await WebhookReceiver.start();
});

afterAll(async () => {
  await receiver?.close();
  await bed?.close();
});

describe("a Graph queue end to end", () => {
  it("delivers every message once into a directory handler and marks each read only after spooling it", async () => {
    const queue = { name: "graph-e2e", address: "graph-e2e@example.test", password: "graph-e2e-Pa55!" };
    bed.identity.addUser({ username: queue.address, password: queue.password });
    bed.graph.addMailbox(queue.address);
    const outDir = path.join(bed.dir, "out");
    const configFile = bed.writeDaemonConfig(
      {
        stateDir: path.join(bed.dir, "state-graph"),
        logLevel: "debug",
        poll: "1s",
        queues: [{ ...queue, options: { source: "graph", afterSpool: "seen" }, handlers: [{ type: "directory", path: outDir }] }],
      },
      path.join(bed.dir, "graph.yaml"),
    );
    const messages = sampleMessages(30, { seed: "graph-e2e", to: queue.address });
    const expected = new Set(await Promise.all(messages.map((m) => expectedStableId(queue.address, m.raw))));
    for (const m of messages.slice(0, 20)) bed.graph.putMessage(queue.address, "inbox", m.raw);

    const daemon = new DaemonProcess(configFile);
    daemon.start();
    try {
      await daemon.waitFor("the first 20", () => deliveredIds(outDir, queue.name).length >= 20);
      for (const m of messages.slice(20)) bed.graph.putMessage(queue.address, "inbox", m.raw);
      await daemon.waitFor("all 30", () => deliveredIds(outDir, queue.name).length >= 30);
      await daemon.waitFor("all 30 marked read", () => bed.graph.messages(queue.address, "inbox").every((m) => m.isRead));
      await new Promise((resolve) => setTimeout(resolve, 2_500)); // a few more polls: nothing new may appear
    } finally {
      expect(await daemon.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    }
    expect(new Set(deliveredIds(outDir, queue.name))).toEqual(expected);
    const actions = bed.graph.actions.filter((a) => a.mailbox === queue.address);
    expect(new Set(actions.map((a) => a.id)).size).toBe(30);
    // Marked read after it was spooled: the spool's log line comes first for every message.
    const requests = bed.graph.requests.filter((r) => r.mailbox === queue.address);
    expect(requests.every((r) => r.immutableIds)).toBe(true);
    for (const action of actions) {
      const downloaded = requests.find((r) => r.path.endsWith(`/messages/${action.id}/$value`) && r.status === 200);
      expect(downloaded && downloaded.at <= action.at).toBe(true);
    }
    const logFile = path.join(bed.dir, "graph-e2e.log");
    writeFileSync(logFile, daemon.rawOutput.join(""));
    expect(scanForSecrets([logFile], [...bed.identity.secretsIssued])).toEqual([]);
    expect(daemon.rawOutput.join("")).not.toMatch(/deltatoken|skiptoken/);
  });

  it("gives the same message one id over IMAP and over Graph: switching a queue's source delivers nothing again", async () => {
    const queue = { name: "switcher", address: "switcher@example.test", password: "switcher-Pa55!" };
    bed.identity.addUser({ username: queue.address, password: queue.password });
    bed.graph.addMailbox(queue.address);
    const stateDir = path.join(bed.dir, "state-switch");
    const handlers = [{ type: "webhook", url: receiver.url(), timeout: "10s" }];
    const config = (source: "imap" | "graph") =>
      bed.writeDaemonConfig(
        { stateDir, poll: "1s", queues: [{ ...queue, options: { source, idle: false }, handlers }] },
        path.join(bed.dir, `switch-${source}.yaml`),
      );
    // The same mail in both: Dovecot has one rendering, Graph serves another (as Exchange re-renders MIME).
    const contents = Array.from({ length: 5 }, (_, i) => baseContent(`switch-${i}`, queue.address));
    for (const content of contents) {
      await bed.dovecot.deliver(queue.address, render(content, "a"));
      bed.graph.putMessage(queue.address, "inbox", render(content, "b"));
    }
    const received = () => receiver.requests.map((r) => String(r.headers["webhook-id"]));

    const overImap = new DaemonProcess(config("imap"));
    overImap.start();
    await overImap.waitFor("5 deliveries over IMAP", () => received().length >= 5);
    expect(await overImap.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    const idsOverImap = new Set(received());
    expect(idsOverImap.size).toBe(5);

    const overGraph = new DaemonProcess(config("graph"));
    overGraph.start();
    // Each copy fetched over Graph is parsed and recognised as a repeat of the IMAP copy.
    await overGraph.waitFor(
      "all 5 recognised as repeats",
      () => overGraph.lines.filter((l) => l.msg.startsWith("same content as a message already in the spool")).length >= 5,
    );
    expect(await overGraph.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(received()).toHaveLength(5);
    for (const content of contents) expect(idsOverImap).toContain(await expectedStableId(queue.address, render(content, "b")));
  });
});
