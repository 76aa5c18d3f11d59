/**
 * The state-store conformance suite: the contract of every port in src/store/ports.ts, written
 * once and run against every adapter (test/store/sqlite-store.test.ts; PostgreSQL runs the same).
 * Adapter-agnostic: it speaks only through the ports, never SQL. Each test opens a fresh store.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { MessageLocation } from "../../src/source/message-location.js";
import { StreamSourceError } from "../../src/spool/spool-file-writer.js";
import type { CursorEntry, MessageEntry, StateStore } from "../../src/store/ports.js";

export interface OpenedStore {
  readonly store: StateStore;
  close(): Promise<void>;
}

const Q = "desk";
const OTHER = "sales";
const FOLDER = "INBOX";

function location(item: string, folder = FOLDER): MessageLocation {
  return { kind: "imap", folder, item };
}

/** A message entry of queue `Q` at item `item`, with two handlers unless told. */
function message(item: string, overrides: Partial<MessageEntry> = {}): MessageEntry {
  const queue = overrides.queue ?? Q;
  return {
    type: "message",
    queue,
    key: `${queue}-${item}`,
    location: location(item),
    written: true,
    size: 100,
    contentSha256: sha(`${queue}-${item}`),
    handlers: ["hook", "dir"],
    ...overrides,
  };
}

function cursor(position: string, queue = Q): CursorEntry {
  return { type: "cursor", queue, kind: "imap", folder: FOLDER, position };
}

