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

/**
 * Rejects with STATE_FENCED unless this replica holds every queue named (no fence: the CLI, one
 * node). The lease rows are locked in one statement, in queue order: a lease round locks its
 * rows in the same order, so a write and a round never wait on each other in a cycle (two
 * statements in turn did: PostgreSQL found deadlocks in the reliability suite).
 */
export async function checkFence(client: pg.PoolClient, fence: QueueFence | undefined, queues: Iterable<string>): Promise<void> {
  if (fence === undefined) return;
  const wanted = [...new Set(queues)].sort();
  if (wanted.length === 0) return;
  const epochs: number[] = [];
  for (const queue of wanted) {
    const epoch = fence.epochOf(queue);
    if (epoch === undefined) throw fencedError(queue);
    epochs.push(epoch);
  }
  const held = await client.query<{ queue: string }>(
    `SELECT l.queue FROM queue_leases l JOIN unnest($1::text[], $2::bigint[]) AS w (queue, epoch) ON l.queue = w.queue AND l.epoch = w.epoch
     WHERE l.owner = $3 ORDER BY l.queue FOR SHARE OF l`,
    [wanted, epochs, fence.owner],
  );
  if (held.rowCount === wanted.length) return;
  const still = new Set(held.rows.map((r) => r.queue));
  const lost = wanted.filter((queue) => !still.has(queue));
  lost.forEach((queue) => fence.lost(queue, epochs[wanted.indexOf(queue)]!));
  throw fencedError(lost[0]!);
}
