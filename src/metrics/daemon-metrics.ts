/**
 * Prometheus metrics (prom-client), on a registry of the daemon's own rather than the global
 * one, so two daemons in one process (tests) never share counters.
 * Counters follow DaemonEvents; gauges (token expiry, last success, backlog, dead letters,
 * queue state) are read from the state database on each scrape, so they are never stale and
 * survive restarts. Labels are queue and handler names (config-checked) and error codes: no
 * address, message text or secret ever becomes a label.
 */
import { statfsSync } from "node:fs";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { DaemonEventMap, DaemonEvents } from "../events.js";
import type { QueueState } from "../store/ports.js";
import { readQueueHealth, type HealthSources, type QueueHealth } from "./queue-health.js";

/** Every state a queue can be in, so a state gauge reads 0 for the others (alerting on `== 1`). */
const QUEUE_STATES: readonly (QueueState | "unknown")[] = [
  "unknown",
  "starting",
  "ok",
  "retrying",
  "needs-password",
  "needs-sign-in",
  "needs-admin",
  "misconfigured",
];

/** Handler latencies, seconds: a local directory takes milliseconds, a webhook up to its timeout. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/**
 * From arrival in the mailbox to a handler, seconds: about a second with IDLE, a poll interval
 * without, hours while a handler is down (and days for old mail found at the first fetch).
 */
const DELAY_BUCKETS = [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600];

export interface MetricsSources extends HealthSources {
  /** The queues configured now (a reload may change them), with their handlers' names. */
  queues(): ReadonlyArray<{ readonly name: string; readonly handlers: readonly string[] }>;
  /** The state directory, whose file system's free space is exported (spool and database). */
  readonly stateDir: string;
  /** With several replicas on PostgreSQL: this replica's leases and what befell them since it started. */
  readonly cluster?: () => ClusterFigures;
}

export interface ClusterFigures {
  readonly leasesHeld: number;
  readonly takeovers: number;
  readonly fencingRejections: number;
  readonly renewFailures: number;
}

type Listener<K extends keyof DaemonEventMap> = (...args: DaemonEventMap[K]) => void;

export class DaemonMetrics {
  readonly registry = new Registry();
  /** Counts scrapes, so the scrape gauges share one database read per scrape. */
  private scrapes = 0;
  /** A queue that never fetched well ages from here: since this daemon started watching it. */
  private readonly startedAt = new Date();
  private readonly unsubscribe: Array<() => void> = [];

