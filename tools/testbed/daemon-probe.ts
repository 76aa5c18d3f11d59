/**
 * The daemon, run as its own process exactly as `mailfetchd run` builds it, plus what a
 * benchmark or test needs to see from inside: its events with timestamps and its vitals (RSS,
 * peak RSS, CPU, event-loop delay), sent to the parent over IPC. Measuring in the daemon's own
 * process keeps the harness's work out of the figures.
 *
 *   fork("dist-tools/tools/testbed/daemon-probe.js", [configFile], { serialization: "advanced" })
 *
 * MAILFETCHD_PROBE_LOOP_RESOLUTION_MS sets the event-loop delay monitor's sampling interval (1 ms).
 *
 * Parent -> probe: { type: "vitals" } (answered with ProbeVitals), { type: "reset" } (event-loop
 * delay and CPU measured from now), { type: "stop" } (graceful stop, then exit).
 */
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { Daemon } from "../../src/app.js";
import { loadConfig } from "../../src/config/load.js";
import type { DaemonEventMap } from "../../src/events.js";
import { createLogger, SecretRegistry } from "../../src/log.js";
import { peakRssBytes } from "./peak-rss.js";

export interface ProbeEvent {
  readonly type: "event";
  readonly name: keyof DaemonEventMap;
  /** Date.now() when it happened: the parent's clock too, so times compare across the processes. */
  readonly at: number;
  readonly queue?: string;
  readonly id?: string;
  readonly size?: number;
  /** fetch-succeeded: the poll asked the IDLE session and found nothing new (no connection of its own). */
  readonly probed?: boolean;
}

export interface ProbeVitals {
  readonly type: "vitals";
  readonly rssBytes: number;
  /** Where the RSS goes: V8's heap (used of committed) and memory V8 objects hold outside it (Buffers, TLS). */
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
  /** Peak RSS of the process since it started (all threads). */
  readonly maxRssBytes: number;
  /** CPU time (user + system, all threads) since the last reset, microseconds. */
  readonly cpuMicros: number;
  /** Of cpuMicros, the kernel's part (writes, fsyncs, copies, TLS sockets). */
  readonly cpuSystemMicros: number;
  /** Wall time since the last reset, milliseconds. */
  readonly wallMs: number;
  /** Event-loop delay since the last reset, milliseconds. */
  readonly loopDelayMs: { readonly p50: number; readonly p99: number; readonly max: number };
}

export type ProbeMessage = ProbeEvent | ProbeVitals | { readonly type: "started" } | { readonly type: "failed"; readonly error: string };

const FORWARDED: ReadonlyArray<keyof DaemonEventMap> = [
  "new-mail-signalled",
  "idle-session-opened",
  "spooled",
  "delivered",
  "dead-lettered",
  "fetch-succeeded",
  "fetch-failed",
];

async function main(): Promise<void> {
  const configFile = process.argv[2];
  if (!configFile || !process.send) throw new Error("usage: fork(daemon-probe.js, [configFile]) with an IPC channel");
  const send = (message: ProbeMessage) => process.send?.(message);
  const config = loadConfig(configFile);
  const secrets = new SecretRegistry();
  const daemon = new Daemon(config, createLogger({ level: config.logLevel, secrets }), secrets);

  const now = () => performance.timeOrigin + performance.now();
  for (const name of FORWARDED) {
    daemon.events.on(name, (payload: { queue: string; id?: string; size?: number; probed?: boolean }) => {
      send({ type: "event", name, at: Date.now(), queue: payload.queue, id: payload.id, size: payload.size, probed: payload.probed });
    });
  }

  // 1 ms resolution by default: the target (p99 <= 50 ms) must be resolvable well below itself.
  // The monitor's timer then fires 1,000 times a second, ~2.5% of a core on the bench VMs: a
  // scenario that measures an idle daemon's CPU asks for a coarser one.
  const resolution = Number(process.env.MAILFETCHD_PROBE_LOOP_RESOLUTION_MS ?? 1);
  const loopDelay = monitorEventLoopDelay({ resolution: resolution >= 1 ? resolution : 1 });
  loopDelay.enable();
  let cpuFrom = process.cpuUsage();
  let wallFrom = now();

  process.on("message", (request: { type: string }) => {
    if (request.type === "reset") {
      loopDelay.reset();
      cpuFrom = process.cpuUsage();
      wallFrom = now();
    } else if (request.type === "vitals") {
      const cpu = process.cpuUsage(cpuFrom);
      const ms = (ns: number) => (Number.isFinite(ns) ? ns / 1e6 : 0);
      const memory = process.memoryUsage();
      send({
        type: "vitals",
        rssBytes: memory.rss,
        heapUsedBytes: memory.heapUsed,
        heapTotalBytes: memory.heapTotal,
        externalBytes: memory.external,
        maxRssBytes: peakRssBytes(),
        cpuMicros: cpu.user + cpu.system,
        cpuSystemMicros: cpu.system,
        wallMs: now() - wallFrom,
        loopDelayMs: { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) },
      });
    } else if (request.type === "stop") {
      void daemon.stop().then(() => process.exit(0));
    }
  });
  await daemon.start();
  send({ type: "started" });
}

main().catch((error: unknown) => {
  process.send?.({ type: "failed", error: error instanceof Error ? error.message : String(error) } satisfies ProbeMessage);
  process.exitCode = 1;
});
