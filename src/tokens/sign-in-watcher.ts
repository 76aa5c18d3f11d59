/**
 * Notices a sign-in made by another process (`mailfetchd login`, `logout`) while the daemon
 * runs, by watching the updated_at of the queues' token cache rows, so a queue waiting in
 * needs-sign-in fetches again within seconds instead of at its next (long) retry.
 *
 * One query for every queue's row every few seconds costs next to nothing, and needs no
 * signal or socket between the CLI and the daemon.
 */
import type { Logger } from "../interfaces.js";
import type { TokenCacheStore } from "./token-cache-store.js";

export const DEFAULT_WATCH_INTERVAL_MS = 3_000;

export interface SignInWatcherOptions {
  readonly queues: readonly string[];
  readonly store: TokenCacheStore;
  readonly logger: Logger;
  /** Called with the queue whose cache another process changed. */
  readonly onChange: (queue: string) => void;
  readonly intervalMs?: number;
}

export class SignInWatcher {
  private timer?: NodeJS.Timeout;
  private readonly seen = new Map<string, number | undefined>();
  private stopped = false;
  private checking = false;

  constructor(private readonly options: SignInWatcherOptions) {}

  /** Resolves once the versions to compare with are read; changes are looked for from then on. */
  async start(): Promise<void> {
    this.stopped = false;
    const versions = await this.options.store.allUpdatedAt().catch((error: unknown) => {
      // A locked or failing store: every row counts as changed at the first look that works.
      this.options.logger.debug({ err: error }, "could not read the token cache versions");
      return new Map<string, number>();
    });
    if (this.stopped) return;
    for (const queue of this.options.queues) this.seen.set(queue, versions.get(queue));
    this.timer = setInterval(() => void this.check(), this.options.intervalMs ?? DEFAULT_WATCH_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private async check(): Promise<void> {
    if (this.checking) return; // a slow store: the next tick looks again
    this.checking = true;
    let versions: Map<string, number>;
    try {
      versions = await this.options.store.allUpdatedAt();
    } catch (error) {
      // A locked or closing database: look again next time.
      this.options.logger.debug({ err: error }, "could not read the token cache versions");
      return;
    } finally {
      this.checking = false;
    }
    if (this.stopped) return;
    for (const queue of this.options.queues) {
      const version = versions.get(queue);
      if (version === this.seen.get(queue)) continue;
      this.seen.set(queue, version);
      if (this.options.store.isOwnWrite(queue, version)) continue;
      this.options.logger.info(
        { queue, signedIn: version !== undefined },
        version === undefined ? "the queue's sign-in was removed (logout)" : "a new sign-in was stored for the queue (login): fetching now",
      );
      this.options.onChange(queue);
    }
  }
}
