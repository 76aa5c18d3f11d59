/**
 * `npm run bench`: mailfetchd measured on the test bed (real Dovecot over TLS, the identity
 * stand-in, real disks), side by side with the ceiling and a peer, in one run (issue 8).
 *
 *   npm run bench                    full run (~30 min), figures written into BENCHMARKS.md
 *   npm run bench -- --scale 0.1     a tenth of the volumes, for a shorter look
 *   npm run bench -- --quick         CI smoke run of the harness (< 1 min), nothing written
 *   npm run bench -- --only drain,latency --reps 5 --cpu-prof /tmp/prof --out FILE
 *   npm run bench -- --only worst    worst-case parse cost per class, and fairness between queues
 *   npm run bench -- --only replicas SQLite vs PostgreSQL with 1 and 3 replicas, failover over 20 kills
 *
 * The corpus is generated once per run straight into Dovecot's Maildir and reused by every
 * repetition and scenario; each run's outputs are deleted as soon as they are measured.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { ImapFlow } from "imapflow";
import { REPO_ROOT } from "../repo-root.js";
import { startTestBed, type TestBed } from "../testbed/test-bed.js";
import { fetchAccessToken } from "./access-token.js";
import type { BenchContext, BenchOptions, ScenarioReport } from "./context.js";
import { mailOwner, maildirOf } from "./context.js";
import { linkCorpus, planCorpus, renderCorpusMessage, writeCorpus } from "./corpus.js";
import { renderReport, writeReport } from "./report.js";
import { BIG_MESSAGE_TITLE, bigMessageScenario } from "./scenarios/big-message.js";
import { DRAIN_TITLE, drainScenario, type DrainMailbox } from "./scenarios/drain.js";
import { GRAPH_DRAIN_TITLE, graphDrainScenario } from "./scenarios/graph-drain.js";
import { LATENCY_TITLE, latencyScenario } from "./scenarios/latency.js";
import { MANY_QUEUES_TITLE, manyQueuesScenario } from "./scenarios/many-queues.js";
import { REPLICAS_TITLE, replicasScenario } from "./scenarios/replicas.js";
import { WORST_CASE_TITLE, worstCaseScenario } from "./scenarios/worst-case.js";
import { MB } from "./stats.js";

const SCENARIOS = ["drain", "graph", "latency", "many", "big", "worst", "replicas"] as const;
const CORPUS_SEED = "bench-corpus-1";
const REPORT_FILE = path.join(REPO_ROOT, "BENCHMARKS.md");

/** 1,000 IDLE sessions need 1,000 imap processes; TLS is proxied by imap-login, so one process serves many. */
const DOVECOT_LIMITS = `
# npm run bench: 1,000 queues hold 1,000 IMAP sessions.
default_process_limit = 2500
default_client_limit = 10000
mail_max_userip_connections = 50
service imap-login {
  service_count = 0
  client_limit = 2500
  process_min_avail = 2
}
service imap {
  process_limit = 2500
}
`;

const USAGE = `usage: npm run bench -- [options]

Measures mailfetchd on the test bed (Dovecot over TLS, the identity stand-in, real disks) beside
its ceilings and getmail6, and writes the figures into BENCHMARKS.md (a full run only).

scenarios (--only, comma-separated; all by default):
  drain    backlog drain: 1 queue and 10 queues against bare imapflow, imapflow + mailparser
           on 2 workers, and getmail6 (when installed: apt-get install getmail6)
  graph    the drain corpus over Microsoft Graph (the stand-in) next to IMAP
  replicas drain with the state in PostgreSQL, 1 and 3 replicas, and failover time
           (left out of --quick unless named)
  latency  new-mail latency over IDLE and polling
  many     many queues in steady state (1,000 at full scale)
  big      one big message among small mail
  worst    worst-case parse cost per input class, and fairness between queues

options:
  --scale N     volumes times N (default 1, ~30 min; 0.1 for a shorter look)
  --reps N      repetitions of each measurement (default 3)
  --only LIST   run only these scenarios; nothing is written unless --out is given
  --out FILE    write the report here instead of BENCHMARKS.md
  --cpu-prof D  run the drain's mailfetchd under node --cpu-prof, profiles into directory D
  --quick       smoke run of the harness on tiny volumes (CI); nothing is written
  --help        this text`;

