/**
 * Several replicas on one PostgreSQL and one Dovecot, as processes (dist/cli.js): the queues
 * split between them and every message is delivered once; a replica killed with SIGKILL loses
 * its queues to the other, which delivers the rest (lost 0, a repeat only under the same id);
 * a replica stopped with SIGSTOP for 30 s, past its lease, and resumed writes nothing for the
 * queues it lost (the store's tables of those queues do not change while it runs alone).
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startPostgres, type Postgres } from "../../tools/testbed/postgres.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { WebhookReceiver } from "../../tools/testbed/helpers/webhook-receiver.js";
import { expectedStableId } from "../../tools/testbed/helpers/expected-id.js";
import { CLI, DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";

// Each test has mailboxes of its own: mail one leaves on the server is not the next one's.
const queuesOf = (test: string) =>
  ["north", "south", "east", "west"].map((side) => ({
    name: `${test}-${side}`,
    address: `${test}-${side}@example.test`,
    password: `${test}-${side}-password`,
  }));
const KILL_QUEUES = queuesOf("kill");
const STOP_QUEUES = queuesOf("stop");
let QUEUES = KILL_QUEUES;

let bed: TestBed;
let postgres: Postgres;
let receiver: WebhookReceiver;
const running: DaemonProcess[] = [];

beforeAll(async () => {
  [bed, postgres, receiver] = await Promise.all([startTestBed(), startPostgres(), WebhookReceiver.start()]);
  for (const q of [...KILL_QUEUES, ...STOP_QUEUES]) bed.identity.addUser({ username: q.address, password: q.password });
}, 120_000);

// A test that failed half-way leaves no replica behind to fetch the next test's mail.
afterEach(async () => {
  for (const daemon of running.splice(0)) await daemon.stop("SIGKILL").catch(() => undefined);
});

afterAll(async () => {
  await receiver?.close();
  await Promise.allSettled([bed?.close(), postgres?.close()]);
});

/** One replica's config: its own state dir (scratch files), the shared PostgreSQL and key file. */
function replica(name: string, url: string, lease: string, http = false): DaemonProcess {
  const configFile = bed.writeDaemonConfig(
    {
      stateDir: path.join(bed.dir, `state-${name}`),
      logLevel: "info",
      poll: "1s",
      postgres: { url, lease, replicaId: name },
      ...(http ? { http: { listen: "127.0.0.1:0" } } : {}),
      queues: QUEUES.map((q) => ({ ...q, options: { idle: false }, handlers: [{ type: "webhook", name: "crm", url: receiver.url(), timeout: "10s" }] })),
    },
    path.join(bed.dir, `config-${name}.yaml`),
  );
  const daemon = new DaemonProcess(configFile);
  running.push(daemon);
  daemon.start();
  return daemon;
}

/** Puts `count` new messages in every queue's inbox; returns their expected ids. */
async function deliverMail(seed: string, count: number): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const q of QUEUES) {
    for (const m of sampleMessages(count, { seed: `${seed}-${q.name}`, to: q.address })) {
      await bed.dovecot.deliver(q.address, m.raw);
      ids.add(await expectedStableId(q.address, m.raw));
    }
  }
  return ids;
}

/** GET on the daemon's HTTP surface. */
async function get(daemon: DaemonProcess, route: string): Promise<{ status: number; body: string }> {
  const listening = daemon.lines.find((l) => l.msg === "HTTP surface listening")!;
  const response = await fetch(`http://127.0.0.1:${String(listening.listen).split(":").pop()}${route}`);
  return { status: response.status, body: await response.text() };
}

const received = () => receiver.requests.map((r) => String(r.headers["webhook-id"]));

async function owners(database: string): Promise<Map<string, string>> {
  // Before the first replica created the schema: nobody holds anything.
  const [schema] = await postgres.query<{ ready: boolean }>("SELECT to_regclass('queue_leases') IS NOT NULL AS ready", [], database);
  if (!schema?.ready) return new Map();
  const rows = await postgres.query<{ queue: string; owner: string }>(
    "SELECT queue, owner FROM queue_leases WHERE owner IS NOT NULL AND lease_until > now()",
    [],
    database,
  );
  return new Map(rows.map((r) => [r.queue, r.owner.split(":")[0]!]));
}

