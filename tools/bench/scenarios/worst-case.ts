/**
 * Scenario 5 (issue 13), what a hostile sender can cost:
 *
 * a. Parse cost of each worst-case class (tools/testbed/hostile-messages.ts) at 1x and 4x size,
 *    in CPU ms per MB, next to the ordinary corpus: linear means the 4x figure is no higher
 *    than the 1x one; the target is no class above 5x the corpus. Measured in this process
 *    with MailparserParser (what a parser worker runs), CPU time from process.cpuUsage, each
 *    class parsed once at a small size first so JIT warm-up is not counted.
 * b. Fairness: another queue's delivery latency (save to handler write, IDLE) while one queue
 *    receives worst-case messages, with the daemon's two parser workers, against the same
 *    queue's latency with nothing else going on.
 */
import { rm } from "node:fs/promises";
import path from "node:path";
import { MailparserParser } from "../../../src/parse/mail-parser.js";
import { WORST_CASE_CLASSES } from "../../testbed/hostile-messages.js";
import { ProbeProcess } from "../../testbed/probe-process.js";
import { sampleMessages } from "../../testbed/sample-messages.js";
import { sleep, type BenchContext, type ScenarioReport } from "../context.js";
import { planCorpus, renderCorpusMessage } from "../corpus.js";
import { markdownTable, MB, percentile, round, showSpread, spread } from "../stats.js";

export interface WorstCaseInput {
  /** The 1x size of each worst case. */
  readonly bytes: number;
  /** Corpus messages parsed for the reference figure. */
  readonly corpusMessages: number;
  /** Worst-case messages sent to the flooded queue, and how long the other queue's mail flows. */
  readonly floodMessages: number;
  /** The other queue's messages for its latency alone. */
  readonly aloneMessages: number;
}

const KB = 1024;

/** The report section's title (also the section a failed run of this scenario leaves). */
export const WORST_CASE_TITLE = "5. Worst-case parse cost and fairness between queues";

export async function worstCaseScenario(ctx: BenchContext, input: WorstCaseInput): Promise<ScenarioReport> {
  const parser = new MailparserParser();
  const cpuMsPerMb = async (raw: Buffer): Promise<number> => {
    const before = process.cpuUsage();
    await parser.parse(raw);
    const used = process.cpuUsage(before);
    return (used.user + used.system) / 1000 / (raw.length / MB);
  };

  ctx.log(`worst case: corpus reference (${input.corpusMessages} messages)`);
  const corpus = { all: { ms: 0, bytes: 0 }, small: { ms: 0, bytes: 0 } };
  for (const entry of planCorpus(input.corpusMessages, "bench-worst-corpus")) {
    const raw = renderCorpusMessage(entry, "bench-worst-corpus", "q@bench.test");
    const ms = ((await cpuMsPerMb(raw)) * raw.length) / MB;
    corpus.all.ms += ms;
    corpus.all.bytes += raw.length;
    if (entry.kind === "small") {
      corpus.small.ms += ms;
      corpus.small.bytes += raw.length;
    }
  }
  const corpusAll = corpus.all.ms / (corpus.all.bytes / MB);
  const corpusSmall = corpus.small.ms / (corpus.small.bytes / MB);

  const rows: string[][] = [];
  let worstRatio = 0;
  let worstClass = "";
  let superLinear = 0;
  for (const worst of WORST_CASE_CLASSES) {
    ctx.log(`worst case: ${worst.klass}`);
    await parser.parse(worst.make(16 * KB));
    const measure = async (bytes: number) => {
      const raw = worst.make(bytes);
      const figures: number[] = [];
      for (let rep = 0; rep < ctx.options.repetitions; rep++) figures.push(await cpuMsPerMb(raw));
      return { size: raw.length, figure: spread(figures) };
    };
    const one = await measure(input.bytes);
    const four = await measure(4 * input.bytes);
    const ratio = Math.max(one.figure.median, four.figure.median) / corpusSmall;
    if (ratio > worstRatio) [worstRatio, worstClass] = [ratio, worst.klass];
    // Linear: the 4x message costs no more per MB (with a little noise) than the 1x one.
    const linear = four.figure.median <= one.figure.median * 1.25;
    if (!linear) superLinear++;
    rows.push([
      worst.klass,
      worst.attacks,
      `${round(one.size / KB, 0)} / ${round(four.size / KB, 0)}`,
      showSpread(one.figure, 0),
      showSpread(four.figure, 0),
      round(four.figure.median / one.figure.median, 2),
      `${round(ratio, 1)}x / ${round(Math.max(one.figure.median, four.figure.median) / corpusAll, 1)}x`,
    ]);
  }

  const fairness = await fairnessRun(ctx, input);
  return {
    title: WORST_CASE_TITLE,
    markdown: [
      `Parse CPU per MB (MailparserParser with the enrichers, median of ${ctx.options.repetitions}, min-max) of a generated worst case of each class at 1x and 4x size. ` +
        `Corpus reference over ${input.corpusMessages} corpus messages: ${round(corpusAll, 0)} ms/MB for all (mostly attachment bytes), ${round(corpusSmall, 0)} ms/MB for the small text/HTML ones (the like-for-like figure).`,
      "",
      markdownTable(["class", "attacks", "size KB (1x / 4x)", "1x CPU ms/MB", "4x CPU ms/MB", "4x / 1x", "worst vs corpus (small / all)"], rows),
      "",
      `- linear (4x costs at most 1.25x per MB of 1x): ${superLinear === 0 ? "holds for every class" : `missed by ${superLinear} class(es)`}`,
      `- no class above 5x the corpus (small text/HTML messages): worst ${worstClass} at ${round(worstRatio, 1)}x — ${worstRatio <= 5 ? "holds" : "missed"}`,
      "",
      fairness,
    ].join("\n"),
  };
}

