/**
 * One memory budget shared by every queue: what is in flight at once, counted in shares and
 * their bytes, across the whole daemon. Per-queue limits let N busy queues hold N times as much
 * (10 queues draining: ~400 MB); one shared bound does not. The composition root (src/app.ts)
 * builds two: one for deliveries (a share is a message being parsed and handed to handlers,
 * its bytes its RFC822.SIZE) and one for fetching (a share is one FETCH of many small messages,
 * which imapflow buffers whole, or a big message being streamed to the spool).
 *
 * Fair between queues: a queue that must wait is served in turn with the other waiting queues
 * (round robin), each queue's own requests in order, so a queue with a big backlog cannot
 * starve one with a single message. Turns are strict: when the next in turn does not fit, the
 * others wait behind it too, so a big share is never overtaken forever. A share larger than
 * the whole byte budget goes when nothing else is in flight.
 */

export interface BudgetLimits {
  /** Shares in flight at once, across all queues (deliveries: messages). */
  readonly messages: number;
  /** Their bytes at most; a bigger share goes alone. */
  readonly bytes: number;
}

/**
 * Enough to keep both parser workers busy with handler writes overlapping (what one queue
 * had to itself before); what a message holds here is its text and small parts, since big
 * attachments go to scratch files.
 */
export const DEFAULT_DELIVERY_BUDGET: BudgetLimits = { messages: 8, bytes: 64 * 1024 * 1024 };

/**
 * Fetching: three bulk FETCHes of 8 MB (src/imap/imap-mailbox.ts BULK_FETCH_BYTES) at once, or
 * more smaller ones; one queue draining never needs more than one at a time, so a lone queue
 * fetches as fast as before while ten draining queues hold 24 MB of fetched mail, not 80-160.
 */
export const DEFAULT_FETCH_BUDGET: BudgetLimits = { messages: 4, bytes: 24 * 1024 * 1024 };

/** Gives the share back; calling it twice is harmless. */
export type Release = () => void;

interface Waiter {
  readonly bytes: number;
  readonly grant: (release: Release) => void;
}

export class MemoryBudget {
  private messages = 0;
  private bytes = 0;
  /** Waiting queues in turn order, each with its requests in order. */
  private readonly waiting = new Map<string, Waiter[]>();

  constructor(readonly limits: BudgetLimits = DEFAULT_DELIVERY_BUDGET) {
    if (!(limits.messages >= 1) || !(limits.bytes >= 1)) throw new Error(`delivery budget needs at least 1 message and 1 byte, got ${JSON.stringify(limits)}`);
  }

  /** What is in flight now (for tests and metrics). */
  get inUse(): { readonly messages: number; readonly bytes: number } {
    return { messages: this.messages, bytes: this.bytes };
  }

  /**
   * Resolves with the release of one message's share once it fits and it is this queue's turn;
   * rejects with the signal's reason when aborted while waiting (nothing is held then).
   */
  acquire(queue: string, bytes: number, signal: AbortSignal): Promise<Release> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    if (this.waiting.size === 0 && this.fits(bytes)) return Promise.resolve(this.take(bytes));
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        grant: (release) => {
          signal.removeEventListener("abort", onAbort);
          resolve(release);
        },
      };
      const onAbort = () => {
        this.remove(queue, waiter);
        reject(signal.reason);
        // This waiter may have been the one holding the turn.
        this.grantWaiting();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      const queueWaiters = this.waiting.get(queue);
      if (queueWaiters) queueWaiters.push(waiter);
      else this.waiting.set(queue, [waiter]);
      this.grantWaiting();
    });
  }

  private fits(bytes: number): boolean {
    if (this.messages >= this.limits.messages) return false;
    return this.messages === 0 || this.bytes + bytes <= this.limits.bytes;
  }

  private take(bytes: number): Release {
    this.messages++;
    this.bytes += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.messages--;
      this.bytes -= bytes;
      this.grantWaiting();
    };
  }

  /** Grants in turn while the next in turn fits; a served queue with more to ask goes to the back. */
  private grantWaiting(): void {
    for (;;) {
      const next = this.waiting.entries().next();
      if (next.done) return;
      const [queue, waiters] = next.value;
      const waiter = waiters[0]!;
      if (!this.fits(waiter.bytes)) return;
      waiters.shift();
      this.waiting.delete(queue);
      if (waiters.length > 0) this.waiting.set(queue, waiters); // to the back of the turn order
      waiter.grant(this.take(waiter.bytes));
    }
  }

  private remove(queue: string, waiter: Waiter): void {
    const waiters = this.waiting.get(queue);
    if (!waiters) return;
    const index = waiters.indexOf(waiter);
    if (index >= 0) waiters.splice(index, 1);
    if (waiters.length === 0) this.waiting.delete(queue);
  }
}