/** A mistyped option is the caller's mistake: say what is wrong and how to call, no stack trace. */
class UsageError extends Error {}

function parseOptions(): BenchOptions | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        help: { type: "boolean", short: "h", default: false },
        quick: { type: "boolean", default: false },
        scale: { type: "string" },
        reps: { type: "string" },
        only: { type: "string" },
        "cpu-prof": { type: "string" },
        out: { type: "string" },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    return undefined;
  }
  const quick = values.quick ?? false;
  const scale = Number(values.scale ?? (quick ? 0.01 : 1));
  if (!(scale > 0)) throw new UsageError("--scale takes a positive number, e.g. 0.1");
  const only = (values.only ?? "").split(",").filter(Boolean);
  for (const name of only)
    if (!(SCENARIOS as readonly string[]).includes(name)) throw new UsageError(`--only: unknown scenario ${name}; choose from ${SCENARIOS.join(", ")}`);
  return {
    quick,
    scale,
    repetitions: Number(values.reps ?? (quick ? 1 : 3)),
    only,
    cpuProfileDir: values["cpu-prof"],
    // A smoke run or a partial run must not overwrite the published figures.
    out: values.out ?? (quick || only.length > 0 ? undefined : REPORT_FILE),
  };
}

async function main(): Promise<void> {
  const options = parseOptions();
  if (options === undefined) return;
  const repetitions = options.repetitions;
  if (!Number.isInteger(repetitions) || repetitions < 1) throw new UsageError("--reps takes a whole number of at least 1, e.g. 3");
  const startedAt = new Date();
  const log = (message: string) => console.error(`[bench ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0).padStart(4)} s] ${message}`);
  const wants = (name: (typeof SCENARIOS)[number]) => options.only.length === 0 || options.only.includes(name);
  const workDir = await mkdtemp(path.join(tmpdir(), "mailfetchd-bench-"));
  // getmail6 runs as nobody and must pass through (not list) the run's directory.
  await chmod(workDir, 0o711);
  const bed = await startTestBed({ dovecotConfig: DOVECOT_LIMITS });
  const ctx: BenchContext = { bed, options, workDir, log };
  const reports: ScenarioReport[] = [];
  // A scenario that fails costs its own section, not the figures of the others.
  let failed = 0;
  const measure = async (title: string, scenario: () => Promise<ScenarioReport>): Promise<void> => {
    try {
      reports.push(await scenario());
    } catch (error) {
      failed++;
      const reason = error instanceof Error ? error.message : String(error);
      log(`${title}: failed: ${reason}`);
      reports.push({ title, markdown: `Failed in this run: ${reason.split("\n")[0]}` });
    }
  };
  try {
    const wantsReplicas = wants("replicas") && (!options.quick || options.only.includes("replicas"));
    const drain = wants("drain") || wants("graph") || wantsReplicas ? await prepareDrain(ctx) : undefined;
    if (wants("drain")) await measure(DRAIN_TITLE, () => drainScenario(ctx, drain!));
    if (wants("graph")) {
      // The same bytes as in Dovecot (the corpus is deterministic), for the Graph stand-in.
      const messages = planCorpus(drain!.messages, CORPUS_SEED).map((entry) => renderCorpusMessage(entry, CORPUS_SEED, drain!.single.address));
      await measure(GRAPH_DRAIN_TITLE, () => graphDrainScenario(ctx, { imap: drain!.single, messages }));
    }
    if (wants("latency")) {
      const mailbox = { name: "live", address: "live@bench.test", password: "live-password-1" };
      const messages = options.quick ? 10 : Math.max(20, Math.round(200 * options.scale));
      await measure(LATENCY_TITLE, () => latencyScenario(ctx, { mailbox, messages, poll: "1s" }));
    }
    if (wants("many")) {
      const queues = options.quick ? 20 : Math.max(50, Math.round(1000 * options.scale));
      const steadyMs = options.quick ? 10_000 : Math.max(60_000, Math.round(180_000 * options.scale));
      await measure(MANY_QUEUES_TITLE, () => manyQueuesScenario(ctx, { queues, steadyMs }));
    }
    if (wants("big")) {
      await measure(BIG_MESSAGE_TITLE, () => bigMessageScenario(ctx, options.quick ? { bytes: 10 * MB, smallQueues: 3 } : { bytes: 50 * MB, smallQueues: 10 }));
    }
    if (wants("worst")) {
      await measure(WORST_CASE_TITLE, () =>
        worstCaseScenario(
          ctx,
          options.quick
            ? { bytes: 32 * 1024, corpusMessages: 10, floodMessages: 2, aloneMessages: 6 }
            : {
                bytes: 256 * 1024,
                corpusMessages: Math.max(50, Math.round(300 * options.scale)),
                floodMessages: Math.max(4, Math.round(16 * options.scale)),
                aloneMessages: 20,
              },
        ),
      );
    }
    // Three setups and 20 kills take minutes: the smoke run (--quick) leaves it out unless asked for by name.
    if (wants("replicas") && (!options.quick || options.only.includes("replicas")))
      await measure(REPLICAS_TITLE, () => replicasScenario(ctx, { mailboxes: drain!.spread, messages: drain!.messages, kills: options.quick ? 2 : 20 }));
  } finally {
    await bed.close();
    await rm(workDir, { recursive: true, force: true });
  }
  const body = renderReport(reports, options, startedAt, Date.now() - startedAt.getTime());
  console.log(`\n${body}\n`);
  if (options.out) {
    writeReport(options.out, body);
    log(`figures written to ${options.out}`);
  }
  if (failed > 0) {
    log(`${failed} scenario(s) failed: see above`);
    process.exitCode = 1;
  }
}

