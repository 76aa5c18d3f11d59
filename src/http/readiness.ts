/**
 * /readyz: the daemon is doing its job. Ready when the config is loaded (it is, or there would
 * be no daemon), the state database answers, and every configured queue has finished at least
 * one fetch cycle in this process, well or in a known error state (a mailbox whose password
 * expired is reported by /status, not by taking the daemon out of service).
 */
import type { DaemonEvents } from "../events.js";

export interface Readiness {
  readonly ready: boolean;
  /** Why not, for a person; never a secret. */
  readonly reason?: string;
}

export class ReadinessTracker {
  private readonly cycled = new Set<string>();
  private stopping = false;
  private readonly onCycle = (event: { queue: string }) => void this.cycled.add(event.queue);

  constructor(private readonly events: DaemonEvents) {
    events.on("fetch-succeeded", this.onCycle);
    events.on("fetch-failed", this.onCycle);
  }

  /** From now on not ready: load balancers and orchestrators stop sending work. */
  markStopping(): void {
    this.stopping = true;
    this.events.off("fetch-succeeded", this.onCycle);
    this.events.off("fetch-failed", this.onCycle);
  }

  /** `probeState` rejects when the state store cannot be read. */
  async check(queues: readonly string[], probeState: () => Promise<void>): Promise<Readiness> {
    if (this.stopping) return { ready: false, reason: "stopping" };
    try {
      await probeState();
    } catch (error) {
      return { ready: false, reason: `the state database cannot be read (${(error as Error).message})` };
    }
    const waiting = queues.filter((queue) => !this.cycled.has(queue));
    if (waiting.length > 0) return { ready: false, reason: `waiting for the first fetch cycle of ${waiting.join(", ")}` };
    return { ready: true };
  }
}
