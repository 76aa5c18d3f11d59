/**
 * Microsoft Graph behind the MailSource port, on the real test bed (the Graph and identity
 * stand-ins over HTTPS, real MSAL tokens, a real SQLite spool): delta rounds spool every message
 * once and commit the link with them, actions follow spooling, expired links deliver nothing
 * twice, throttling and the per-mailbox limit are honoured, and failures carry the operator's fix.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { QueueConfig } from "../../src/config/schema.js";
import { DaemonEvents } from "../../src/events.js";
import { GraphSource } from "../../src/graph/graph-source.js";
import { classifyGraphFailure } from "../../src/graph/graph-errors.js";
import { QueueSpoolSink } from "../../src/queue/queue-spool-sink.js";
import { Spool } from "../../src/spool/spool.js";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { failure, startTokenFixture, type QueueSpec, type TokenFixture } from "../../tools/testbed/helpers/token-fixture.js";

const PASSWORD = "graph-Pa55word!";
let fx: TokenFixture;
let spool: Spool;
let seq = 0;

beforeAll(async () => {
  fx = await startTokenFixture();
});

afterAll(async () => {
  await fx?.close();
});

/** A new Graph queue on a mailbox of its own (so one test's throttling is not another's). */
function graphQueue(
  options: Record<string, unknown> = {},
  spec: Partial<QueueSpec> = {},
): { queue: QueueConfig; source: GraphSource; sink: () => QueueSpoolSink } {
  const name = `g${++seq}`;
  const address = `${name}@example.test`;
  if (!spec.signInUser) {
    fx.bed.identity.addUser({ username: address, password: PASSWORD });
    fx.bed.graph.addMailbox(address);
  }
  const [queue] = fx.queues([{ name, address, password: PASSWORD, options: { source: "graph", ...options }, ...spec }]) as [QueueConfig];
  spool ??= new Spool(fx.state, path.join(fx.bed.dir, "state"));
  const logger = fx.logger.child({ queue: name });
  const source = new GraphSource(queue, fx.provider(queue), logger);
  const events = new DaemonEvents();
  return { queue, source, sink: () => new QueueSpoolSink(queue, "graph", spool, events) };
}

function put(queue: QueueConfig, count: number, seed: string, folder = "inbox"): string[] {
  return sampleMessages(count, { seed, to: queue.address }).map((m) => fx.bed.graph.putMessage(queue.address, folder, m.raw));
}

function spooledItems(queue: QueueConfig): string[] {
  return (
    fx.db.prepare("SELECT item_id FROM messages WHERE queue = ? AND source_kind = 'graph' ORDER BY seq").all(queue.name) as Array<{ item_id: string }>
  ).map((r) => r.item_id);
}

function requestsOf(queue: QueueConfig) {
  return fx.bed.graph.requests.filter((r) => r.mailbox === queue.address);
}