function sha(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

const FAR = () => Date.now() + 60_000;

async function* chunks(...parts: string[]): AsyncIterable<Buffer> {
  for (const part of parts) yield Buffer.from(part);
}

async function* failing(): AsyncIterable<Buffer> {
  yield Buffer.from("From: a@example.org\r\n");
  throw new Error("connection reset by the server");
}

export function describeStateStore(name: string, open: () => Promise<OpenedStore>): void {
  describe(`state store conformance: ${name}`, () => {
    let opened: OpenedStore | undefined;
    let store: StateStore;

    beforeEach(async () => {
      opened = await open();
      store = opened.store;
    });
    afterEach(async () => {
      await opened?.close();
      opened = undefined;
    });

    describe("messages and cursors", () => {
      it("commits messages and cursor entries in order, in one go, and says which created a row", async () => {
        const results = await store.messages.commit([message("1:1", { cursor: "1:1" }), message("1:2", { cursor: "1:2" }), cursor("1:5")]);
        expect(results).toEqual([true, true, false]);
        expect(await store.messages.cursor(Q, "imap", FOLDER)).toBe("1:5");
        const due = await store.deliveries.due(Q, FAR(), 10);
        expect(due.map((d) => [d.location.item, d.handler])).toEqual([
          ["1:1", "dir"],
          ["1:1", "hook"],
          ["1:2", "dir"],
          ["1:2", "hook"],
        ]);
        expect(due[0]!.seq).toBeLessThan(due[2]!.seq);
        expect(await store.messages.isSpooled(Q, location("1:1"))).toBe(true);
        expect(await store.messages.isSpooled(Q, location("1:3"))).toBe(false);
        expect(await store.messages.isSpooled(OTHER, location("1:1"))).toBe(false);
      });

      it("records all entries of a commit or none: one failing entry leaves no row, no action and no cursor behind", async () => {
        await store.messages.commit([cursor("1:0")]);
        const broken = message("1:3", { handlers: ["hook", "hook"] }); // a handler named twice cannot be recorded
        await expect(
          store.messages.commit([message("1:1", { cursor: "1:1", serverAction: { action: "seen" } }), cursor("1:2"), broken, cursor("1:9")]),
        ).rejects.toThrow();
        expect(await store.messages.cursor(Q, "imap", FOLDER)).toBe("1:0");
        expect(await store.messages.isSpooled(Q, location("1:1"))).toBe(false);
        expect(await store.deliveries.backlog(Q)).toBe(0);
        expect(await store.serverActions.pending(Q, "imap", FOLDER)).toEqual([]);
        // The store is usable after the failure.
        expect(await store.messages.commit([message("1:1")])).toEqual([true]);
      });

      it("creates no row for a location already spooled, but records its owed action (once) and its cursor", async () => {
        await store.messages.commit([message("1:1", { serverAction: { action: "move", target: "Done" } })]);
        const again = await store.messages.commit([
          message("1:1", { key: "another-key", cursor: "1:1", serverAction: { action: "move", target: "Done" } }),
          message("1:1", { written: false, serverAction: { action: "seen" } }),
        ]);
        expect(again).toEqual([false, false]);
        expect(await store.deliveries.backlog(Q)).toBe(2);
        expect(await store.messages.cursor(Q, "imap", FOLDER)).toBe("1:1");
        expect(await store.serverActions.pending(Q, "imap", FOLDER)).toEqual([{ item: "1:1", action: "move", target: "Done" }]);
      });

      it("keeps owed actions per folder in the order they were owed, and removes those done", async () => {
        await store.messages.commit([
          message("1:2", { serverAction: { action: "delete" } }),
          message("1:1", { serverAction: { action: "seen" } }),
          message("1:3", { serverAction: { action: "move", target: "Archive" } }),
          message("7:1", { location: location("7:1", "Other"), serverAction: { action: "seen" } }),
        ]);
        expect(await store.serverActions.pending(Q, "imap", FOLDER)).toEqual([
          { item: "1:2", action: "delete" },
          { item: "1:1", action: "seen" },
          { item: "1:3", action: "move", target: "Archive" },
        ]);
        expect(await store.serverActions.done(Q, "imap", FOLDER, ["1:2", "1:3", "1:404"])).toBe(2);
        expect(await store.serverActions.pending(Q, "imap", FOLDER)).toEqual([{ item: "1:1", action: "seen" }]);
        expect(await store.serverActions.pending(Q, "imap", "Other")).toEqual([{ item: "7:1", action: "seen" }]);
        expect(await store.serverActions.pending(OTHER, "imap", FOLDER)).toEqual([]);
      });

      it("keeps a cursor per queue, kind and folder; restartCursor sets it outright", async () => {
        expect(await store.messages.cursor(Q, "imap", FOLDER)).toBeUndefined();
        await store.messages.commit([cursor("5:10"), cursor("9:1", OTHER)]);
        await store.messages.restartCursor(Q, "imap", "Other", "3:0");
        expect(await store.messages.cursor(Q, "imap", FOLDER)).toBe("5:10");
        expect(await store.messages.cursor(OTHER, "imap", FOLDER)).toBe("9:1");
        expect(await store.messages.cursor(Q, "imap", "Other")).toBe("3:0");
        expect(await store.messages.cursor(Q, "graph", FOLDER)).toBeUndefined();
        await store.messages.restartCursor(Q, "imap", FOLDER, "6:0");
        expect(await store.messages.cursor(Q, "imap", FOLDER)).toBe("6:0");
      });

      it("gives a stable id once: first assigned wins, a repeat's pending deliveries end as 'repeat', ids never change", async () => {
        await store.messages.commit([message("1:1", { contentSha256: sha("same") }), message("2:1", { contentSha256: sha("same") }), message("2:2")]);
        const [a, b, c] = uniqueSeqs(await store.deliveries.due(Q, FAR(), 10));
        // The later copy is parsed first: it is the one delivered.
        expect(await store.messages.assignStableId(Q, b!, sha("same"), "id-same")).toEqual({ stableId: "id-same" });
        expect(await store.messages.assignStableId(Q, a!, sha("same"), "id-same")).toEqual({ stableId: "id-same", repeatOf: b });
        expect((await store.deliveries.due(Q, FAR(), 10)).map((d) => d.seq)).not.toContain(a);
        // Same content id, other bytes: a repeat too.
        const sameId = await store.messages.assignStableId(Q, c!, sha("other bytes"), "id-same");
        expect(sameId.stableId).toBe("id-same");
        expect([a, b]).toContain(sameId.repeatOf);
        expect(await store.deliveries.backlog(Q)).toBe(2);
        // Asked again, with another content id: the id handed out stays.
        expect(await store.messages.assignStableId(Q, b!, sha("same"), "id-changed")).toEqual({ stableId: "id-same" });
        expect((await store.deliveries.due(Q, FAR(), 10)).every((d) => d.stableId === "id-same")).toBe(true);
      });

      it("never takes another queue's message, nor a headers-only one, as the original of a repeat", async () => {
        await store.messages.commit([
          message("1:1", { queue: OTHER, contentSha256: sha("x") }),
          message("1:2", { contentSha256: sha("x"), headersOnly: { stableId: "hdr-id", reason: "too large" } }),
          message("1:3", { contentSha256: sha("x") }),
        ]);
        const [other] = uniqueSeqs(await store.deliveries.due(OTHER, FAR(), 10));
        expect(await store.messages.assignStableId(OTHER, other!, sha("x"), "hdr-id")).toEqual({ stableId: "hdr-id" });
        const [mine] = uniqueSeqs(await store.deliveries.due(Q, FAR(), 10));
        expect(await store.messages.assignStableId(Q, mine!, sha("x"), "hdr-id")).toEqual({ stableId: "hdr-id" });
      });
    });

    describe("deliveries", () => {
      it("hands out due deliveries oldest message first, then by handler, within the limit", async () => {
        await store.messages.commit([
          message("1:1", { handlers: ["b", "a"], internalDate: 1_700_000_000_000, size: 321 }),
          message("1:2", { handlers: ["a"] }),
        ]);
        await store.messages.commit([message("1:3", { queue: OTHER, handlers: ["a"] })]);
        const due = await store.deliveries.due(Q, Date.now(), 2);
        expect(due.map((d) => [d.location.item, d.handler])).toEqual([
          ["1:1", "a"],
          ["1:1", "b"],
        ]);
        expect(due[0]).toMatchObject({ spoolKey: `${Q}-1:1`, contentSha256: sha(`${Q}-1:1`), attempts: 0, location: location("1:1"), size: 321 });
        expect(due[0]!.stableId).toBeUndefined();
        expect(due[0]!.internalDate?.getTime()).toBe(1_700_000_000_000);
        expect((await store.deliveries.due(Q, Date.now(), 10)).length).toBe(3);
        expect(await store.deliveries.backlog(Q)).toBe(3);
        expect(await store.deliveries.backlog(OTHER)).toBe(1);
        expect(await store.deliveries.backlog("nobody")).toBe(0);
      });

      it("marks deliveries delivered, retried later or dead; nextDueAt follows", async () => {
        expect(await store.deliveries.nextDueAt(Q)).toBeUndefined();
        await store.messages.commit([message("1:1", { handlers: ["a", "b", "c"] })]);
        const [seq] = uniqueSeqs(await store.deliveries.due(Q, Date.now(), 10));
        expect(await store.deliveries.nextDueAt(Q)).toBe(0);
        await store.deliveries.markDelivered([{ seq: seq!, handler: "a" }]);
        const later = Date.now() + 30_000;
        await store.deliveries.markRetry(seq!, "b", "HTTP 503", later);
        await store.deliveries.markDead(seq!, "c", "rejected: 400");
        expect(await store.deliveries.due(Q, Date.now(), 10)).toEqual([]);
        expect(await store.deliveries.backlog(Q)).toBe(1);
        expect(await store.deliveries.nextDueAt(Q)).toBe(later);
        const retried = await store.deliveries.due(Q, later, 10);
        expect(retried.map((d) => [d.handler, d.attempts])).toEqual([["b", 1]]);
        expect(await store.deadLetters.list(Q)).toMatchObject([{ handler: "c", attempts: 1, reason: "rejected: 400" }]);
        await store.deliveries.markDelivered([{ seq: seq!, handler: "b" }]);
        expect(await store.deliveries.nextDueAt(Q)).toBeUndefined();
      });
    });

    describe("dead letters", () => {
      it("lists, counts, retries (all handlers or one) and drops dead deliveries by stable id or spool key", async () => {
        await store.messages.commit([
          message("1:1", { handlers: ["a", "b"], headerMessageId: "<m1@example.org>", size: 500 }),
          message("1:2", { handlers: ["a"] }),
        ]);
        const [first, second] = uniqueSeqs(await store.deliveries.due(Q, Date.now(), 10));
        await store.messages.assignStableId(Q, first!, sha(`${Q}-1:1`), "id-1");
        for (const handler of ["a", "b"]) await store.deliveries.markDead(first!, handler, `${handler} failed`);
        await store.deliveries.markDead(second!, "a", "a failed");
        const letters = await store.deadLetters.list();
        expect(letters.map((l) => [l.id, l.handler])).toEqual([
          ["id-1", "a"],
          ["id-1", "b"],
          [`${Q}-1:2`, "a"],
        ]);
        expect(letters[0]).toMatchObject({
          queue: Q,
          spoolKey: `${Q}-1:1`,
          attempts: 1,
          reason: "a failed",
          location: location("1:1"),
          size: 500,
          headerMessageId: "<m1@example.org>",
          headersOnly: false,
        });
        expect(letters[0]!.spooledAt.getTime()).toBeGreaterThan(Date.now() - 60_000);
        expect(letters[2]!.headerMessageId).toBeUndefined();
        expect(await store.deadLetters.list(OTHER)).toEqual([]);
        expect(await store.deadLetters.count(Q)).toBe(3);

        const rewind = () => {
          throw new Error("only a headers-only message is rewound");
        };
        expect(await store.deadLetters.retry(Q, "id-1", "b", rewind)).toBe(1);
        expect((await store.deliveries.due(Q, Date.now(), 10)).map((d) => [d.seq, d.handler, d.attempts])).toEqual([[first, "b", 0]]);
        expect(await store.deadLetters.retry(Q, `${Q}-1:2`, undefined, rewind)).toBe(1);
        expect(await store.deadLetters.retry(OTHER, "id-1", undefined, rewind)).toBe(0);
        expect(await store.deadLetters.count(Q)).toBe(1);

        expect(await store.deadLetters.drop(Q, "id-1")).toBe(1);
        expect(await store.deadLetters.drop(Q, "id-1")).toBe(0);
        expect(await store.deadLetters.count(Q)).toBe(0);
      });

      it("retries a headers-only message by marking it to be fetched again and rewinding its folder's cursor, in one go", async () => {
        await store.messages.commit([
          message("4:7", { size: 90_000_000, headersOnly: { stableId: "big-id", reason: "message is 85.8 MB, above the cap" }, cursor: "4:7" }),
          message("4:8", { cursor: "4:8" }),
        ]);
        expect(await store.deadLetters.list(Q)).toMatchObject([
          { id: "big-id", handler: "dir", headersOnly: true, reason: "message is 85.8 MB, above the cap", attempts: 0 },
          { id: "big-id", handler: "hook", headersOnly: true },
        ]);
        const asked: Array<[MessageLocation, string | undefined]> = [];
        const changed = await store.deadLetters.retry(Q, "big-id", undefined, (where, current) => {
          asked.push([where, current]);
          return "4:6";
        });
        expect(changed).toBe(2);
        expect(asked).toEqual([[location("4:7"), "4:8"]]);
        expect(await store.messages.cursor(Q, "imap", FOLDER)).toBe("4:6");
        expect(await store.messages.isSpooled(Q, location("4:7"))).toBe(false);
        expect(await store.messages.isSpooled(Q, location("4:8"))).toBe(true);
        expect(await store.deadLetters.count(Q)).toBe(0);

        // Fetched again under a raised cap: the row is taken over and keeps its stable id.
        expect(await store.messages.commit([message("4:7", { size: 90_000_000, contentSha256: sha("whole"), cursor: "4:7" })])).toEqual([true]);
        expect(await store.messages.isSpooled(Q, location("4:7"))).toBe(true);
        const due = (await store.deliveries.due(Q, Date.now(), 10)).filter((d) => d.location.item === "4:7");
        expect(due.map((d) => [d.handler, d.stableId, d.contentSha256])).toEqual([
          ["dir", "big-id", sha("whole")],
          ["hook", "big-id", sha("whole")],
        ]);
        expect(await store.messages.assignStableId(Q, due[0]!.seq, sha("whole"), "another-id")).toEqual({ stableId: "big-id" });
      });

      it("leaves the cursor alone when the rewind has nothing to say", async () => {
        await store.messages.commit([message("4:7", { headersOnly: { stableId: "big-id", reason: "too large" }, cursor: "4:9" })]);
        // The whole message is fetched again, whichever handler was named: both deliveries go.
        expect(await store.deadLetters.retry(Q, "big-id", "hook", () => undefined)).toBe(2);
        expect(await store.messages.cursor(Q, "imap", FOLDER)).toBe("4:9");
        expect(await store.messages.isSpooled(Q, location("4:7"))).toBe(false);
      });
    });

    describe("retention and totals", () => {
      it("prunes only messages whose every delivery is done, keeps tombstones, forgets pruned rows", async () => {
        await store.messages.commit([
          message("1:1", { handlers: ["a"], size: 10 }),
          message("1:2", { handlers: ["a", "b"], size: 20 }),
          message("1:3", { handlers: ["a"], size: 40 }),
          message("1:4", { handlers: ["a"], size: 80, queue: OTHER }),
        ]);
        const due = await store.deliveries.due(Q, Date.now(), 10);
        const [one, two, three] = uniqueSeqs(due);
        await store.deliveries.markDelivered([
          { seq: one!, handler: "a" },
          { seq: two!, handler: "a" },
        ]);
        await store.deliveries.markDead(three!, "a", "broken");
        await store.deadLetters.drop(Q, `${Q}-1:3`);
        await store.messages.assignStableId(Q, two!, sha(`${Q}-1:2`), "id-2");
        expect(await store.retention.prunable(Date.now() - 60_000, 10)).toEqual([]);
        const prunable = await store.retention.prunable(FAR(), 10);
        expect(prunable).toEqual([
          { seq: one, queue: Q, key: `${Q}-1:1` },
          { seq: three, queue: Q, key: `${Q}-1:3` },
        ]);
        expect(await store.retention.prunable(FAR(), 1)).toEqual([prunable[0]]);

        const before = await store.retention.totals();
        expect(before.get(Q)).toEqual({ backlog: 1, deadLetters: 0, spoolBytes: 70 });
        expect(before.get(OTHER)).toEqual({ backlog: 1, deadLetters: 0, spoolBytes: 80 });
        await store.retention.markPruned(one!);
        expect((await store.retention.prunable(FAR(), 10)).map((p) => p.seq)).toEqual([three]);
        expect((await store.retention.totals()).get(Q)).toEqual({ backlog: 1, deadLetters: 0, spoolBytes: 60 });
        expect(await store.messages.isSpooled(Q, location("1:1"))).toBe(true); // the tombstone still names the location

        expect(await store.retention.forget(Date.now() - 60_000)).toBe(0);
        expect(await store.retention.forget(FAR())).toBe(1);
        expect(await store.messages.isSpooled(Q, location("1:1"))).toBe(false);
      });

      it("counts dead letters in the totals and leaves out queues with nothing to count", async () => {
        expect((await store.retention.totals()).size).toBe(0);
        await store.messages.commit([message("1:1", { handlers: ["a", "b"] })]);
        const [seq] = uniqueSeqs(await store.deliveries.due(Q, Date.now(), 10));
        await store.deliveries.markDead(seq!, "a", "x");
        expect((await store.retention.totals()).get(Q)).toEqual({ backlog: 1, deadLetters: 1, spoolBytes: 100 });
        expect([...(await store.retention.totals()).keys()]).toEqual([Q]);
      });

      it("tells per queue when its oldest message still waiting was spooled (dead letters do not wait)", async () => {
        expect((await store.retention.oldestUndelivered()).size).toBe(0);
        const start = Date.now();
        await store.messages.commit([message("1:1", { handlers: ["a"] })]);
        await store.messages.commit([message("1:2", { handlers: ["a"] }), message("1:3", { queue: OTHER, handlers: ["a"] })]);
        const oldest = await store.retention.oldestUndelivered();
        expect(oldest.get(Q)!.getTime()).toBeGreaterThanOrEqual(start - 1_000);
        expect(oldest.get(Q)!.getTime()).toBeLessThanOrEqual(Date.now());
        expect(oldest.has(OTHER)).toBe(true);
        const [seq] = uniqueSeqs(await store.deliveries.due(OTHER, Date.now(), 10));
        await store.deliveries.markDead(seq!, "a", "x");
        expect((await store.retention.oldestUndelivered()).has(OTHER)).toBe(false);
      });
    });

    describe("raw message bytes", () => {
      const bytes = Buffer.from("From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n");

      it("writes a buffer durably and gives back its head and sha256; reads it, as bytes and as a local file", async () => {
        const written = await store.raw.write(Q, "k1", bytes, 10);
        expect(written.head).toEqual(bytes.subarray(0, 10));
        expect(written.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
        expect(await store.raw.read(Q, "k1")).toEqual(bytes);
        const local = await store.raw.localFile(Q, "k1");
        try {
          expect(await readFile(local.path)).toEqual(bytes);
        } finally {
          await local.release();
        }
        expect((await store.raw.write(Q, "short", Buffer.from("abc"), 10)).head).toEqual(Buffer.from("abc"));
      });

      it("writes a stream as it comes; a key written again is replaced; remove forgets it", async () => {
        const written = await store.raw.write(Q, "k2", chunks("From: a@example.org\r\n", "Subject: streamed\r\n\r\n", "body"), 25);
        const whole = Buffer.from("From: a@example.org\r\nSubject: streamed\r\n\r\nbody");
        expect(written.head).toEqual(whole.subarray(0, 25));
        expect(written.sha256).toBe(createHash("sha256").update(whole).digest("hex"));
        expect(await store.raw.read(Q, "k2")).toEqual(whole);
        await store.raw.write(Q, "k2", bytes, 10);
        expect(await store.raw.read(Q, "k2")).toEqual(bytes);
        await store.raw.write(OTHER, "k2", Buffer.from("other queue"), 10);
        expect(await store.raw.read(Q, "k2")).toEqual(bytes);
        await store.raw.remove(Q, "k2");
        await expect(store.raw.read(Q, "k2")).rejects.toThrow();
        await store.raw.remove(Q, "k2"); // removing what is gone is fine
        expect(await store.raw.read(OTHER, "k2")).toEqual(Buffer.from("other queue"));
      });

      it("wraps a failure of the stream itself in StreamSourceError and keeps nothing of it", async () => {
        const error = await store.raw.write(Q, "k3", failing(), 10).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StreamSourceError);
        expect((error as StreamSourceError).cause).toEqual(new Error("connection reset by the server"));
        await expect(store.raw.read(Q, "k3")).rejects.toThrow();
      });
    });

    describe("queue status", () => {
      it("records successes, failures (counted in a row) and token expiry; forgets queues no longer configured", async () => {
        expect(await store.queueStatus.get(Q)).toBeUndefined();
        const t1 = new Date(1_700_000_000_000);
        await store.queueStatus.recordTokenExpiry(Q, new Date(1_700_000_360_000));
        expect(await store.queueStatus.get(Q)).toMatchObject({
          queue: Q,
          state: "starting",
          consecutiveFailures: 0,
          tokenExpiresAt: new Date(1_700_000_360_000),
        });
        await store.queueStatus.recordSuccess(Q, t1);
        expect(await store.queueStatus.get(Q)).toMatchObject({
          state: "ok",
          lastSuccessAt: t1,
          consecutiveFailures: 0,
          tokenExpiresAt: new Date(1_700_000_360_000),
        });
        const failure = { code: "IMAP_UNAVAILABLE", message: "connection refused", fix: "check the network" };
        expect(await store.queueStatus.recordFailure(Q, "retrying", failure, new Date(t1.getTime() + 1_000))).toBe(1);
        expect(
          await store.queueStatus.recordFailure(Q, "needs-sign-in", { code: "IDENTITY_NEEDS_SIGN_IN", message: "sign in" }, new Date(t1.getTime() + 2_000)),
        ).toBe(2);
        const status = (await store.queueStatus.get(Q))!;
        expect(status).toMatchObject({ state: "needs-sign-in", consecutiveFailures: 2, lastSuccessAt: t1 });
        expect(status.lastError).toEqual({ code: "IDENTITY_NEEDS_SIGN_IN", message: "sign in", at: new Date(t1.getTime() + 2_000) });
        expect(status.updatedAt.getTime()).toBe(t1.getTime() + 2_000);
        await store.queueStatus.recordSuccess(Q, new Date(t1.getTime() + 3_000));
        expect(await store.queueStatus.get(Q)).toMatchObject({ state: "ok", consecutiveFailures: 0 });

        await store.queueStatus.recordFailure(OTHER, "misconfigured", failure, t1);
        expect((await store.queueStatus.all()).map((s) => s.queue).sort()).toEqual([Q, OTHER].sort());
        expect((await store.queueStatus.get(OTHER))!.lastError).toEqual({ ...failure, at: t1 });
        await store.queueStatus.retain([OTHER]);
        expect((await store.queueStatus.all()).map((s) => s.queue)).toEqual([OTHER]);
      });
    });

    describe("activity", () => {
      it("adds counts to the stored ones, reads hours in a range and forgets hours before keepFrom", async () => {
        const row = (hour: number, queue: string, delivered: number) => ({ hour, queue, delivered, deliveryFailures: 1, fetchFailures: 2 });
        await store.activity.add([row(100, Q, 3), row(101, Q, 1), row(101, OTHER, 5)], 90);
        await store.activity.add([row(101, Q, 2)], 90);
        const byKey = (rows: Awaited<ReturnType<StateStore["activity"]["hours"]>>) =>
          rows.map((r) => `${r.hour}/${r.queue}/${r.delivered}/${r.deliveryFailures}/${r.fetchFailures}`).sort();
        expect(byKey(await store.activity.hours(100, 101))).toEqual([`100/${Q}/3/1/2`, `101/${OTHER}/5/1/2`, `101/${Q}/3/2/4`].sort());
        expect(byKey(await store.activity.hours(101, 200))).toEqual([`101/${OTHER}/5/1/2`, `101/${Q}/3/2/4`].sort());
        await store.activity.add([row(102, Q, 1)], 101);
        expect(byKey(await store.activity.hours(0, 200))).toEqual([`101/${OTHER}/5/1/2`, `101/${Q}/3/2/4`, `102/${Q}/1/1/2`].sort());
        await store.activity.add([], 200);
        expect(await store.activity.hours(0, 300)).toEqual([]);
      });
    });

    describe("token caches", () => {
      it("writes only while the row is as it was read: absent, at a version, or regardless", async () => {
        expect(await store.tokenCaches.read(Q)).toBeUndefined();
        const v1 = await store.tokenCaches.write(Q, "key-a", Buffer.from("sealed-1"), undefined);
        expect(v1).toBeGreaterThan(0);
        expect(await store.tokenCaches.read(Q)).toEqual({ keyId: "key-a", sealed: Buffer.from("sealed-1"), updatedAt: v1 });
        // Expected absent, but a row is there now: nothing written.
        expect(await store.tokenCaches.write(Q, "key-a", Buffer.from("lost"), undefined)).toBeUndefined();
        const v2 = await store.tokenCaches.write(Q, "key-b", Buffer.from("sealed-2"), v1);
        expect(v2).toBeGreaterThan(v1!);
        expect(await store.tokenCaches.write(Q, "key-b", Buffer.from("stale"), v1)).toBeUndefined();
        expect(await store.tokenCaches.read(Q)).toEqual({ keyId: "key-b", sealed: Buffer.from("sealed-2"), updatedAt: v2 });
        const v3 = await store.tokenCaches.write(Q, "key-b", Buffer.from("sealed-3"), "any");
        expect(v3).toBeGreaterThan(v2!);
        // Versions increase even within one millisecond.
        const v4 = await store.tokenCaches.write(Q, "key-b", Buffer.from("sealed-4"), v3);
        expect(v4).toBeGreaterThan(v3!);
        expect(await store.tokenCaches.write(OTHER, "key-a", Buffer.from("other"), "any")).toBeGreaterThan(0);
        expect(await store.tokenCaches.versions()).toEqual(
          new Map([
            [Q, v4],
            [OTHER, (await store.tokenCaches.read(OTHER))!.updatedAt],
          ]),
        );
      });

      it("removes a queue's row, and says whether there was one", async () => {
        await store.tokenCaches.write(Q, "key-a", Buffer.from("sealed"), undefined);
        expect(await store.tokenCaches.remove(Q)).toBe(true);
        expect(await store.tokenCaches.remove(Q)).toBe(false);
        expect(await store.tokenCaches.read(Q)).toBeUndefined();
        expect((await store.tokenCaches.versions()).size).toBe(0);
        expect(await store.tokenCaches.write(Q, "key-a", Buffer.from("again"), undefined)).toBeGreaterThan(0);
      });
    });

    it("answers ping while it is reachable", async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}

/** The distinct message seqs of due deliveries, in order. */
function uniqueSeqs(due: ReadonlyArray<{ readonly seq: number }>): number[] {
  return [...new Set(due.map((d) => d.seq))];
}
