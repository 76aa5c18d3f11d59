/**
 * Scenario 4, one 50 MB message arriving while 10 other queues receive small mail: the
 * daemon's peak RSS, its event-loop delay p99 (monitorEventLoopDelay, 1 ms resolution) and the
 * small messages' latency (save to handler write, IDLE) meanwhile.
 */
import { rm } from "node:fs/promises";
import path from "node:path";
import { bigMessage } from "../../testbed/big-message.js";
import { ProbeProcess } from "../../testbed/probe-process.js";
import { sampleMessages } from "../../testbed/sample-messages.js";
import { sleep, type BenchContext, type ScenarioReport } from "../context.js";
import { markdownTable, MB, percentile, showSpread, spread } from "../stats.js";

export interface BigMessageInput {
  readonly bytes: number;
  readonly smallQueues: number;
}

interface Measure {
  readonly maxRssMb: number;
  readonly loopDelayP99: number;
  readonly loopDelayMax: number;
  readonly bigMs: number;
  readonly smallP50: number;
  readonly smallP99: number;
  readonly smallCount: number;
}

/** The report section's title (also the section a failed run of this scenario leaves). */
export const BIG_MESSAGE_TITLE = "4. One big message among small mail";

export async function bigMessageScenario(ctx: BenchContext, input: BigMessageInput): Promise<ScenarioReport> {
  const { bed } = ctx;
  const message = bigMessage({ seed: "bench-big", to: "bigq@big.bench.test", totalBytes: input.bytes, htmlBytes: 3 * MB });
  const measures: Measure[] = [];
  for (let rep = 1; rep <= ctx.options.repetitions; rep++) {
    // Mailboxes of their own per repetition: a fresh daemon would fetch the previous one's mail.
    const big = { name: "bigq", address: `bigq-r${rep}@big.bench.test`, password: "big-password-1" };
    const small = Array.from({ length: input.smallQueues }, (_, i) => ({
      name: `small${i}`,
      address: `small${i}-r${rep}@big.bench.test`,
      password: `small-password-${i}`,
    }));
    for (const m of [big, ...small]) bed.identity.addUser({ username: m.address, password: m.password });
    ctx.log(`big message rep ${rep}/${ctx.options.repetitions}`);
    measures.push(await once(ctx, big, small, message.raw, rep));
  }
  const s = (pick: (m: Measure) => number, digits = 1) => showSpread(spread(measures.map(pick)), digits);
  const p99 = spread(measures.map((m) => m.loopDelayP99)).median;
  const rss = spread(measures.map((m) => m.maxRssMb)).median;
  const rssTarget = 150 + (2 * input.bytes) / MB;
  return {
    title: BIG_MESSAGE_TITLE,
    markdown: [
      `One ${(input.bytes / MB).toFixed(0)} MB message (3 MB HTML body, one base64 attachment) into one queue while ${input.smallQueues} other queues receive a small message every 200 ms (IDLE). ` +
        `Median of ${ctx.options.repetitions} (min-max). Event-loop delay from the big message's save to its delivery.`,
      "",
      markdownTable(
        [
          "peak RSS MB",
          "event-loop delay p99 ms",
          "event-loop delay max ms",
          "big message save->write s",
          "small messages",
          "small save->write p50 ms",
          "small p99 ms",
        ],
        [
          [
            s((m) => m.maxRssMb, 0),
            s((m) => m.loopDelayP99),
            s((m) => m.loopDelayMax, 0),
            s((m) => m.bigMs / 1000),
            s((m) => m.smallCount, 0),
            s((m) => m.smallP50, 0),
            s((m) => m.smallP99, 0),
          ],
        ],
      ),
      "",
      `- event-loop delay p99 <= 50 ms: ${p99.toFixed(1)} ms — ${p99 <= 50 ? "holds" : "missed"}`,
      `- peak RSS <= 150 MB + 2x the message (${rssTarget.toFixed(0)} MB): ${rss.toFixed(0)} MB — ${rss <= rssTarget ? "holds" : "missed"}`,
    ].join("\n"),
  };
}

async function once(
  ctx: BenchContext,
  big: { name: string; address: string; password: string },
  small: ReadonlyArray<{ name: string; address: string; password: string }>,
  raw: Buffer,
  rep: number,
): Promise<Measure> {
  const dir = path.join(ctx.workDir, `big-${rep}`);
  const output = { type: "directory", path: path.join(dir, "out") };
  const configFile = ctx.bed.writeDaemonConfig(
    {
      stateDir: path.join(dir, "state"),
      logLevel: "warn",
      poll: "1h",
      queues: [{ ...big, options: { maxMessageSize: "100MB" }, handlers: [output] }, ...small.map((q) => ({ ...q, handlers: [output] }))],
    },
    path.join(ctx.workDir, `big-${rep}.yaml`),
  );
  const probe = new ProbeProcess(configFile);
  try {
    await probe.start();
    const sessions = () => new Set(probe.events.filter((e) => e.name === "idle-session-opened").map((e) => e.queue)).size;
    await probe.waitFor("every IDLE session", () => sessions() >= small.length + 1, 60_000);
    probe.reset();
    const savedAt = Date.now();
    const bigSaved = ctx.bed.dovecot.deliver(big.address, raw);
    const sent: Array<{ queue: string; at: number }> = [];
    const mail = sampleMessages(200, { seed: `big-small-${rep}-${Date.now()}`, to: "x@big.bench.test" });
    let next = 0;
    const bigDelivered = () => probe.count("delivered", big.name) > 0;
    // Small mail flows from the big message's arrival until 1 s after its delivery.
    let stopAt = Number.POSITIVE_INFINITY;
    while (Date.now() < stopAt && next < mail.length) {
      const queue = small[next % small.length]!;
      const at = Date.now();
      await ctx.bed.dovecot.deliver(queue.address, mail[next]!.raw);
      sent.push({ queue: queue.name, at });
      next++;
      await sleep(200);
      if (bigDelivered() && stopAt === Number.POSITIVE_INFINITY) stopAt = Date.now() + 1_000;
      if (Date.now() - savedAt > 180_000) throw new Error(`the big message was not delivered within 180 s:\n${probe.tail()}`);
    }
    await bigSaved;
    await probe.waitFor("the big message", bigDelivered, 180_000);
    const bigAt = probe.events.find((e) => e.name === "delivered" && e.queue === big.name)!.at;
    const vitals = await probe.vitals();
    // Each small queue's n-th delivery is its n-th message.
    await probe.waitFor(
      "the small messages",
      () => small.every((q) => probe.count("delivered", q.name) >= sent.filter((s) => s.queue === q.name).length),
      60_000,
    );
    const latencies: number[] = [];
    for (const queue of small) {
      const delivered = probe.events.filter((e) => e.name === "delivered" && e.queue === queue.name);
      sent.filter((s) => s.queue === queue.name).forEach((s, i) => latencies.push(delivered[i]!.at - s.at));
    }
    return {
      maxRssMb: vitals.maxRssBytes / MB,
      loopDelayP99: vitals.loopDelayMs.p99,
      loopDelayMax: vitals.loopDelayMs.max,
      bigMs: bigAt - savedAt,
      smallP50: percentile(latencies, 50),
      smallP99: percentile(latencies, 99),
      smallCount: latencies.length,
    };
  } finally {
    await probe.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
