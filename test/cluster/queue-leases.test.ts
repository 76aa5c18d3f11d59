/**
 * Queue leases with fencing epochs on a real PostgreSQL: queues split between replicas, a
 * replica that stops renewing loses its queues to the other (never before its lease ends), and
 * a write at a stale epoch is refused (STATE_FENCED) and changes nothing.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Spool } from "../../src/spool/spool.js";
import { imap } from "../../tools/testbed/helpers/imap-messages.js";
import type { HeldLease, QueueFence, QueueLeaseStore } from "../../src/cluster/ports.js";
import { QueueOwnership } from "../../src/cluster/queue-ownership.js";
import { homesOf } from "../../src/store/postgres/leases.js";
import { openPostgresStore, type PostgresStateStore } from "../../src/store/postgres/postgres-store.js";
import { startPostgres, type Postgres } from "../../tools/testbed/postgres.js";

let postgres: Postgres;
const opened: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  postgres = await startPostgres();
}, 60_000);

afterAll(async () => {
  for (const it of opened.reverse()) await it.close().catch(() => undefined);
  await postgres?.close();
});

const QUEUES = Array.from({ length: 12 }, (_, i) => `queue-${String(i).padStart(2, "0")}`);

async function open(url: string, fence?: QueueFence): Promise<PostgresStateStore> {
  const store = await openPostgresStore({ url, ...(fence ? { fence } : {}) });
  opened.push(store);
  return store;
}

/** A fence whose epochs the test sets by hand. */
function handFence(owner: string, held: ReadonlyArray<HeldLease>): QueueFence & { lostQueues: string[] } {
  const epochs = new Map(held.map((l) => [l.queue, l.epoch]));
  const lostQueues: string[] = [];
  return { owner, lostQueues, epochOf: (queue) => epochs.get(queue), lost: (queue) => void lostQueues.push(queue) };
}

/** The lease store as a replica sees it until it freezes: then its rounds never come back (SIGSTOP, a hung VM). */
function freezable(leases: QueueLeaseStore): QueueLeaseStore & { freeze(): void } {
  let frozen = false;
  return {
    round: (...args) => (frozen ? new Promise(() => undefined) : leases.round(...args)),
    release: (...args) => leases.release(...args),
    all: () => leases.all(),
    replicas: () => leases.replicas(),
    freeze: () => void (frozen = true),
  };
}

async function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("rendezvous spread", () => {
  it("a joining replica takes about its share, nearly all of it for itself; a leaving one gives about its own", () => {
    const queues = Array.from({ length: 300 }, (_, i) => `q${i}`);
    const before = homesOf(queues, ["a", "b"]);
    const after = homesOf(queues, ["a", "b", "c"]);
    const moved = queues.filter((q) => before.get(q) !== after.get(q));
    // A third moves, to the new replica, but for a handful shifted to keep the loads even.
    expect(moved.length).toBeGreaterThanOrEqual(100);
    expect(moved.length).toBeLessThan(110);
    expect(moved.filter((q) => after.get(q) !== "c").length).toBeLessThan(5);
    expect(["a", "b", "c"].map((r) => queues.filter((q) => after.get(q) === r).length)).toEqual([100, 100, 100]);
    // And back: c leaves, its queues go and little else moves.
    const back = homesOf(queues, ["a", "b"]);
    expect(queues.filter((q) => back.get(q) !== after.get(q) && after.get(q) !== "c").length).toBeLessThan(5);
  });

  it("spreads evenly for few queues too: each replica holds the floor or the ceiling of its share, whatever the replicas are called", () => {
    for (let run = 0; run < 200; run++) {
      const replicas = [`gamma:${run}`, `delta:${run}`, `epsilon:${run}`].slice(0, 2 + (run % 2));
      const queues = ["north", "south", "east", "west", "up"].slice(0, 3 + (run % 3));
      const homes = homesOf(queues, replicas);
      expect([...homes.keys()].sort()).toEqual([...queues].sort());
      const loads = replicas.map((r) => [...homes.values()].filter((home) => home === r).length);
      expect(Math.max(...loads) - Math.min(...loads), `${queues.length} queues on ${replicas.join(", ")}: ${loads.join("/")}`).toBeLessThanOrEqual(1);
    }
    // The same lists give the same homes, in whatever order they come.
    expect(homesOf(["x", "y", "z"], ["b", "a"])).toEqual(homesOf(["z", "y", "x"], ["a", "b"]));
  });
});

