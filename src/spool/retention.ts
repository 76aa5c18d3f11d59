/**
 * Spool retention, on a cron schedule: spool files of fully delivered messages are removed
 * after `keepDelivered`; their rows stay until `forgetAfter` so a re-fetch (after a UIDVALIDITY
 * change) is still recognised. Dead letters and undelivered mail are never touched, and the
 * directory handler's output belongs to the operator.
 */
import cron, { type ScheduledTask } from "node-cron";
import type { Config } from "../config/schema.js";
import type { Logger } from "../interfaces.js";
import type { Spool } from "./spool.js";

const BATCH = 500;

export class SpoolRetention {
  private task?: ScheduledTask;
  private running?: Promise<{ pruned: number; forgotten: number }>;

  constructor(
    private readonly spool: Spool,
    private readonly retention: Config["retention"],
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.task = cron.schedule(this.retention.schedule, () => void this.runOnce(), { noOverlap: true, name: "spool-retention" });
  }

  async stop(): Promise<void> {
    await this.task?.destroy();
    await this.running;
  }

  runOnce(now = Date.now()): Promise<{ pruned: number; forgotten: number }> {
    this.running ??= this.prune(now).finally(() => (this.running = undefined));
    return this.running;
  }

  private async prune(now: number): Promise<{ pruned: number; forgotten: number }> {
    let pruned = 0;
    for (;;) {
      const batch = await this.spool.prunable(now - this.retention.keepDeliveredMs, BATCH);
      for (const message of batch) await this.spool.prune(message);
      pruned += batch.length;
      if (batch.length < BATCH) break;
    }
    const forgotten = await this.spool.forget(now - this.retention.forgetAfterMs);
    if (pruned > 0 || forgotten > 0) this.logger.info({ pruned, forgotten }, "spool retention ran");
    return { pruned, forgotten };
  }
}
