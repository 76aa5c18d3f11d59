/**
 * What the composition root needs of the HTTP surface in three calls: built with the daemon
 * (so metrics count from the first event), listen() before the first fetch (a port in use
 * stops the start with its fix), markStopping() then close() on the way down (before the
 * state store closes: the pages read it).
 */
import { packageVersion } from "../support/package-version.js";
import type { HttpConfig } from "../config/schema.js";
import type { DaemonEvents } from "../events.js";
import type { Logger } from "../interfaces.js";
import { DaemonMetrics, type ClusterFigures } from "../metrics/daemon-metrics.js";
import { readQueueHealth, type HealthSources } from "../metrics/queue-health.js";
import { readClusterView } from "../metrics/cluster-view.js";
import type { QueueLeaseStore } from "../cluster/ports.js";
import type { HourActivity } from "../state/queue-activity.js";
import { HttpSurface } from "./http-server.js";
import { ReadinessTracker } from "./readiness.js";

export interface OperatingSurfaceOptions extends HealthSources {
  readonly http: HttpConfig;
  readonly events: DaemonEvents;
  /** The configured queues now (a reload may change them). */
  readonly queues: () => ReadonlyArray<{ readonly name: string; readonly handlers: readonly string[] }>;
  /** With several replicas: this replica's lease figures for /metrics. */
  readonly cluster?: () => ClusterFigures;
  /** With several replicas: every queue's lease, for the status page and /status.json. */
  readonly leaseStore?: Pick<QueueLeaseStore, "all" | "replicas">;
  /** The queues this process fetches, when not all (several replicas: those whose lease it holds); readiness waits for their first cycle. */
  readonly fetchingQueues?: () => readonly string[];
  /** The status page's 24-hour charts (src/state/queue-activity.ts). */
  readonly activity: { lastDay(queues: readonly string[]): Promise<ReadonlyMap<string, readonly HourActivity[]>> };
  readonly stateDir: string;
  /** Rejects when the state store cannot be read. */
  readonly probeState: () => Promise<void>;
  readonly logger: Logger;
}

export class OperatingSurface {
  readonly metrics: DaemonMetrics;
  private readonly readiness: ReadinessTracker;
  private server?: HttpSurface;

  constructor(private readonly options: OperatingSurfaceOptions) {
    const version = packageVersion();
    this.metrics = new DaemonMetrics(options.events, options, version);
    this.readiness = new ReadinessTracker(options.events);
  }

  async listen(): Promise<void> {
    const { options } = this;
    const names = () => options.queues().map((q) => q.name);
    this.server ??= await HttpSurface.start({
      config: options.http,
      metrics: this.metrics,
      readiness: this.readiness,
      queues: options.fetchingQueues ?? names,
      health: () => readQueueHealth(options, names()),
      charts: () => options.activity.lastDay(names()),
      ...(options.leaseStore ? { cluster: () => readClusterView(options.leaseStore!, names(), new Date()) } : {}),
      probeState: options.probeState,
      version: packageVersion(),
      logger: options.logger.child({ component: "http" }),
    });
  }

  /** Where it listens (host:port), once listening. */
  get authority(): string | undefined {
    return this.server?.authority;
  }

  /** /readyz answers 503 from now on. */
  markStopping(): void {
    this.readiness.markStopping();
  }

  async close(): Promise<void> {
    this.readiness.markStopping();
    this.metrics.close();
    await this.server?.close();
    this.server = undefined;
  }
}
