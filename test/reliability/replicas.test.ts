/**
 * Several replicas: 3 daemon processes share the queues through one PostgreSQL while they
 * drain the mailboxes, and during the drain: a random replica is killed with SIGKILL every few
 * seconds and started again, one is stopped with SIGSTOP past its lease and resumed, and
 * PostgreSQL is cut for 10 s. At the end: lost 0, every repeat under its id, the queues that
 * move messages out after spooling hold each message once in their target folder (no server
 * action taken twice to ill effect), and no refresh token was redeemed twice (the identity
 * stand-in refuses a reused one). 12 queues and 600 messages by default;
 * MAILFETCHD_SOAK=1 runs the 30 queues and 3,000 messages with 20 kills.
 */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startPostgres, type Postgres } from "../../tools/testbed/postgres.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { WebhookReceiver } from "../../tools/testbed/helpers/webhook-receiver.js";
import { expectedStableId } from "../../tools/testbed/helpers/expected-id.js";
import { recordFigures } from "./figures.js";

const SOAK = Boolean(process.env.MAILFETCHD_SOAK);
const QUEUE_COUNT = SOAK ? 30 : 12;
const TOTAL = SOAK ? 3_000 : 600;
const KILLS = SOAK ? 20 : 6;
const REPLICAS = ["r1", "r2", "r3"];
const LEASE_MS = 10_000;
const QUEUES = Array.from({ length: QUEUE_COUNT }, (_, i) => {
  const name = `rq${String(i).padStart(2, "0")}`;
  // Every third queue moves each message out of the inbox once spooled.
  return { name, address: `${name}@example.test`, password: `${name}-password`, moves: i % 3 === 0 };
});

let bed: TestBed;
let postgres: Postgres;
let receiver: WebhookReceiver;
let url: string;
const expected = new Map<string, string>(); // id -> queue
const daemons = new Map<string, DaemonProcess>();
/** Every process started, killed ones too: their logs explain a failure. */
const everyDaemon: Array<{ name: string; daemon: DaemonProcess }> = [];

beforeAll(async () => {
  [bed, postgres, receiver] = await Promise.all([startTestBed(), startPostgres(), WebhookReceiver.start()]);
  url = await postgres.createDatabase("replicas");
  for (const q of QUEUES) {
    bed.identity.addUser({ username: q.address, password: q.password });
    if (q.moves) await bed.dovecot.createFolder(q.address, "Processed");
    for (const m of sampleMessages(TOTAL / QUEUE_COUNT, { seed: `replicas-${q.name}`, to: q.address })) {
      await bed.dovecot.deliver(q.address, m.raw);
      expected.set(await expectedStableId(q.address, m.raw), q.name);
    }
  }
}, 900_000);

afterAll(async () => {
  for (const daemon of daemons.values()) await daemon.stop("SIGKILL").catch(() => undefined);
  await receiver?.close();
  await Promise.allSettled([bed?.close(), postgres?.close()]);
});

function start(name: string): DaemonProcess {
  const configFile = bed.writeDaemonConfig(
    {
      stateDir: path.join(bed.dir, `state-${name}`),
      logLevel: "info",
      poll: "1s",
      postgres: { url, lease: `${LEASE_MS / 1000}s`, replicaId: name },
      queues: QUEUES.map((q) => ({
        name: q.name,
        address: q.address,
        password: q.password,
        options: { idle: false, ...(q.moves ? { afterSpool: "move", moveTo: "Processed" } : {}) },
        handlers: [{ type: "webhook", name: "crm", url: receiver.url(), timeout: "10s" }],
      })),
    },
    path.join(bed.dir, `config-${name}.yaml`),
  );
  const daemon = new DaemonProcess(configFile);
  daemon.start();
  daemons.set(name, daemon);
  everyDaemon.push({ name, daemon });
  return daemon;
}

