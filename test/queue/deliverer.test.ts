/**
 * The deliverer with a real spool (SQLite file), the real parse worker (dist/, so `npm run
 * build` first) and real handlers: a big attachment reaches handlers as a scratch file, never
 * as a buffer, the raw message as the spool file; the directory handler copies both byte for
 * byte; and the scratch directory is gone once the delivery round ends, delivered or not.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { MailfetchdError } from "../../src/errors.js";
import { DaemonEvents } from "../../src/events.js";
import { createDirectoryHandler } from "../../src/handlers/directory.js";
import type { DeliverableMessage, Handler } from "../../src/interfaces.js";
import { ParserPool } from "../../src/parse/parser-pool.js";
import { Deliverer } from "../../src/queue/deliverer.js";
import { MemoryBudget } from "../../src/queue/memory-budget.js";
import { bigMessage } from "../../tools/testbed/big-message.js";
import { openTempSpool } from "../../tools/testbed/helpers/temp-spool.js";
import { expectedStableId } from "../../tools/testbed/helpers/expected-id.js";
import { acceptImap, imap } from "../../tools/testbed/helpers/imap-messages.js";

const REAL_WORKER = new URL("../../dist/parse/parse-worker.js", import.meta.url);
const queue = { name: "support", address: "support@contoso.example" };
const logger = pino({ level: "silent" });
const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

interface Seen {
  readonly rawFile?: string;
  readonly rawSize: number;
  readonly attachmentFile?: string;
  readonly attachmentInMemory: boolean;
  readonly attachmentFileSha?: string;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setUp(handlers: Handler[]) {
  const { dir: stateDir, db, spool } = openTempSpool();
  const parser = new ParserPool({ workerUrl: REAL_WORKER });
  // Which queue each parse is asked for: the pool takes turns between queues by it.
  const parsedFor: Array<string | undefined> = [];
  const parseFile = parser.parseFile.bind(parser);
  parser.parseFile = (file, options) => {
    parsedFor.push(options?.queue);
    return parseFile(file, options);
  };
  const events = new DaemonEvents();
  const deliverer = new Deliverer(queue, { spool, parser, handlers: new Map(handlers.map((h) => [h.name, h])), events, logger });
  cleanups.push(
    () => void db.close(),
    () => parser.close(),
    () => deliverer.stop(),
  );
  // 4 MB with a ~3.5 MB attachment: above the 1 MB at which attachments go to scratch files.
  const big = bigMessage({ seed: "deliverer-test", to: queue.address, totalBytes: 4 * 1024 * 1024, htmlBytes: 100 * 1024 });
  const accepted = await acceptImap(
    spool,
    queue,
    { handlers: handlers.map((h) => h.name) },
    { folder: "INBOX", uidValidity: "1", uid: 1, size: big.raw.length, raw: big.raw },
  );
  return { stateDir, spool, events, deliverer, big, key: accepted.key, id: await expectedStableId(queue.address, big.raw), parsedFor };
}

function recorder(name: string, seen: Seen[], fail = false): Handler {
  return {
    name,
    async deliver(message: DeliverableMessage) {
      const [attachment] = message.parsed.attachments;
      seen.push({
        rawFile: message.raw.file,
        rawSize: message.raw.size,
        attachmentFile: attachment?.file,
        attachmentInMemory: attachment?.content !== undefined,
        attachmentFileSha: attachment?.file !== undefined ? sha256(readFileSync(attachment.file)) : undefined,
      });
      if (fail) throw new MailfetchdError("receiver down", { code: "HANDLER_FAILED", retryable: true });
    },
  };
}

const scratchEntries = (stateDir: string) =>
  existsSync(path.join(stateDir, "scratch", queue.name)) ? readdirSync(path.join(stateDir, "scratch", queue.name)) : [];

function waitFor(events: DaemonEvents, name: "delivered" | "delivery-failed", count: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    events.on(name, () => {
      if (++seen === count) resolve();
    });
  });
}

describe("Deliverer with a real spool, parse worker and handlers", () => {
  it("hands a big attachment over as a scratch file and the raw message as the spool file; the directory handler copies both exactly", async () => {
    const seen: Seen[] = [];
    const outDir = mkdtempSync(path.join(tmpdir(), "mailfetchd-deliverer-out-"));
    const { stateDir, spool, events, deliverer, big, key, id, parsedFor } = await setUp([recorder("recorder", seen), createDirectoryHandler({ path: outDir })]);
    const delivered = waitFor(events, "delivered", 2);
    deliverer.start();
    await delivered;
    expect(parsedFor).toEqual([queue.name]);

    expect(seen).toHaveLength(1);
    expect(seen[0]!.rawFile).toBe((await spool.rawFile(queue.name, key)).path);
    expect(seen[0]!.rawSize).toBe(big.raw.length);
    expect(seen[0]!.attachmentInMemory).toBe(false);
    expect(seen[0]!.attachmentFile?.startsWith(path.join(stateDir, "scratch", queue.name) + path.sep)).toBe(true);
    expect(seen[0]!.attachmentFileSha).toBe(big.attachmentSha256);

    const messageDir = path.join(outDir, queue.name, id);
    expect(readFileSync(path.join(messageDir, "message.eml")).equals(big.raw)).toBe(true);
    expect(sha256(readFileSync(path.join(messageDir, "attachments", big.attachmentFilename)))).toBe(big.attachmentSha256);
    // The spool's file is untouched by the copy, and the round's scratch directory is gone.
    expect(readFileSync((await spool.rawFile(queue.name, key)).path).equals(big.raw)).toBe(true);
    await expect.poll(() => scratchEntries(stateDir)).toEqual([]);
  });

  it("removes the scratch directory after a failed round too (a retry parses the spool file again)", async () => {
    const seen: Seen[] = [];
    const { stateDir, events, deliverer, big } = await setUp([recorder("flaky", seen, true)]);
    const failed = waitFor(events, "delivery-failed", 1);
    deliverer.start();
    await failed;
    await expect.poll(() => scratchEntries(stateDir)).toEqual([]);
    expect(seen[0]!.attachmentFileSha).toBe(big.attachmentSha256);
    expect(existsSync(seen[0]!.attachmentFile!)).toBe(false);
  });

  it("waits, rather than delivering a message without its attachments, while scratch files cannot be written", async () => {
    const seen: Seen[] = [];
    const { stateDir, events, deliverer, big } = await setUp([recorder("recorder", seen)]);
    // A file where the scratch directory goes: every scratch write fails (ENOTDIR), even as root.
    writeFileSync(path.join(stateDir, "scratch"), "in the way");
    const delivered = waitFor(events, "delivered", 1);
    deliverer.start();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(seen).toEqual([]);

    rmSync(path.join(stateDir, "scratch"));
    await delivered;
    expect(seen).toHaveLength(1);
    expect(seen[0]!.attachmentFileSha).toBe(big.attachmentSha256);
  });
});

describe("Deliverers of several queues sharing one delivery budget", () => {
  it("hold no more messages in flight together than the budget, and every queue gets its turn", async () => {
    const { db, spool } = openTempSpool();
    const parser = new ParserPool({ workerUrl: REAL_WORKER });
    const events = new DaemonEvents();
    const budget = new MemoryBudget({ messages: 3, bytes: 64 * 1024 * 1024 });
    let inFlight = 0;
    let maxInFlight = 0;
    const order: string[] = [];
    // Holds each message a moment, so that the queues' deliveries overlap.
    const slow: Handler = {
      name: "slow",
      async deliver(message) {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        order.push(message.queue.name);
        await new Promise((resolve) => setTimeout(resolve, 30));
        inFlight--;
      },
    };
    const queues = ["q1", "q2", "q3"].map((name) => ({ name, address: `${name}@contoso.example` }));
    const perQueue = 6;
    for (const q of queues) {
      for (let uid = 1; uid <= perQueue; uid++) {
        const raw = Buffer.from(`Message-ID: <${q.name}-${uid}@contoso.example>\r\nSubject: ${uid}\r\n\r\nbody ${uid}\r\n`);
        await spool.accept(q, { handlers: ["slow"] }, imap({ folder: "INBOX", uidValidity: "1", uid, size: raw.length, raw }));
      }
    }
    const deliverers = queues.map((q) => new Deliverer(q, { spool, parser, handlers: new Map([["slow", slow]]), events, logger, budget }));
    cleanups.push(
      () => void db.close(),
      () => parser.close(),
      ...deliverers.map((d) => () => d.stop()),
    );
    const delivered = waitFor(events, "delivered", queues.length * perQueue);
    for (const deliverer of deliverers) deliverer.start();
    await delivered;

    expect(maxInFlight).toBeLessThanOrEqual(3);
    expect(maxInFlight).toBeGreaterThan(1);
    // No queue waits for another to finish its backlog: each is served within the first rounds.
    expect(new Set(order.slice(0, 6))).toEqual(new Set(["q1", "q2", "q3"]));
    await expect.poll(() => budget.inUse).toEqual({ messages: 0, bytes: 0 });
  });
});
