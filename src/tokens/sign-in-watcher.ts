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

  constructor(private readonly options: SignInWatcherOptions) {}

  start(): void {
    const versions = this.options.store.allUpdatedAt();
    for (const queue of this.options.queues) this.seen.set(queue, versions.get(queue));
    this.timer = setInterval(() => this.check(), this.options.intervalMs ?? DEFAULT_WATCH_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    let versions: Map<string, number>;
    try {
      versions = this.options.store.allUpdatedAt();
    } catch (error) {
      // A locked or closing database: look again next time.
      this.options.logger.debug({ err: error }, "could not read the token cache versions");
      return;
    }
    for (const queue of this.options.queues) {
      const version = versions.get(queue);
      if (version === this.seen.get(queue)) continue;
      this.seen.set(queue, version);
      if (this.options.store.isOwnWrite(queue, version)) continue;
      this.options.logger.info({ queue, signedIn: version !== undefined }, version === undefined ? "the queue's sign-in was removed (logout)" : "a new sign-in was stored for the queue (login): fetching now");
      this.options.onChange(queue);
    }
  }
}