  constructor(
    private readonly events: DaemonEvents,
    private readonly sources: MetricsSources,
    version: string,
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({ name: "mailfetchd_info", help: "Always 1; the version as a label", labelNames: ["version"], registers }).set({ version }, 1);

    const fetched = new Counter({
      name: "mailfetchd_messages_fetched_total",
      help: "Messages downloaded from IMAP (repeats after a crash or re-sync included)",
      labelNames: ["queue"],
      registers,
    });
    const spooled = new Counter({
      name: "mailfetchd_messages_spooled_total",
      help: "Messages made durable in the spool for the first time",
      labelNames: ["queue"],
      registers,
    });
    const cycles = new Counter({
      name: "mailfetchd_fetch_cycles_total",
      help: "Fetch cycles, by result (ok or failed)",
      labelNames: ["queue", "result"],
      registers,
    });
    const failures = new Counter({
      name: "mailfetchd_fetch_failures_total",
      help: "Failed fetch cycles by error code (see docs/troubleshooting.md)",
      labelNames: ["queue", "code"],
      registers,
    });
    const identityErrors = new Counter({
      name: "mailfetchd_identity_errors_total",
      help: "Failed fetch cycles caused by the identity platform (IDENTITY_* codes)",
      labelNames: ["queue", "code"],
      registers,
    });
    const imapErrors = new Counter({
      name: "mailfetchd_imap_errors_total",
      help: "Failed fetch cycles caused by the IMAP server (IMAP_* codes)",
      labelNames: ["queue", "code"],
      registers,
    });
    const delivered = new Counter({ name: "mailfetchd_deliveries_total", help: "Messages a handler accepted", labelNames: ["queue", "handler"], registers });
    const deliveryFailures = new Counter({
      name: "mailfetchd_delivery_failures_total",
      help: "Delivery attempts that failed and will be retried",
      labelNames: ["queue", "handler"],
      registers,
    });
    const deadLettered = new Counter({
      name: "mailfetchd_dead_lettered_total",
      help: "Deliveries parked for good (handler rejection or message too large)",
      labelNames: ["queue", "handler"],
      registers,
    });
    const latency = new Histogram({
      name: "mailfetchd_handler_duration_seconds",
      help: "Time a handler took to accept a message",
      labelNames: ["queue", "handler"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const delay = new Histogram({
      name: "mailfetchd_delivery_delay_seconds",
      help: "Time from a message's arrival in the mailbox (IMAP INTERNALDATE) to a handler accepting it",
      labelNames: ["queue", "handler"],
      buckets: DELAY_BUCKETS,
      registers,
    });

    const cluster = sources.cluster;
    if (cluster) {
      const figure = (name: string, help: string, type: typeof Gauge | typeof Counter, read: (f: ClusterFigures) => number) =>
        new type({
          name,
          help,
          registers,
          collect() {
            this.reset();
            this.inc(read(cluster()));
          },
        });
      figure("mailfetchd_leases_held", "Queue leases this replica holds (its queues' pipelines run here)", Gauge, (f) => f.leasesHeld);
      figure("mailfetchd_lease_takeovers_total", "Queues this replica took over from a replica whose lease ran out", Counter, (f) => f.takeovers);
      figure(
        "mailfetchd_fencing_rejections_total",
        "Writes refused because another replica owns the queue now (STATE_FENCED)",
        Counter,
        (f) => f.fencingRejections,
      );
      figure("mailfetchd_lease_renew_failures_total", "Lease rounds that failed (PostgreSQL unreachable or slow)", Counter, (f) => f.renewFailures);
    }

    // Series exist from the start, so rate() and absent() work before the first message.
    for (const queue of sources.queues()) {
      for (const counter of [fetched, spooled]) counter.labels({ queue: queue.name }).inc(0);
      for (const result of ["ok", "failed"]) cycles.labels({ queue: queue.name, result }).inc(0);
      for (const handler of queue.handlers)
        for (const counter of [delivered, deliveryFailures, deadLettered]) counter.labels({ queue: queue.name, handler }).inc(0);
    }

    this.on("fetch-succeeded", (e) => {
      fetched.inc({ queue: e.queue }, e.fetched);
      cycles.inc({ queue: e.queue, result: "ok" });
    });
    this.on("fetch-failed", (e) => {
      cycles.inc({ queue: e.queue, result: "failed" });
      failures.inc({ queue: e.queue, code: e.code });
      if (e.code.startsWith("IDENTITY_")) identityErrors.inc({ queue: e.queue, code: e.code });
      else if (e.code.startsWith("IMAP_")) imapErrors.inc({ queue: e.queue, code: e.code });
    });
    this.on("spooled", (e) => spooled.inc({ queue: e.queue }));
    this.on("delivered", (e) => {
      delivered.inc({ queue: e.queue, handler: e.handler });
      latency.observe({ queue: e.queue, handler: e.handler }, e.durationMs / 1000);
      // A server clock ahead of ours must not make a negative delay.
      if (e.arrivedAt) delay.observe({ queue: e.queue, handler: e.handler }, Math.max(0, Date.now() - e.arrivedAt.getTime()) / 1000);
    });
    this.on("delivery-failed", (e) => deliveryFailures.inc({ queue: e.queue, handler: e.handler }));
    this.on("dead-lettered", (e) => deadLettered.inc({ queue: e.queue, handler: e.handler }));

    this.defineScrapeGauges(registers);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    this.scrapes++;
    return this.registry.metrics();
  }

  /** Stops counting (the daemon stopped); the registry stays readable. */
  close(): void {
    for (const off of this.unsubscribe.splice(0)) off();
  }

  private on<K extends keyof DaemonEventMap>(event: K, listener: Listener<K>): void {
    // EventEmitter's typed overloads do not accept a generic key; the map keeps it honest.
    const emitter = this.events as unknown as NodeJS.EventEmitter;
    emitter.on(event, listener as (...args: unknown[]) => void);
    this.unsubscribe.push(() => emitter.off(event, listener as (...args: unknown[]) => void));
  }

  private defineScrapeGauges(registers: Registry[]): void {
    const sources = this.sources;
    const health = () =>
      readQueueHealth(
        sources,
        sources.queues().map((q) => q.name),
      );
    // One read of the state store per scrape, shared by the gauges below.
    let snapshot: { scrape: number; health: ReturnType<typeof health> } | undefined;
    const current = () => {
      if (snapshot?.scrape !== this.scrapes) snapshot = { scrape: this.scrapes, health: health() };
      return snapshot.health;
    };
    const seconds = (date: Date | undefined) => (date ? date.getTime() / 1000 : undefined);

    const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge, health: QueueHealth[]) => void) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        async collect() {
          const values = await current();
          this.reset();
          fill(this, values);
        },
      });

