/**
 * Scenario "replicas": the same backlog over 10 mailboxes drained end to end (fetched, spooled,
 * parsed, delivered by a directory handler) by one daemon on SQLite, one on PostgreSQL, and
 * three replicas sharing one PostgreSQL; then failover: the owner of a queue is killed with
 * SIGKILL 20 times while mail keeps arriving, and the time from the kill to the first delivery
 * of that queue by another replica is measured. PostgreSQL rows and bytes per message are read
 * from the database after the drain.
 */
import { rm } from "node:fs/promises";
import path from "node:path";
import { startPostgres, type Postgres } from "../../testbed/postgres.js";
import { ProbeProcess } from "../../testbed/probe-process.js";
import { sampleMessages } from "../../testbed/sample-messages.js";
import type { BenchContext, ScenarioReport } from "../context.js";
import type { DrainMailbox } from "./drain.js";
import { markdownTable, MB, showSpread, spread } from "../stats.js";

export interface ReplicasInput {
  readonly mailboxes: readonly DrainMailbox[];
  readonly messages: number;
  readonly kills: number;
}

interface Run {
  readonly ms: number;
  /** Peak RSS of each process. */
  readonly rss: number[];
}

const LEASE = "5s";

/** The report section's title (also the section a failed run of this scenario leaves). */
export const REPLICAS_TITLE = "Several replicas on PostgreSQL";

export async function replicasScenario(ctx: BenchContext, input: ReplicasInput): Promise<ScenarioReport> {
  const postgres = await startPostgres();
  try {
    const runs = new Map<string, Run[]>();
    const add = (name: string, run: Run) => runs.set(name, [...(runs.get(name) ?? []), run]);
    let perMessage: { rows: number; bytes: number; size: number } | undefined;
    for (let rep = 1; rep <= ctx.options.repetitions; rep++) {
      ctx.log(`replicas rep ${rep}: SQLite, 1 process`);
      add("SQLite, 1 process", await drain(ctx, input, undefined, 1, `sq-${rep}`));
      const one = await postgres.createDatabase(`bench_one_${rep}`);
      ctx.log(`replicas rep ${rep}: PostgreSQL, 1 replica`);
      add("PostgreSQL, 1 replica", await drain(ctx, input, one, 1, `pg1-${rep}`));
      perMessage ??= await footprint(postgres, `bench_one_${rep}`);
      ctx.log(`replicas rep ${rep}: PostgreSQL, 3 replicas`);
      add("PostgreSQL, 3 replicas", await drain(ctx, input, await postgres.createDatabase(`bench_three_${rep}`), 3, `pg3-${rep}`));
    }
    ctx.log(`replicas: failover, ${input.kills} kills`);
    const failovers = await failover(ctx, input, await postgres.createDatabase("bench_failover"));
    const rows = [...runs].map(([name, list]) => [
      name,
      showSpread(spread(list.map((r) => (input.messages / r.ms) * 1000)), 0),
      showSpread(spread(list.flatMap((r) => r.rss.map((b) => b / MB))), 0),
    ]);
    const sorted = [...failovers].sort((a, b) => a - b);
    const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
    const body = [
      `${input.messages} messages over ${input.mailboxes.length} mailboxes, directory handler, lease ${LEASE}.`,
      "",
      markdownTable(["setup", "messages/s", "peak RSS per process, MB"], rows),
      "",
      `Failover (SIGKILL of a queue's owner to the first delivery of that queue by another replica, ${sorted.length} kills, lease ${LEASE}): p50 ${(pct(50) / 1000).toFixed(1)} s, p99 ${(pct(99) / 1000).toFixed(1)} s, max ${(sorted.at(-1)! / 1000).toFixed(1)} s.`,
      "",
      perMessage
        ? `PostgreSQL per message (after the drain, before retention): ${perMessage.rows.toFixed(1)} rows, ${(perMessage.bytes / 1024).toFixed(1)} KiB on disk (tables, TOAST and indexes) for messages of ${(perMessage.size / 1024).toFixed(1)} KiB on average.`
        : "",
    ].join("\n");
    return { title: REPLICAS_TITLE, markdown: body };
  } finally {
    await postgres.close();
  }
}

