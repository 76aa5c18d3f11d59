/**
 * Scenario 1b, backlog drain over Microsoft Graph next to IMAP: the same corpus in a Dovecot
 * mailbox and in a Graph stand-in mailbox, drained by mailfetchd with `source: imap` and with
 * `source: graph` (fetched, spooled durably, parsed, delivered by the directory handler).
 * Repetitions are interleaved. The Graph stand-in runs in this (the bench) process, so its own
 * cost is this process's CPU during the Graph drain: shown beside the daemon's, as Dovecot's
 * cost is not counted for IMAP either. Requests per message are counted at the stand-in.
 */
import type { BenchContext, ScenarioReport } from "../context.js";
import { markdownTable, MB, showSpread, spread } from "../stats.js";
import { mailfetchd, type DrainMailbox, type Measure } from "./drain.js";

export interface GraphDrainInput {
  /** A Dovecot mailbox holding the corpus (the drain scenario's single mailbox). */
  readonly imap: DrainMailbox;
  /** The corpus, as put into the Graph stand-in. */
  readonly messages: readonly Buffer[];
}

/** The report section's title (also the section a failed run of this scenario leaves). */
export const GRAPH_DRAIN_TITLE = "1b. Backlog drain over Microsoft Graph, next to IMAP";

export async function graphDrainScenario(ctx: BenchContext, input: GraphDrainInput): Promise<ScenarioReport> {
  const { bed, options } = ctx;
  const graph = { name: "graphdrain", address: "graphdrain@bench.test", password: "graphdrain-password-1" };
  bed.identity.addUser({ username: graph.address, password: graph.password });
  bed.graph.addMailbox(graph.address);
  for (const raw of input.messages) bed.graph.putMessage(graph.address, "inbox", raw);
  const count = input.messages.length;
  const bytes = input.messages.reduce((sum, raw) => sum + raw.length, 0);

  const imapRuns: Measure[] = [];
  const graphRuns: Array<Measure & { requests: number; standInCpuMicros: number }> = [];
  for (let rep = 1; rep <= options.repetitions; rep++) {
    // The --quick smoke run checks the Graph harness only; the IMAP drain is scenario 1's.
    if (!options.quick) {
      ctx.log(`graph drain rep ${rep}/${options.repetitions}: mailfetchd over IMAP`);
      imapRuns.push(await mailfetchd(ctx, [input.imap], count, `gimap-${rep}`));
    }
    ctx.log(`graph drain rep ${rep}: mailfetchd over Graph`);
    const requestsBefore = bed.graph.requests.length;
    const cpuBefore = process.cpuUsage();
    const measure = await mailfetchd(ctx, [graph], count, `ggraph-${rep}`, { source: "graph" });
    const cpu = process.cpuUsage(cpuBefore);
    const requests = bed.graph.requests.slice(requestsBefore).filter((r) => r.mailbox === graph.address).length;
    graphRuns.push({ ...measure, requests, standInCpuMicros: cpu.user + cpu.system });
  }

  const rate = (m: Measure) => (m.messages / m.ms) * 1000;
  const row = (name: string, runs: readonly Measure[], extra: { requests?: string; standIn?: string }) => [
    name,
    showSpread(spread(runs.map(rate))),
    showSpread(spread(runs.map((m) => (bytes / MB / m.ms) * 1000))),
    showSpread(spread(runs.map((m) => m.maxRssBytes / MB)), 0),
    showSpread(spread(runs.map((m) => m.cpuMicros / 1e6))),
    extra.requests ?? "n/a",
    extra.standIn ?? "n/a",
  ];
  const table = markdownTable(
    ["source", "msg/s", "MB/s", "daemon peak RSS MB", "daemon CPU s", "requests per message", "stand-in CPU s (bench process)"],
    [
      ...(imapRuns.length > 0 ? [row("mailfetchd, source: imap (Dovecot)", imapRuns, {})] : []),
      row("mailfetchd, source: graph (Graph stand-in)", graphRuns, {
        requests: showSpread(spread(graphRuns.map((m) => m.requests / count))),
        standIn: showSpread(spread(graphRuns.map((m) => m.standInCpuMicros / 1e6))),
      }),
    ],
  );
  return {
    title: GRAPH_DRAIN_TITLE,
    markdown: [
      `${count} messages, ${(bytes / MB).toFixed(0)} MB (the drain corpus), in one mailbox. Median of ${options.repetitions} (min-max), IMAP and Graph runs interleaved. ` +
        "Graph: delta pages of 50, one `$value` per message (at most 3 requests in flight per mailbox), spooled (fsync), parsed and delivered as for IMAP. " +
        "The stand-in's CPU is this bench process's during the Graph drain (it serves every request in-process); Dovecot's CPU is not counted for IMAP.",
      "",
      table,
    ].join("\n"),
  };
}