async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("several replicas on PostgreSQL", () => {
  it("share the queues, deliver everything once, and the survivor of a SIGKILL delivers the rest", { timeout: 600_000 }, async () => {
    QUEUES = KILL_QUEUES;
    const database = "replicas_kill";
    const url = await postgres.createDatabase(database);
    receiver.requests.length = 0;
    // 6 s: long enough that a loaded machine's slow renewal does not move a queue mid-delivery.
    const a = replica("alpha", url, "6s");
    const b = replica("beta", url, "6s", true);
    await until("both replicas to hold queues", async () => {
      const held = await owners(database);
      return held.size === QUEUES.length && new Set(held.values()).size === 2;
    });

    const first = await deliverMail("once", 10);
    await until("every message delivered", () => first.size > 0 && [...first].every((id) => received().includes(id)));
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(received().filter((id) => first.has(id)).length, "each message delivered once").toBe(first.size);
    const alphaQueues = [...(await owners(database))].filter(([, owner]) => owner === "alpha").map(([queue]) => queue);
    expect(alphaQueues.length).toBeGreaterThan(0);

    // New mail, and alpha dies while its queues drain.
    const second = await deliverMail("after-kill", 20);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const killedAt = Date.now();
    await a.stop("SIGKILL");
    await until(
      "beta to own every queue",
      async () => [...(await owners(database)).values()].every((o) => o === "beta") && (await owners(database)).size === QUEUES.length,
    );
    const failoverMs = Date.now() - killedAt;
    await until("every message delivered after the kill", () => [...second].every((id) => received().includes(id)), 300_000);

    const all = new Set([...first, ...second]);
    const ids = received();
    const lost = [...all].filter((id) => !ids.includes(id));
    expect(lost, "lost").toEqual([]);
    expect(
      ids.filter((id) => !all.has(id)),
      "a repeat under another id",
    ).toEqual([]);
    console.log(
      `replicas: ${all.size} messages, lost 0, repeats ${ids.length - new Set(ids).size}, queues moved ${alphaQueues.length}, kill to takeover ${failoverMs} ms`,
    );
    expect(b.lines.some((l) => l.msg === "queue lease acquired" && l.tookOver === true)).toBe(true);

    // Operators see who holds what: `status`, and beta's /metrics.
    const status = spawnSync(process.execPath, [CLI, "status", "--config", path.join(bed.dir, "config-beta.yaml")], { encoding: "utf8" });
    expect(status.stdout).toMatch(/QUEUE\s+HELD BY\s+SINCE\s+EPOCH\s+TAKEOVERS/);
    for (const q of QUEUES) expect(status.stdout).toMatch(new RegExp(`${q.name}\\s+beta:`));
    expect(status.stdout).toMatch(/replica alpha:\S+: not renewing since/);
    // The status page and /status.json say the same.
    const page = (await get(b, "/status")).body;
    for (const q of QUEUES) expect(page).toContain(`<tr data-queue="${q.name}" data-held-by="beta:`);
    expect(page).toMatch(/data-replica="alpha:[^"]+" data-alive="false">replica alpha:\S+: not renewing since/);
    const json = JSON.parse((await get(b, "/status.json")).body) as {
      leases: Array<{ queue: string; heldBy: string | null }>;
      replicas: Array<{ id: string; alive: boolean }>;
    };
    expect(json.leases.map((l) => l.heldBy?.split(":")[0])).toEqual(QUEUES.map(() => "beta"));
    expect(json.replicas.find((r) => r.id.startsWith("alpha:"))?.alive).toBe(false);
    const metrics = (await get(b, "/metrics")).body;
    expect(metrics).toMatch(new RegExp(`^mailfetchd_leases_held ${QUEUES.length}$`, "m"));
    expect(metrics).toMatch(new RegExp(`^mailfetchd_lease_takeovers_total ${alphaQueues.length}$`, "m"));

    // PostgreSQL goes away for a while: beta is not ready and touches nothing; when it is back,
    // work resumes without a restart and nothing is lost.
    expect((await get(b, "/readyz")).status).toBe(200);
    await postgres.stop();
    const third = await deliverMail("during-outage", 5);
    const readyz = await get(b, "/readyz");
    expect(readyz.status).toBe(503);
    expect(readyz.body).toMatch(/state database cannot be read.*PostgreSQL/);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    expect(third.size > 0 && [...third].some((id) => received().includes(id))).toBe(false);
    await postgres.start();
    await until("the mail that came during the outage delivered", () => [...third].every((id) => received().includes(id)), 300_000);
    await until("beta ready again", async () => (await get(b, "/readyz")).status === 200);
    expect(
      [...third].filter((id) => !received().includes(id)),
      "lost",
    ).toEqual([]);
    await b.stop("SIGTERM");
  });

  it("a replica stopped (SIGSTOP) for 30 s past its lease writes nothing for the queues it lost when resumed", { timeout: 600_000 }, async () => {
    QUEUES = STOP_QUEUES;
    const database = "replicas_stop";
    const url = await postgres.createDatabase(database);
    receiver.requests.length = 0;
    const a = replica("gamma", url, "15s");
    const b = replica("delta", url, "15s");
    await until("both replicas to hold queues", async () => {
      const held = await owners(database);
      return held.size === QUEUES.length && new Set(held.values()).size === 2;
    });
    const gammaQueues = [...(await owners(database))].filter(([, owner]) => owner === "gamma").map(([queue]) => queue);
    const first = await deliverMail("before-stop", 5);
    await until("every message delivered", () => [...first].every((id) => received().includes(id)));

    a.signal("SIGSTOP");
    const stoppedAt = Date.now();
    const second = await deliverMail("while-stopped", 5);
    await until("delta to take gamma's queues", async () => [...(await owners(database)).values()].every((o) => o === "delta"), 300_000);
    await until("delta to deliver the mail that came meanwhile", () => [...second].every((id) => received().includes(id)), 300_000);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 30_000 - (Date.now() - stoppedAt))));

    // Freeze delta (its leases stay valid for seconds yet), give gamma something to do, resume gamma alone.
    b.signal("SIGSTOP");
    const third = await deliverMail("after-resume", 3);
    const before = await queueState(database);
    a.signal("SIGCONT");
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const after = await queueState(database);
    b.signal("SIGCONT");
    expect(after, "gamma wrote queue state it no longer owns").toEqual(before);
    expect(a.lines.some((l) => l.msg === "queue lease lost; its pipeline stops here" && gammaQueues.includes(String(l.queue)))).toBe(true);

    // Nothing lost: delta (or gamma again, for its share) delivers the rest.
    await until("every message delivered at the end", () => [...third].every((id) => received().includes(id)), 180_000);
    const all = new Set([...first, ...second, ...third]);
    const ids = received();
    expect(
      [...all].filter((id) => !ids.includes(id)),
      "lost",
    ).toEqual([]);
    expect(
      ids.filter((id) => !all.has(id)),
      "a repeat under another id",
    ).toEqual([]);
    await Promise.all([a.stop("SIGTERM"), b.stop("SIGTERM")]);
  });
});

/** Every queue-scoped table (not the advisory status and activity rows, nor leases and heartbeats). */
async function queueState(database: string): Promise<unknown> {
  const q = (sql: string) => postgres.query(sql, [], database);
  return {
    cursors: await q("SELECT queue, source_kind, folder, position, updated_at FROM cursors ORDER BY 1, 2, 3"),
    messages: await q("SELECT * FROM messages ORDER BY seq"),
    deliveries: await q("SELECT * FROM deliveries ORDER BY message_seq, handler"),
    serverActions: await q("SELECT queue, folder, item_id, action FROM server_actions ORDER BY 1, 2, 3"),
    tokenCaches: await q("SELECT queue, updated_at, md5(sealed) FROM token_cache ORDER BY queue"),
    raw: await q("SELECT queue, key, part, md5(bytes) FROM raw_parts ORDER BY 1, 2, 3"),
  };
}