describe("queue leases on PostgreSQL", () => {
  it("two replicas split the queues; the one that stops renewing loses them to the other after its lease, not before", async () => {
    const url = await postgres.createDatabase();
    const store = await open(url);
    const leaseMs = 2_000;
    const events: string[] = [];
    const listener = (name: string) => ({
      acquired: (lease: HeldLease, tookOver: boolean) => events.push(`${name} +${lease.queue}${tookOver ? " (took over)" : ""}`),
      lost: (queue: string, reason: string) => events.push(`${name} -${queue} ${reason}`),
    });
    const aLeases = freezable(store.leases);
    const a = new QueueOwnership(aLeases, "replica-a", QUEUES, leaseMs, listener("a"));
    const b = new QueueOwnership(store.leases, "replica-b", QUEUES, leaseMs, listener("b"));
    opened.push({ close: () => b.stop() });
    await a.start();
    await b.start();
    // Both see each other after a round or two; then each holds its home share.
    const split = await until(() => {
      const held = [...a.leases(), ...b.leases()].map((l) => l.queue).sort();
      return held.length === QUEUES.length && new Set(held).size === QUEUES.length && a.leases().length > 0 && b.leases().length > 0 ? held : undefined;
    });
    expect(split).toEqual(QUEUES);
    const homes = homesOf(QUEUES, ["replica-a", "replica-b"]);
    for (const lease of b.leases()) expect(homes.get(lease.queue)).toBe("replica-b");

    // A stops renewing (frozen): its leases are not given back.
    const aQueues = a.leases().map((l) => l.queue);
    aLeases.freeze();
    // A round already under way when A froze still lands: let it, then read how long A's leases last.
    await new Promise((resolve) => setTimeout(resolve, (leaseMs / 5) * 2));
    const [aLease] = await postgres.query<{ until: Date }>(
      "SELECT max(lease_until) AS until FROM queue_leases WHERE owner = 'replica-a'",
      [],
      new URL(url).pathname.slice(1),
    );
    await until(() => (b.leases().length === QUEUES.length ? true : undefined));
    const rows = await store.leases.all();
    for (const row of rows.filter((r) => aQueues.includes(r.queue))) {
      expect(row.owner).toBe("replica-b");
      expect(row.takeovers).toBe(1);
      // Never before A's lease ran out (by the database's clock, which set both times).
      expect(row.acquiredAt!.getTime()).toBeGreaterThanOrEqual(aLease!.until.getTime());
    }
    expect(b.counters.takeovers).toBe(aQueues.length);
    expect(events).toEqual(expect.arrayContaining(aQueues.map((q) => `b +${q} (took over)`)));
    // A, frozen, gave them up by its own clock.
    expect(a.leases()).toEqual([]);
    expect(events).toEqual(expect.arrayContaining(aQueues.map((q) => `a -${q} expired`)));
  }, 60_000);

  it("a write at a stale epoch is refused with STATE_FENCED and changes nothing; the owner's writes go through", async () => {
    const url = await postgres.createDatabase();
    const admin = await open(url);
    const first = await admin.leases.round("replica-a", ["q1"], 60_000);
    expect(first.held).toEqual([expect.objectContaining({ queue: "q1", epoch: 1 })]);
    const aFence = handFence("replica-a", first.held);
    const a = await open(url, aFence);
    const location = { kind: "imap" as const, folder: "INBOX", item: "1:1" };
    const entry = (item: string, cursor: string) => ({
      type: "message" as const,
      queue: "q1",
      key: `k-${item}`,
      location: { ...location, item },
      written: true,
      size: 10,
      contentSha256: `sha-${item}`,
      handlers: ["webhook"],
      serverAction: { action: "seen" as const },
      cursor,
    });
    await a.raw.write("q1", "k-1:1", Buffer.from("Subject: one\r\n\r\nbody"), 100);
    expect(await a.messages.commit([entry("1:1", "1:1")])).toEqual([true]);
    const [due] = await a.deliveries.due("q1", Date.now(), 10);
    expect(await a.tokenCaches.write("q1", "key-1", Buffer.from("sealed"), undefined)).toEqual(expect.any(Number));

    // Replica B takes the queue over: A's lease ran out (here: given up by hand) and B claims it.
    await postgres.query("UPDATE queue_leases SET lease_until = now() - interval '1 minute'", [], new URL(url).pathname.slice(1));
    const taken = await admin.leases.round("replica-b", ["q1"], 60_000);
    expect(taken.tookOver).toEqual(["q1"]);
    expect(taken.held[0]!.epoch).toBe(2);

    const refusals: Array<[string, () => Promise<unknown>]> = [
      ["commit", () => a.messages.commit([entry("1:2", "1:2")])],
      ["restartCursor", () => a.messages.restartCursor("q1", "imap", "INBOX", "9:0")],
      ["assignStableId", () => a.messages.assignStableId("q1", due!.seq, "sha-1:1", "id-1")],
      ["markDelivered", () => a.deliveries.markDelivered([{ seq: due!.seq, handler: "webhook" }])],
      ["markRetry", () => a.deliveries.markRetry(due!.seq, "webhook", "later", Date.now() + 1000)],
      ["markDead", () => a.deliveries.markDead(due!.seq, "webhook", "no")],
      ["serverActions.done", () => a.serverActions.done("q1", "imap", "INBOX", ["1:1"])],
      ["raw.write", () => a.raw.write("q1", "k-1:1", Buffer.from("other bytes"), 100)],
      ["tokenCaches.write", () => a.tokenCaches.write("q1", "key-1", Buffer.from("stale"), "any")],
      ["tokenCaches.remove", () => a.tokenCaches.remove("q1")],
    ];
    for (const [name, write] of refusals) {
      const error = await write().catch((e: unknown) => e);
      expect(error, name).toMatchObject({ code: "STATE_FENCED", retryable: false });
    }
    expect(aFence.lostQueues).toContain("q1");

    // Nothing of A's changed anything.
    expect(await admin.messages.cursor("q1", "imap", "INBOX")).toBe("1:1");
    expect(await admin.messages.isSpooled("q1", { ...location, item: "1:2" })).toBe(false);
    expect(await admin.deliveries.backlog("q1")).toBe(1);
    expect(await admin.serverActions.pending("q1", "imap", "INBOX")).toEqual([{ item: "1:1", action: "seen" }]);
    expect((await admin.raw.read("q1", "k-1:1")).toString()).toContain("Subject: one");
    expect((await admin.tokenCaches.read("q1"))?.sealed.toString()).toBe("sealed");

    // B, at the new epoch, writes.
    const b = await open(url, handFence("replica-b", taken.held));
    await b.deliveries.markDelivered([{ seq: due!.seq, handler: "webhook" }]);
    expect(await admin.deliveries.backlog("q1")).toBe(0);
  }, 60_000);

  it("a replica whose own clock says its lease ran out writes nothing, even before anyone took over", async () => {
    const url = await postgres.createDatabase();
    const store = await open(url);
    const lost: string[] = [];
    const leases = freezable(store.leases);
    const ownership = new QueueOwnership(leases, "replica-a", ["q1"], 500, { acquired: () => undefined, lost: (queue) => void lost.push(queue) });
    opened.push({ close: () => ownership.stop() });
    await ownership.start();
    expect(ownership.epochOf("q1")).toBe(1);
    leases.freeze();
    await new Promise((resolve) => setTimeout(resolve, 500));
    // No round since: past its validity the fence says no, though the row still names this replica.
    expect((await store.leases.all())[0]).toMatchObject({ owner: "replica-a", epoch: 1 });
    expect(ownership.epochOf("q1")).toBeUndefined();
    const fenced = await open(url, ownership);
    await expect(fenced.messages.restartCursor("q1", "imap", "INBOX", "1:0")).rejects.toMatchObject({ code: "STATE_FENCED" });
    expect(lost).toEqual(["q1"]);
  });
});