/** Warnings and errors logged about these queues, counted per replica and message. */
function said(queues: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { name, daemon } of everyDaemon) {
    for (const line of daemon.lines) {
      if (Number(line.level) < 40 || !queues.includes(String(line.queue))) continue;
      const key = `${name} ${String(line.queue)} ${String(line.code ?? "")} ${String(line.msg).slice(0, 120)}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
  }
  return counts;
}

/** Writes every replica's log lines to a file outside the test bed (which is removed) and names it. */
function keepLogs(): string {
  const file = path.join(tmpdir(), `mailfetchd-replicas-${Date.now()}.jsonl`);
  writeFileSync(file, everyDaemon.flatMap(({ name, daemon }, run) => daemon.lines.map((line) => JSON.stringify({ replica: name, run, ...line }))).join("\n"));
  return file;
}

const delivered = () => new Set(receiver.requests.map((r) => String(r.headers["webhook-id"])));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("several replicas", () => {
  it(
    `lose nothing while ${REPLICAS.length} replicas drain ${TOTAL} messages of ${QUEUE_COUNT} queues through kills, a pause past the lease and a PostgreSQL cut`,
    { timeout: SOAK ? 3_600_000 : 900_000 },
    async () => {
      expect(expected.size).toBe(TOTAL);
      let seed = 11;
      const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
      const started = Date.now();
      for (const name of REPLICAS) start(name);

      // Faults, in this order, while the drain goes on.
      let kills = 0;
      while (kills < KILLS) {
        await sleep(2_000 + random() * 3_000);
        const victim = REPLICAS[Math.floor(random() * REPLICAS.length)]!;
        await daemons.get(victim)!.stop("SIGKILL");
        kills++;
        start(victim);
        if (kills === Math.floor(KILLS / 2)) {
          // One pauses past its lease, then goes on.
          const paused = daemons.get(REPLICAS[(kills + 1) % REPLICAS.length]!)!;
          paused.signal("SIGSTOP");
          await sleep(LEASE_MS * 2);
          paused.signal("SIGCONT");
        }
      }
      const deliveredBeforeCut = delivered().size;
      await postgres.stop();
      await sleep(10_000);
      await postgres.start();

      const deadline = Date.now() + (SOAK ? 1_800_000 : 600_000);
      while ([...expected.keys()].some((id) => !delivered().has(id)) && Date.now() < deadline) await sleep(500);
      const seconds = Math.round((Date.now() - started) / 1000);

      const ids = receiver.requests.map((r) => String(r.headers["webhook-id"]));
      const distinct = new Set(ids);
      const lost = [...expected.keys()].filter((id) => !distinct.has(id)).length;
      const unexpected = [...distinct].filter((id) => !expected.has(id)).length;
      const moving = QUEUES.filter((q) => q.moves);
      // The moves owed for the last messages are taken at the owners' next cycles.
      const inboxes = async () => Promise.all(moving.map(async (q) => bed.dovecot.countMessages(q.address)));
      const movedBy = Date.now() + 300_000;
      while ((await inboxes()).some((n) => n !== 0) && Date.now() < movedBy) await sleep(500);
      const left = await inboxes();
      const diagnostics = async () =>
        JSON.stringify({
          left: Object.fromEntries(moving.map((q, i) => [q.name, left[i]])),
          owed: await postgres.query("SELECT queue, count(*)::int AS n FROM server_actions GROUP BY queue", [], "replicas"),
          leases: await postgres.query("SELECT queue, owner, epoch, lease_until > now() AS live FROM queue_leases ORDER BY queue", [], "replicas"),
          alive: [...daemons].map(([name, d]) => [name, d.lines.at(-1)?.msg]),
          processed: Object.fromEntries(await Promise.all(moving.map(async (q) => [q.name, await bed.dovecot.countMessages(q.address, "Processed")]))),
          inboxFlags: Object.fromEntries(
            await Promise.all(
              moving
                .filter((_, i) => left[i] !== 0)
                .map(async (q) => [
                  q.name,
                  (await bed.dovecot.doveadm(["fetch", "-u", q.address, "uid flags", "mailbox", "INBOX"])).replace(/\s+/g, " ").slice(0, 300),
                ]),
            ),
          ),
          cursors: await postgres.query("SELECT queue, position FROM cursors ORDER BY queue", [], "replicas"),
          spooled: await postgres.query(
            "SELECT queue, count(*)::int AS n, count(*) FILTER (WHERE awaiting_refetch)::int AS refetch FROM messages GROUP BY queue ORDER BY queue",
            [],
            "replicas",
          ),
          // What the replicas said about the queues left behind, and where all of it is.
          said: said(moving.filter((_, i) => left[i] !== 0).map((q) => q.name)),
          logs: keepLogs(),
        });
      const movedTwice = (await Promise.all(moving.map(async (q) => (await bed.dovecot.countMessages(q.address, "Processed")) - TOTAL / QUEUE_COUNT))).reduce(
        (a, b) => a + b,
        0,
      );
      const refreshes = bed.identity.tokenRequests.filter((r) => r.grantType === "refresh_token");
      const reusedRefreshTokens = refreshes.filter((r) => r.outcome === 400).length;
      const fenced = [...daemons.values()].flatMap((d) => d.lines).filter((l) => l.code === "STATE_FENCED").length;
      const takeovers = [...daemons.values()].flatMap((d) => d.lines).filter((l) => l.msg === "queue lease acquired" && l.tookOver === true).length;

      expect(lost, "lost").toBe(0);
      // A move the server refused (its UID set named a message another replica had moved) is taken
      // again for the messages still there: none stays in a moving queue's inbox.
      const movesLeft = left.reduce((a, b) => a + b, 0);
      if (movesLeft > 0) expect.fail(`messages left in a moving queue's inbox: ${await diagnostics()}`);
      expect(unexpected, "a repeat carried another id").toBe(0);
      expect(movedTwice, "messages moved into Processed more than once").toBe(0);
      expect(reusedRefreshTokens, "a refresh token redeemed twice").toBe(0);
      recordFigures("replicas", [
        {
          fault: `${REPLICAS.length} replicas: SIGKILL x${kills} (restarted), SIGSTOP ${(LEASE_MS * 2) / 1000}s past a ${LEASE_MS / 1000}s lease, PostgreSQL cut 10s`,
          queues: QUEUE_COUNT,
          messages: expected.size,
          lost,
          duplicated: ids.length - distinct.size,
          movedTwice,
          movesLeftInInbox: movesLeft,
          refreshTokensReused: reusedRefreshTokens,
          takeovers,
          fencedWritesLogged: fenced,
          deliveredBeforeCut,
          secondsInAll: seconds,
        },
      ]);
      for (const name of REPLICAS) await daemons.get(name)!.stop("SIGTERM");
    },
  );
});