interface Mailbox {
  readonly name: string;
  readonly address: string;
  readonly password: string;
}

/** The other queue's latency, first alone, then while the flooded queue parses worst cases. */
async function fairnessRun(ctx: BenchContext, input: WorstCaseInput): Promise<string> {
  const slowClass = WORST_CASE_CLASSES.find((c) => c.klass === "html at the depth limit")!;
  const slow = slowClass.make(MB);
  const results: string[][] = [];
  for (const withFlood of [false, true]) {
    const label = withFlood ? "flood" : "alone";
    const flood: Mailbox = { name: "flood", address: `flood-${label}@worst.bench.test`, password: "flood-password-1" };
    const other: Mailbox = { name: "other", address: `other-${label}@worst.bench.test`, password: "other-password-1" };
    for (const m of [flood, other]) ctx.bed.identity.addUser({ username: m.address, password: m.password });
    const dir = path.join(ctx.workDir, `worst-${label}`);
    const output = { type: "directory", path: path.join(dir, "out") };
    const configFile = ctx.bed.writeDaemonConfig(
      { stateDir: path.join(dir, "state"), logLevel: "warn", poll: "1h", queues: [flood, other].map((q) => ({ ...q, handlers: [output] })) },
      path.join(ctx.workDir, `worst-${label}.yaml`),
    );
    const probe = new ProbeProcess(configFile);
    try {
      await probe.start();
      const sessions = () => new Set(probe.events.filter((e) => e.name === "idle-session-opened").map((e) => e.queue)).size;
      await probe.waitFor("both IDLE sessions", () => sessions() >= 2, 60_000);
      probe.reset();
      ctx.log(`worst case: fairness, other queue ${withFlood ? `while the flooded queue gets ${input.floodMessages} worst cases` : "alone"}`);
      const floodStart = Date.now();
      if (withFlood) for (let i = 0; i < input.floodMessages; i++) await ctx.bed.dovecot.deliver(flood.address, withMessageId(slow, `flood-${i}`));
      const floodDone = () => probe.count("delivered", flood.name) >= input.floodMessages;
      const mail = sampleMessages(200, { seed: `worst-other-${label}-${Date.now()}`, to: other.address });
      const sent: number[] = [];
      // The other queue's mail flows until the flood is parsed (or, alone, for aloneMessages).
      for (let i = 0; i < mail.length && (withFlood ? !floodDone() : i < input.aloneMessages); i++) {
        sent.push(Date.now());
        await ctx.bed.dovecot.deliver(other.address, mail[i]!.raw);
        await sleep(300);
        if (Date.now() - floodStart > 600_000) throw new Error(`the flood was not delivered within 600 s:\n${probe.tail()}`);
      }
      await probe.waitFor("the other queue's messages", () => probe.count("delivered", other.name) >= sent.length, 300_000);
      if (withFlood) await probe.waitFor("the flood", floodDone, 600_000);
      const delivered = probe.events.filter((e) => e.name === "delivered" && e.queue === other.name);
      const latencies = sent.map((at, i) => delivered[i]!.at - at);
      // Where the time goes: fetching and spooling (IMAP, shared with the flood's fetches) or parsing and delivering.
      const spooled = probe.events.filter((e) => e.name === "spooled" && e.queue === other.name);
      const deliveredAt = new Map(delivered.map((e) => [e.id, e.at]));
      const toSpool = sent.map((at, i) => (spooled[i]?.at ?? NaN) - at);
      const spoolToDelivered = spooled.map((e) => (deliveredAt.get(e.id) ?? NaN) - e.at);
      const vitals = await probe.vitals();
      const floodMs = withFlood
        ? probe.events.filter((e) => e.name === "delivered" && e.queue === flood.name).reduce((last, e) => Math.max(last, e.at), 0) - floodStart
        : NaN;
      results.push([
        withFlood ? `${input.floodMessages} x ${round(slow.length / MB, 1)} MB "${slowClass.klass}" into the flooded queue` : "nothing else",
        String(latencies.length),
        round(percentile(latencies, 50), 0),
        round(percentile(latencies, 99), 0),
        round(Math.max(...latencies), 0),
        round(percentile(toSpool, 50), 0),
        round(percentile(spoolToDelivered, 50), 0),
        round(percentile(spoolToDelivered, 99), 0),
        round(vitals.loopDelayMs.p99, 0),
        withFlood ? round(floodMs / 1000, 1) : "-",
      ]);
    } finally {
      await probe.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }
  return [
    `Fairness: the other queue receives a small message every 300 ms (IDLE) while the flooded queue's worst cases are parsed (2 parser workers). Latency is save to handler write.`,
    "",
    markdownTable(
      [
        "meanwhile",
        "other queue's messages",
        "save->write p50 ms",
        "p99 ms",
        "max ms",
        "save->spooled p50 ms",
        "spooled->write p50 ms",
        "spooled->write p99 ms",
        "daemon event-loop delay p99 ms",
        "flood parsed and delivered in s",
      ],
      results,
    ),
  ].join("\n");
}

/** The same worst case under distinct Message-IDs, so each is a message of its own to the stable id. */
function withMessageId(raw: Buffer, id: string): Buffer {
  return Buffer.from(raw.toString("latin1").replace(/Message-ID: <[^>]*>/, `Message-ID: <${id}-${Date.now()}@worst.bench.test>`), "latin1");
}
