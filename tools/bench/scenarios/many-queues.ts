/**
 * Scenario 3, many queues: 1,000 queue mailboxes (Dovecot users, each signed in through the
 * identity stand-in), polled every minute with IDLE on (the default); once every queue has
 * fetched, the daemon's steady state is watched for several minutes: RSS, CPU, event-loop
 * delay, the time a poll round takes, IMAP connections held, requests to the identity stand-in.
 */
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";
import { ProbeProcess } from "../../testbed/probe-process.js";
import { connectionsTo, sleep, type BenchContext, type ScenarioReport } from "../context.js";
import { markdownTable, MB, percentile, round, spread } from "../stats.js";

export interface ManyQueuesInput {
  readonly queues: number;
  readonly steadyMs: number;
}

/** The report section's title (also the section a failed run of this scenario leaves). */
export const MANY_QUEUES_TITLE = "3. Many queues";

export async function manyQueuesScenario(ctx: BenchContext, input: ManyQueuesInput): Promise<ScenarioReport> {
  const { bed } = ctx;
  const mailboxes = Array.from({ length: input.queues }, (_, i) => ({
    name: `q${String(i).padStart(4, "0")}`,
    address: `q${String(i).padStart(4, "0")}@many.bench.test`,
    password: `many-password-${i}`,
  }));
  for (const m of mailboxes) bed.identity.addUser({ username: m.address, password: m.password });
  const dir = path.join(ctx.workDir, "many");
  const configFile = bed.writeDaemonConfig(
    {
      stateDir: path.join(dir, "state"),
      logLevel: "warn",
      poll: "1m",
      queues: mailboxes.map((m) => ({ ...m, handlers: [{ type: "directory", path: path.join(dir, "out") }] })),
    },
    path.join(ctx.workDir, "many.yaml"),
  );
  // --cpu-prof covers the whole run (start and sign-ins too): read the steady state from the
  // profile's later part, or compare two runs.
  const execArgv = ctx.options.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${ctx.options.cpuProfileDir}`] : [];
  // The event-loop delay monitor at its default 1 ms costs ~2.5% of a core by itself: half the
  // budget measured here. At 20 ms it costs ~0.3%, and delays of interest are longer anyway.
  const probe = new ProbeProcess(configFile, { execArgv, env: { MAILFETCHD_PROBE_LOOP_RESOLUTION_MS: "20" } });
  try {
    const startedAt = Date.now();
    ctx.log(`many queues: starting ${input.queues} queues`);
    await probe.start();
    const fetchedOnce = () => new Set(probe.events.filter((e) => e.name === "fetch-succeeded").map((e) => e.queue)).size;
    await probe.waitFor(`every queue's first fetch`, () => fetchedOnce() >= input.queues, 15 * 60_000);
    const firstRoundMs = Date.now() - startedAt;
    await sleep(Math.min(30_000, input.steadyMs / 4));
    ctx.log(`many queues: all fetched once after ${Math.round(firstRoundMs / 1000)} s; steady state for ${Math.round(input.steadyMs / 1000)} s`);
    const identityBefore = bed.identity.tokenRequests.length;
    const loginsBefore = imapLogins(bed.dovecot.logFile);
    const windowStart = Date.now();
    probe.reset();
    const rss: number[] = [];
    const heap: Array<{ used: number; total: number; external: number }> = [];
    const connections: number[] = [];
    while (Date.now() - windowStart < input.steadyMs) {
      await sleep(5_000);
      const sample = await probe.vitals();
      rss.push(sample.rssBytes / MB);
      heap.push({ used: sample.heapUsedBytes / MB, total: sample.heapTotalBytes / MB, external: sample.externalBytes / MB });
      connections.push(connectionsTo(probe.pid!, bed.dovecot.port));
    }
    const vitals = await probe.vitals();
    const windowMs = Date.now() - windowStart;
    const identityPerMinute = ((bed.identity.tokenRequests.length - identityBefore) / windowMs) * 60_000;
    const loginsPerMinute = ((imapLogins(bed.dovecot.logFile) - loginsBefore) / windowMs) * 60_000;
    const looks = probe.events.filter((e) => e.name === "fetch-succeeded" && e.at >= windowStart);
    const rounds = pollRounds(looks.map((e) => e.at));
    const perMinute = (n: number) => (n / windowMs) * 60_000;
    const probedPerMinute = perMinute(looks.filter((e) => e.probed).length);
    const cyclesPerMinute = perMinute(looks.filter((e) => !e.probed).length);
    const failures = probe.events.filter((e) => e.name === "fetch-failed" && e.at >= windowStart).length;
    const cpuPercent = (vitals.cpuMicros / 1000 / vitals.wallMs) * 100;
    const rssMax = Math.max(...rss, vitals.rssBytes / MB);
    return {
      title: MANY_QUEUES_TITLE,
      markdown: [
        `${input.queues} queues, poll every minute, IDLE on (the default); every queue signed in with its own password (ROPC). ` +
          `Steady state watched for ${Math.round(windowMs / 1000)} s after every queue had fetched once (${Math.round(firstRoundMs / 1000)} s after start, sign-ins included).`,
        "",
        markdownTable(
          [
            "RSS MB (median / max)",
            "peak RSS MB",
            "CPU % of a core",
            "event-loop delay p99 ms",
            "poll round s (median)",
            "IMAP connections held",
            "IMAP logins/min",
            "full cycles/min",
            "polls answered by IDLE/min",
            "identity requests/min",
            "failed fetches",
          ],
          [
            [
              `${round(spread(rss).median, 0)} / ${round(rssMax, 0)}`,
              round(vitals.maxRssBytes / MB, 0),
              round(cpuPercent, 1),
              round(vitals.loopDelayMs.p99, 1),
              round(percentile(rounds, 50) / 1000, 1),
              `${Math.min(...connections)}-${Math.max(...connections)}`,
              round(loginsPerMinute, 1),
              round(cyclesPerMinute, 1),
              round(probedPerMinute, 1),
              round(identityPerMinute, 1),
              String(failures),
            ],
          ],
        ),
        "",
        `Where the RSS goes (medians): V8 heap ${round(spread(heap.map((h) => h.used)).median, 0)} MB used of ${round(spread(heap.map((h) => h.total)).median, 0)} MB committed, ` +
          `${round(spread(heap.map((h) => h.external)).median, 0)} MB held outside it by JS objects (Buffers); the rest is native: code, TLS sessions, allocator.`,
        "",
        `- ${input.queues} queues <= 300 MB RSS: ${round(rssMax, 0)} MB — ${rssMax <= 300 ? "holds" : "missed"}`,
        `- under 5% of one core at steady state: ${round(cpuPercent, 1)}% — ${cpuPercent < 5 ? "holds" : "missed"}`,
      ].join("\n"),
    };
  } finally {
    await probe.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** XOAUTH2 logins Dovecot has logged so far: every connection the daemon opened (IDLE or fetch). */
function imapLogins(logFile: string): number {
  let text = "";
  try {
    text = readFileSync(logFile, "utf8");
  } catch {
    return 0;
  }
  let count = 0;
  for (let at = text.indexOf("Login: user=<"); at >= 0; at = text.indexOf("Login: user=<", at + 1)) count++;
  return count;
}

/** Durations of the bursts of fetches (queues falling due together), split where nothing happens for 10 s. */
function pollRounds(times: number[]): number[] {
  const sorted = [...times].sort((a, b) => a - b);
  const rounds: number[] = [];
  let first = sorted[0];
  let last = sorted[0];
  for (const at of sorted.slice(1)) {
    if (at - last! > 10_000) {
      rounds.push(last! - first!);
      first = at;
    }
    last = at;
  }
  if (first !== undefined && last !== undefined) rounds.push(last - first);
  return rounds;
}