describe("Graph as a MailSource", () => {
  it("spools every message of the folder once over several delta pages, commits the deltaLink, and spools only what is new next round", async () => {
    const { queue, source, sink } = graphQueue();
    const ids = put(queue, 60, "pages");
    const first = sink();
    await source.sync(first);
    expect([first.fetched, first.spooled]).toEqual([60, 60]);
    expect(spooledItems(queue)).toEqual(ids);
    expect(await spool.cursor(queue.name, "graph", "INBOX")).toMatch(/\/messages\/delta\?\$deltatoken=/);
    // 50 per page: two delta pages, one $value each, one folder lookup.
    const requests = requestsOf(queue);
    expect(requests.filter((r) => r.path.endsWith("/messages/delta"))).toHaveLength(2);
    expect(requests.filter((r) => r.path.endsWith("/$value"))).toHaveLength(60);
    expect(requests.every((r) => r.immutableIds)).toBe(true);
    expect(fx.bed.graph.peakInFlight(queue.address)).toBeLessThanOrEqual(3);

    const nothing = sink();
    await source.sync(nothing);
    expect([nothing.fetched, nothing.spooled]).toEqual([0, 0]);

    // Replays and late arrivals: repeats are skipped, the late one comes in the round after.
    const more = put(queue, 2, "more");
    const late = fx.bed.graph.putMessage(queue.address, "inbox", sampleMessages(1, { seed: "late", to: queue.address })[0]!.raw, { late: true });
    fx.bed.graph.replayInNextDelta(3);
    const second = sink();
    await source.sync(second);
    expect([second.fetched, second.spooled]).toEqual([5, 2]);
    const third = sink();
    await source.sync(third);
    expect(third.spooled).toBe(1);
    expect(spooledItems(queue)).toEqual([...ids, ...more, late]);
  });

  it.each(["seen", "move", "delete"] as const)("takes afterSpool %s by Graph calls, only for messages durably spooled", async (action) => {
    const { queue, source, sink } = graphQueue(action === "move" ? { afterSpool: "move", moveTo: "Processed" } : { afterSpool: action });
    if (action === "move") fx.bed.graph.addFolder(queue.address, "Processed");
    const ids = put(queue, 6, `act-${action}`);
    // The fourth message's download breaks every time: it and what follows stay unspooled.
    const big = fx.bed.graph.putMessage(
      queue.address,
      "inbox",
      Buffer.concat([sampleMessages(1, { seed: `big-${action}`, to: queue.address })[0]!.raw, Buffer.alloc(400_000, "a")]),
    );
    put(queue, 2, `after-${action}`);
    fx.bed.graph.setValueBehaviour({ above: 300_000, fail: "broken" });
    try {
      expect((await failure(source.sync(sink()))).code).toBe("GRAPH_UNAVAILABLE");
    } finally {
      fx.bed.graph.setValueBehaviour(undefined);
    }
    const acted = () => fx.bed.graph.actions.filter((a) => a.mailbox === queue.address).map((a) => a.id);
    // What was spooled is a prefix of the folder's order, without the broken one or anything after it.
    const spooled = spooledItems(queue);
    expect(spooled).toEqual(ids.slice(0, spooled.length));
    expect(acted().every((id) => spooled.includes(id))).toBe(true);

    await source.sync(sink());
    expect(spooledItems(queue)).toHaveLength(9);
    expect(spooledItems(queue)).toContain(big);
    // A page read again after the failure owes its (idempotent) actions again: each item once or more, none unspooled.
    expect([...new Set(acted())].sort()).toEqual(spooledItems(queue).sort());
    const expected = { seen: ["read", undefined], move: ["move", "Processed"], delete: ["delete", undefined] }[action];
    expect(fx.bed.graph.actions.filter((a) => a.mailbox === queue.address).every((a) => a.action === expected[0] && a.to === expected[1])).toBe(true);
    expect(await spool.pendingServerActions(queue.name, "graph", "INBOX")).toEqual([]);
  });

  it.each(["gone", "syncStateNotFound", "resyncRequired"] as const)(
    "starts a full round when the delta link expired (%s) and delivers nothing twice",
    async (how) => {
      const { queue, source, sink } = graphQueue();
      put(queue, 4, `expire-${how}`);
      await source.sync(sink());
      fx.bed.graph.expireDeltaTokens(how);
      put(queue, 2, `expire-more-${how}`);
      const downloads = () => requestsOf(queue).filter((r) => r.path.endsWith("/$value")).length;
      const downloadsBefore = downloads();
      const round = sink();
      await source.sync(round);
      expect([round.fetched, round.spooled]).toEqual([6, 2]);
      expect(spooledItems(queue)).toHaveLength(6);
      // The four already spooled are recognised by their id, not downloaded again.
      expect(downloads() - downloadsBefore).toBe(2);
      expect(fx.logLines.some((l) => l.includes("delta link expired"))).toBe(true);
    },
  );

  it("honours Retry-After within the sync, and ends it with GRAPH_THROTTLED (minutes) when Graph gives none, without slowing another mailbox", async () => {
    const { queue, source, sink } = graphQueue();
    const other = graphQueue();
    put(queue, 3, "throttle");
    put(other.queue, 3, "throttle-other");
    fx.bed.graph.throttleNext(2, { retryAfterSeconds: 1, mailbox: queue.address });
    const throttled = sink();
    await source.sync(throttled);
    expect(throttled.spooled).toBe(3);
    const answered = requestsOf(queue).map((r) => r.status);
    expect(answered.filter((s) => s === 429)).toHaveLength(2);
    const [first429, after] = [
      requestsOf(queue).find((r) => r.status === 429)!,
      requestsOf(queue)
        .filter((r) => r.status === 200)
        .at(-1)!,
    ];
    expect(after.at - first429.at).toBeGreaterThanOrEqual(1_900);

    put(queue, 1, "throttle-again");
    fx.bed.graph.throttleNext(1, { mailbox: queue.address });
    const error = await failure(source.sync(sink()));
    expect(error.code).toBe("GRAPH_THROTTLED");
    expect(error.retryable).toBe(true);
    expect(error.retryAfterMs).toBeGreaterThanOrEqual(30_000);
    // The throttled mailbox waits; the other is fetched meanwhile.
    const meanwhile = other.sink();
    await other.source.sync(meanwhile);
    expect(meanwhile.spooled).toBe(3);
    const requestsBefore = requestsOf(queue).length;
    expect((await failure(source.sync(sink()))).code).toBe("GRAPH_THROTTLED");
    expect(requestsOf(queue).length).toBe(requestsBefore); // nothing sent while it waits
  });

  it("parks a message whose $value breaks off in 5 syncs as a headers-only dead letter; the others are spooled", async () => {
    const { queue, source, sink } = graphQueue();
    const before = put(queue, 1, "before-broken");
    const broken = fx.bed.graph.putMessage(
      queue.address,
      "inbox",
      Buffer.concat([Buffer.from("Subject: breaks\r\nMessage-ID: <breaks@example.test>\r\n\r\n"), Buffer.alloc(600_000, "c")]),
    );
    const after = put(queue, 1, "after-broken");
    fx.bed.graph.setValueBehaviour({ above: 500_000, fail: "broken" });
    try {
      for (let attempt = 1; attempt <= 5; attempt++) expect((await failure(source.sync(sink()))).code).toBe("GRAPH_UNAVAILABLE");
      await source.sync(sink());
    } finally {
      fx.bed.graph.setValueBehaviour(undefined);
    }
    expect(spooledItems(queue)).toEqual([...before, broken, ...after]);
    const row = fx.db.prepare("SELECT headers_only FROM messages WHERE queue = ? AND item_id = ?").get(queue.name, broken) as { headers_only: number };
    expect(row.headers_only).toBe(1);
    expect(fx.logLines.some((l) => l.includes("could not serve this message's MIME"))).toBe(true);
    // The dead letter says why: Graph did not serve it (not the size cap).
    const [parked] = (await spool.deadLetters(queue.name)).filter((d) => d.source.item === broken);
    expect(parked?.reason).toMatch(/Microsoft Graph could not serve this message's content/);
    expect(parked?.reason).not.toMatch(/maxMessageSize/);

    // `deadletters retry` once Graph serves it again: the next sync fetches it whole, into the same row.
    expect(await spool.retryDeadLetter(queue.name, parked!.id)).toBeGreaterThan(0);
    await source.sync(sink());
    const refetched = fx.db.prepare("SELECT headers_only, awaiting_refetch FROM messages WHERE queue = ? AND item_id = ?").all(queue.name, broken) as Array<{
      headers_only: number;
      awaiting_refetch: number;
    }>;
    expect(refetched).toEqual([{ headers_only: 0, awaiting_refetch: 0 }]);
    expect(spooledItems(queue)).toEqual([...before, broken, ...after]);
    expect(await spool.deadLetterCount(queue.name)).toBe(0);
  });

  it("an outage of Graph fails the sync as retryable (GRAPH_UNAVAILABLE) and loses nothing", async () => {
    const { queue, source, sink } = graphQueue({ afterSpool: "delete" });
    const ids = put(queue, 5, "outage");
    fx.bed.graph.setDown(true);
    try {
      const error = await failure(source.sync(sink()));
      expect([error.code, error.retryable]).toEqual(["GRAPH_UNAVAILABLE", true]);
    } finally {
      fx.bed.graph.setDown(false);
    }
    expect(spooledItems(queue)).toEqual([]);
    await source.sync(sink());
    expect(spooledItems(queue)).toEqual(ids);
    expect(
      fx.bed.graph
        .messages(queue.address, "deleteditems")
        .map((m) => m.id)
        .sort(),
    ).toEqual([...ids].sort());
  });

  it("never has more than 3 requests in flight for a mailbox, even when two queues read it", async () => {
    const { queue, source, sink } = graphQueue({ afterSpool: "seen" });
    fx.bed.graph.addFolder(queue.address, "Second");
    const second = graphQueue({ folder: "Second" }, { address: queue.address, signInUser: queue.address } as Partial<QueueSpec>);
    put(queue, 20, "conc");
    put(queue, 20, "conc2", "Second");
    fx.bed.graph.setResponseDelay(30);
    try {
      await Promise.all([source.sync(sink()), second.source.sync(second.sink())]);
    } finally {
      fx.bed.graph.setResponseDelay(0);
    }
    expect(spooledItems(queue)).toHaveLength(20);
    expect(fx.bed.graph.peakInFlight(queue.address)).toBe(3);
    expect(requestsOf(queue).some((r) => r.status === 429)).toBe(false);
  });

  it("parks a message above maxMessageSize as a headers-only dead letter without downloading it", async () => {
    const { queue, source, sink } = graphQueue({ maxMessageSize: "100KB" });
    const small = put(queue, 1, "small");
    const big = fx.bed.graph.putMessage(
      queue.address,
      "inbox",
      Buffer.concat([Buffer.from("Subject: too big\r\nMessage-ID: <big@example.test>\r\n\r\n"), Buffer.alloc(200_000, "b")]),
    );
    const round = sink();
    await source.sync(round);
    expect(round.spooled).toBe(2);
    expect(requestsOf(queue).filter((r) => r.path.endsWith("/$value"))).toHaveLength(1);
    const row = fx.db.prepare("SELECT headers_only FROM messages WHERE queue = ? AND item_id = ?").get(queue.name, big) as { headers_only: number };
    expect(row.headers_only).toBe(1);
    expect(spooledItems(queue)).toEqual([...small, big]);
  });
});

describe("Graph failures carry the operator's fix", () => {
  it("a shared mailbox without Full Access: 403 naming Full Access", async () => {
    const owner = `shared${++seq}@example.test`;
    const agent = `agent${seq}@example.test`;
    fx.bed.identity.addUser({ username: agent, password: PASSWORD });
    fx.bed.graph.addMailbox(owner); // no fullAccess for the agent
    const [queue] = fx.queues([{ name: `s${seq}`, address: owner, password: PASSWORD, signInUser: agent, options: { source: "graph" } }]) as [QueueConfig];
    expect(queue.identity.scopes).toEqual([
      "https://graph.microsoft.com/Mail.ReadWrite",
      "https://graph.microsoft.com/Mail.ReadWrite.Shared",
      "offline_access",
    ]);
    const source = new GraphSource(queue, fx.provider(queue), fx.logger);
    const error = await failure(source.sync(new QueueSpoolSink(queue, "graph", spool, new DaemonEvents())));
    expect(error.code).toBe("GRAPH_ACCESS_DENIED");
    expect(error.fix).toContain("Full Access");
    expect(error.fix).not.toContain("step 10");
  });

  it("a token without the Graph permission: the fix names it and the admin guide's step 10 (pure mapping)", () => {
    const context = { queue: "q", mailbox: "q@example.test", folder: "INBOX", host: "graph.microsoft.com", doing: "reading", shared: false };
    const error = classifyGraphFailure({ status: 403, code: "ErrorAccessDenied" }, context);
    expect(error.fix).toContain("Mail.ReadWrite");
    expect(error.fix).toContain("step 10");
  });

  it("a token for another API (IMAP's): 401 GRAPH_AUTH_REJECTED after one retry with a fresh token", async () => {
    const { queue } = graphQueue();
    const imapQueue = fx.queues([{ name: `i${seq}`, address: queue.address, password: PASSWORD }])[0]!;
    const imapToken = await fx.provider(imapQueue).getAccessToken();
    let asked = 0;
    const source = new GraphSource(queue, { getAccessToken: async () => (asked++, imapToken) }, fx.logger);
    const error = await failure(source.sync(new QueueSpoolSink(queue, "graph", spool, new DaemonEvents())));
    expect(error.code).toBe("GRAPH_AUTH_REJECTED");
    expect(error.fix).toContain("Mail.ReadWrite");
    expect(asked).toBe(2);
  });

  it("no consent for Graph: the sign-in's error names Graph's permission, not IMAP's", async () => {
    const { source, sink } = graphQueue();
    fx.bed.identity.setConsentedPermissions(["https://outlook.office.com/IMAP.AccessAsUser.All"]);
    try {
      const error = await failure(source.sync(sink()));
      expect(error.code).toBe("IDENTITY_NO_CONSENT");
      expect(error.fix).toContain("Microsoft Graph permission Mail.ReadWrite");
    } finally {
      fx.bed.identity.setConsentedPermissions(undefined);
    }
  });

  it("a missing folder or moveTo folder, and a mailbox not enabled for REST, each with its own code and fix", async () => {
    const missing = graphQueue({ folder: "NoSuchFolder" });
    const error = await failure(missing.source.sync(missing.sink()));
    expect([error.code, error.fix]).toEqual(["GRAPH_NOT_FOUND", expect.stringContaining("Correct the queue's `folder`")]);
    const noTarget = graphQueue({ afterSpool: "move", moveTo: "Nowhere" });
    put(noTarget.queue, 1, "no-target");
    const moveError = await failure(noTarget.source.sync(noTarget.sink()));
    expect([moveError.code, moveError.fix]).toEqual(["GRAPH_NOT_FOUND", expect.stringContaining("moveTo")]);
    expect(spooledItems(noTarget.queue)).toHaveLength(1);
    const off = graphQueue();
    fx.bed.graph.setRestDisabled(off.queue.address, true);
    expect((await failure(off.source.sync(off.sink()))).code).toBe("GRAPH_MAILBOX_NOT_ENABLED");
  });

  it("never writes an access token, a delta link or a Graph body into a log line", () => {
    const lines = fx.logLines.join("\n");
    for (const secret of fx.bed.identity.secretsIssued) expect(lines).not.toContain(secret);
    expect(lines).not.toMatch(/deltatoken|skiptoken|Access is denied|Invalid audience/);
  });
});
