/**
 * The fence on a queue's writes: inside the write's own transaction, the lease row must still
 * name this replica at the epoch it acquired. `FOR SHARE` keeps the row from changing hands
 * until the write commits, so a takeover is ordered strictly after it or before it (then the
 * write is refused). Zero rows means the lease was lost: never retry as owner.
 */
import type pg from "pg";
import type { QueueFence } from "../../cluster/ports.js";
import { MailfetchdError } from "../../errors.js";

export function fencedError(queue: string): MailfetchdError {
  return new MailfetchdError(`Queue '${queue}' is owned by another replica now: this replica's lease on it ended, so it writes nothing more for it.`, {
    code: "STATE_FENCED",
    retryable: false,
    fix: "Nothing to do: the replica that holds the queue's lease carries on with it. If this happens often, the replica pauses longer than the lease (state.postgres.leaseSeconds): look for CPU starvation, swapping or a frozen VM.",
  });
}

/** Rejects with STATE_FENCED unless this replica holds every queue named (no fence: the CLI, one node). */
export async function checkFence(client: pg.PoolClient, fence: QueueFence | undefined, queues: Iterable<string>): Promise<void> {
  if (fence === undefined) return;
  for (const queue of new Set(queues)) {
    const epoch = fence.epochOf(queue);
    if (epoch === undefined) throw fencedError(queue);
    const held = await client.query("SELECT 1 FROM queue_leases WHERE queue = $1 AND owner = $2 AND epoch = $3 FOR SHARE", [queue, fence.owner, epoch]);
    if (held.rowCount === 0) {
      fence.lost(queue, epoch);
      throw fencedError(queue);
    }
  }
}