async function drain(ctx: BenchContext, input: ReplicasInput, url: string | undefined, replicas: number, label: string): Promise<Run> {
  const dir = path.join(ctx.workDir, label);
  const probes = Array.from({ length: replicas }, (_, i) => new ProbeProcess(config(ctx, input.mailboxes, dir, url, `${label}-${i}`), {}));
  try {
    await Promise.all(probes.map((p) => p.start()));
    const started = performance.now();
    for (const p of probes) p.reset();
    const delivered = () => probes.reduce((n, p) => n + p.count("delivered"), 0);
    try {
      await probes[0]!.waitFor(`${label}: ${input.messages} messages delivered`, () => delivered() >= input.messages, Math.max(300_000, input.messages * 300));
    } catch (error) {
      // Which mailboxes fell behind, and what each replica said last: a slow drain and a stuck queue look alike from outside.
      const distinct = new Map<string, Set<string>>();
      for (const probe of probes)
        for (const event of probe.events)
          if (event.name === "delivered" && event.queue !== undefined) distinct.set(event.queue, (distinct.get(event.queue) ?? new Set()).add(event.id ?? ""));
      ctx.log(`${label}: delivered per replica ${probes.map((p) => p.count("delivered")).join(", ")}`);
      ctx.log(`${label}: distinct per mailbox ${[...distinct].map(([queue, ids]) => `${queue} ${ids.size}`).join(", ")}`);
      probes.forEach((probe, i) => ctx.log(`${label}: replica ${i} said last:\n${probe.tail()}`));
      throw error;
    }
    const ms = performance.now() - started;
    const rss = await Promise.all(probes.map(async (p) => (await p.vitals()).maxRssBytes));
    return { ms, rss };
  } finally {
    await Promise.all(probes.map((p) => p.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}

function config(ctx: BenchContext, mailboxes: readonly DrainMailbox[], dir: string, url: string | undefined, name: string): string {
  return ctx.bed.writeDaemonConfig(
    {
      stateDir: path.join(dir, `state-${name}`),
      logLevel: "warn",
      poll: "1s",
      ...(url ? { postgres: { url, lease: LEASE, replicaId: name } } : {}),
      // Keep: the backlog stays on the server for the next setup, whose own state starts empty.
      queues: mailboxes.map((m) => ({ ...m, options: { idle: false }, handlers: [{ type: "directory", path: path.join(dir, "out") }] })),
    },
    path.join(ctx.workDir, `${name}.yaml`),
  );
}

/** Rows and bytes in PostgreSQL per message spooled. */
async function footprint(postgres: Postgres, database: string): Promise<{ rows: number; bytes: number; size: number }> {
  const [counts] = await postgres.query<{ messages: number; rows: number; bytes: number; size: number }>(
    `SELECT (SELECT count(*) FROM messages)::float AS messages, (SELECT avg(size) FROM messages)::float AS size,
       ((SELECT count(*) FROM messages) + (SELECT count(*) FROM deliveries) + (SELECT count(*) FROM raw_parts) + (SELECT count(*) FROM server_actions))::float AS rows,
       (SELECT sum(pg_total_relation_size(c)) FROM unnest(ARRAY['messages', 'deliveries', 'raw_parts', 'server_actions', 'cursors']::regclass[]) AS c)::float AS bytes`,
    [],
    database,
  );
  return { rows: counts!.rows / counts!.messages, bytes: counts!.bytes / counts!.messages, size: counts!.size };
}

/**
 * Three replicas; per kill: one new message into a queue, wait for its delivery, find the
 * replica that delivered it (the owner), put another message in, kill the owner at once,
 * start it again, and time until the second message is delivered by a survivor.
 */
async function failover(ctx: BenchContext, input: ReplicasInput, url: string): Promise<number[]> {
  const dir = path.join(ctx.workDir, "failover");
  const mailbox = input.mailboxes[0]!;
  const probes = Array.from({ length: 3 }, (_, i) => new ProbeProcess(config(ctx, [mailbox], dir, url, `fo-${i}`), {}));
  const times: number[] = [];
  try {
    await Promise.all(probes.map((p) => p.start()));
    const messages = sampleMessages(input.kills * 2 + 2, { seed: "failover", to: mailbox.address });
    let next = 0;
    const deliveredBy = async () => {
      const before = probes.map((p) => p.count("delivered"));
      await ctx.bed.dovecot.deliver(mailbox.address, messages[next++]!.raw);
      await probes[2]!.waitFor("a delivery", () => probes.some((p, i) => p.count("delivered") > before[i]!), 120_000);
      return probes.findIndex((p, i) => p.count("delivered") > before[i]!);
    };
    // The backlog of the drain is in this mailbox too: wait until it is delivered.
    await deliveredBy();
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    for (let kill = 0; kill < input.kills; kill++) {
      const owner = await deliveredBy();
      const before = probes.map((p) => p.count("delivered"));
      await ctx.bed.dovecot.deliver(mailbox.address, messages[next++]!.raw);
      const killedAt = performance.now();
      process.kill(probes[owner]!.pid!, "SIGKILL");
      await probes[(owner + 1) % probes.length]!.waitFor(
        "a delivery by a survivor",
        () => probes.some((p, i) => i !== owner && p.count("delivered") > before[i]!),
        120_000,
      );
      times.push(performance.now() - killedAt);
      const restarted = new ProbeProcess(config(ctx, [mailbox], dir, url, `fo-${owner}`), {});
      await restarted.start();
      probes[owner] = restarted;
    }
    return times;
  } finally {
    await Promise.all(probes.map((p) => p.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}