/** The corpus, written once into one mailbox and hard-linked over 10 more; Dovecot indexes it before anything is timed. */
async function prepareDrain(ctx: BenchContext): Promise<{ single: DrainMailbox; spread: DrainMailbox[]; messages: number; bytes: number }> {
  const { bed, options } = ctx;
  const count = Math.max(20, Math.round(10_000 * options.scale));
  const single = { name: "drain", address: "drain@bench.test", password: "drain-password-1" };
  const spread = Array.from({ length: 10 }, (_, i) => ({ name: `drain${i}`, address: `drain${i}@bench.test`, password: `drain-password-${i}` }));
  for (const m of [single, ...spread]) bed.identity.addUser({ username: m.address, password: m.password });
  const owner = await mailOwner();
  ctx.log(`corpus: generating ${count} messages`);
  const corpus = await writeCorpus(maildirOf(bed, single.address), planCorpus(count, CORPUS_SEED), CORPUS_SEED, single.address, owner);
  await linkCorpus(
    corpus.files,
    spread.map((m) => maildirOf(bed, m.address)),
    owner,
  );
  ctx.log(`corpus: ${corpus.messages} messages, ${(corpus.bytes / MB).toFixed(0)} MB; Dovecot indexing it`);
  for (const m of [single, ...spread]) await warmUp(bed, m);
  return { single, spread, messages: corpus.messages, bytes: corpus.bytes };
}

/** Opens the mailbox once, so Dovecot's first-SELECT work (moving new/ to cur/, the UID list) is not timed. */
async function warmUp(bed: TestBed, mailbox: DrainMailbox): Promise<void> {
  const client = new ImapFlow({
    host: bed.dovecot.host,
    port: bed.dovecot.port,
    secure: true,
    tls: { rejectUnauthorized: false },
    auth: { user: mailbox.address, accessToken: await fetchAccessToken(bed, mailbox.address, mailbox.password) },
    logger: false,
  });
  await client.connect();
  await client.mailboxOpen("INBOX", { readOnly: true });
  await client.logout();
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`bench: ${error.message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  console.error(error);
  process.exitCode = 1;
});