    gauge("mailfetchd_queue_state", "1 for the queue's current state, 0 for the others", ["queue", "state"], (g, queues) => {
      for (const q of queues) for (const state of QUEUE_STATES) g.set({ queue: q.queue, state }, q.state === state ? 1 : 0);
    });
    gauge(
      "mailfetchd_token_expiry_timestamp_seconds",
      "When the queue's current access token expires (Unix time); it is refreshed before",
      ["queue"],
      (g, queues) => {
        for (const q of queues) {
          const value = seconds(q.tokenExpiresAt);
          if (value !== undefined) g.set({ queue: q.queue }, value);
        }
      },
    );
    gauge("mailfetchd_last_success_timestamp_seconds", "When the queue's last fetch cycle succeeded (Unix time)", ["queue"], (g, queues) => {
      for (const q of queues) {
        const value = seconds(q.lastSuccessAt);
        if (value !== undefined) g.set({ queue: q.queue }, value);
      }
    });
    // Ages, so alert rules compare a number and need no arithmetic with time().
    const age = (date: Date) => Math.max(0, Date.now() - date.getTime()) / 1000;
    gauge(
      "mailfetchd_last_success_age_seconds",
      "Seconds since the queue's last successful fetch cycle (since this daemon started, when it never had one)",
      ["queue"],
      (g, queues) => {
        for (const q of queues) g.set({ queue: q.queue }, age(q.lastSuccessAt ?? this.startedAt));
      },
    );
    gauge(
      "mailfetchd_oldest_undelivered_age_seconds",
      "Seconds the oldest message waiting for a handler has been in the spool (0: none waits; dead letters not included)",
      ["queue"],
      (g, queues) => {
        for (const q of queues) g.set({ queue: q.queue }, q.oldestUndeliveredAt ? age(q.oldestUndeliveredAt) : 0);
      },
    );
    gauge(
      "mailfetchd_refresh_token_age_seconds",
      "Seconds since the queue's stored sign-in (refresh token) was last used; Microsoft revokes it after 90 days unused. Absent without a stored sign-in",
      ["queue"],
      (g, queues) => {
        for (const q of queues) if (q.signInRenewedAt) g.set({ queue: q.queue }, age(q.signInRenewedAt));
      },
    );
    gauge("mailfetchd_consecutive_failures", "Fetch cycles failed in a row", ["queue"], (g, queues) => {
      for (const q of queues) g.set({ queue: q.queue }, q.consecutiveFailures);
    });
    gauge("mailfetchd_spool_backlog", "Deliveries spooled and waiting for a handler", ["queue"], (g, queues) => {
      for (const q of queues) g.set({ queue: q.queue }, q.backlog);
    });
    gauge("mailfetchd_spool_bytes", "Bytes of raw messages held in the spool (delivered ones until retention prunes them)", ["queue"], (g, queues) => {
      for (const q of queues) g.set({ queue: q.queue }, q.spoolBytes);
    });
    gauge("mailfetchd_dead_letters", "Deliveries parked for good, waiting for an operator (mailfetchd deadletters)", ["queue"], (g, queues) => {
      for (const q of queues) g.set({ queue: q.queue }, q.deadLetters);
    });
    // The spool, the state database and parse scratch files share state.dir's file system.
    const filesystem = () => {
      const fs = statfsSync(sources.stateDir);
      return { avail: fs.bavail * fs.bsize, size: fs.blocks * fs.bsize };
    };
    gauge(
      "mailfetchd_state_filesystem_avail_bytes",
      "Bytes free for the daemon on the file system of state.dir (spool, state database, parse scratch)",
      [],
      (g) => g.set(filesystem().avail),
    );
    gauge("mailfetchd_state_filesystem_size_bytes", "Size of the file system of state.dir, bytes", [], (g) => g.set(filesystem().size));
  }
}