describe("the spool on a fenced store", () => {
  it("a queue this replica lost fails its own accepts only, not those of queues it holds that commit in the same group", async () => {
    const url = await postgres.createDatabase();
    const admin = await open(url);
    const mine = await admin.leases.round("replica-a", ["held", "lost"], 60_000);
    const fence = handFence("replica-a", mine.held);
    const store = await open(url, fence);

    const dir = await mkdtemp(path.join(tmpdir(), "mailfetchd-fenced-spool-"));
    // The first commit waits at a gate, so the two accepts after it commit in one group.
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    let first = true;
    const messages = Object.create(store.messages) as typeof store.messages;
    messages.commit = async (entries) => {
      if (first) {
        first = false;
        await gate;
      }
      return store.messages.commit(entries);
    };
    const spool = new Spool({ ...store, messages }, dir);
    const message = (uid: number) => imap({ folder: "INBOX", uidValidity: "7", uid, raw: Buffer.from(`Subject: ${uid}\r\n\r\nbody ${uid}`), size: 20 });
    const warmUp = spool.accept({ name: "held", address: "held@example.test" }, { handlers: ["h"] }, message(1));
    const accepts = Promise.allSettled([
      spool.accept({ name: "held", address: "held@example.test" }, { handlers: ["h"] }, message(2)),
      spool.accept({ name: "lost", address: "lost@example.test" }, { handlers: ["h"] }, message(1)),
    ]);
    void accepts;
    await until(async () =>
      (await postgres.query<{ n: number }>("SELECT count(*)::int AS n FROM raw_parts", [], new URL(url).pathname.slice(1)))[0]!.n === 3 ? true : undefined,
    );
    // Both messages' bytes are stored; now another replica takes "lost" over, before their commit.
    await postgres.query("UPDATE queue_leases SET lease_until = now() - interval '1 minute' WHERE queue = 'lost'", [], new URL(url).pathname.slice(1));
    expect((await admin.leases.round("replica-b", ["lost"], 60_000)).tookOver).toEqual(["lost"]);
    openGate();
    await warmUp;
    const [held, lost] = await accepts;
    expect(held).toMatchObject({ status: "fulfilled", value: { isNew: true } });
    expect(lost).toMatchObject({ status: "rejected" });
    expect(await admin.deliveries.backlog("held")).toBe(2);
    expect(await admin.deliveries.backlog("lost")).toBe(0);
    await rm(dir, { recursive: true, force: true });
  });
});

describe("renewals beside the traffic", () => {
  it("a lease round is not held up by a download streaming into the store (the fence is checked at its end)", async () => {
    const url = await postgres.createDatabase();
    const admin = await open(url);
    const first = await admin.leases.round("replica-a", ["q1"], 60_000);
    const store = await open(url, handFence("replica-a", first.held));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const streaming = new Promise<void>((resolve) => (started = resolve));
    async function* download() {
      yield Buffer.from("Subject: big\r\n\r\n");
      started();
      await released;
      yield Buffer.from("rest");
    }
    const written = store.raw.write("q1", "k-big", download(), 100);
    await streaming;
    // Renewing while the download is under way: were the lease row locked by the download, this
    // would wait for it, and the download waits for this (the test would never end).
    const renewed = await store.leases.round("replica-a", ["q1"], 60_000);
    expect(renewed.held).toEqual([expect.objectContaining({ queue: "q1", epoch: 1 })]);
    release();
    await written;
    expect((await admin.raw.read("q1", "k-big")).toString()).toBe("Subject: big\r\n\r\nrest");
  });
});
