/**
 * Queue leases in PostgreSQL (one row per queue: owner, fencing epoch, lease_until), claimed
 * with one UPDATE over a `FOR UPDATE SKIP LOCKED` subselect so replicas never wait on each
 * other, and spread by rendezvous hashing over the live replicas: every replica computes the
 * same "home" for each queue, so a joining or leaving replica moves only its share.
 * Lease times are the database's clock (now()): replicas' clocks cannot disagree about them.
 */
import { createHash } from "node:crypto";
import type { HeldLease, LeaseRecord, LeaseRound, QueueLeaseStore, ReplicaRecord } from "../../cluster/ports.js";
import type { Connection } from "./connection.js";

/** A replica unseen this long is forgotten (its row only feeds the spread and `status`). */
const FORGET_REPLICA_AFTER = "1 hour";

export class PostgresQueueLeases implements QueueLeaseStore {
  constructor(private readonly db: Connection) {}

  round(replica: string, queues: readonly string[], validMs: number): Promise<LeaseRound> {
    return this.db.transaction("renew and claim queue leases", async (client) => {
      const interval = `${Math.round(validMs)} milliseconds`;
      await client.query(
        `INSERT INTO replicas (id, started_at, seen_until) VALUES ($1, now(), now() + $2::interval)
         ON CONFLICT (id) DO UPDATE SET seen_until = excluded.seen_until`,
        [replica, interval],
      );
      await client.query(`DELETE FROM replicas WHERE seen_until < now() - interval '${FORGET_REPLICA_AFTER}'`);
      await client.query("INSERT INTO queue_leases (queue) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", [[...queues]]);
      const live = (await client.query<{ id: string }>("SELECT id FROM replicas WHERE seen_until > now()")).rows.map((r) => r.id);
      if (!live.includes(replica)) live.push(replica);
      const home = queues.filter((queue) => homeOf(queue, live) === replica);
      const elsewhere = queues.filter((queue) => homeOf(queue, live) !== replica);

      // This replica's rows first, locked in queue order (as a fenced write locks them): no deadlock.
      await client.query("SELECT queue FROM queue_leases WHERE owner = $1 AND queue = ANY($2::text[]) ORDER BY queue FOR UPDATE", [replica, [...queues]]);
      // Another live replica's share goes back (it claims it in its next round); the rest is renewed.
      await client.query(
        `UPDATE queue_leases SET owner = NULL, lease_until = now() WHERE owner = $1 AND queue = ANY($2::text[])`,
        [replica, elsewhere],
      );
      // An own lease that ran out (this replica paused) is renewed at the same epoch only if
      // nobody took it meanwhile: the owner is still this replica.
      await client.query(
        `UPDATE queue_leases SET lease_until = now() + $2::interval, renewed_at = now() WHERE owner = $1 AND queue = ANY($3::text[])`,
        [replica, interval, home],
      );
      // Claim this replica's share when free, and any queue whose lease ran out (or was given
      // back) a while ago: its home replica is not taking it. A queue never leased ('-infinity')
      // waits for its home. Each claim bumps the epoch: the fencing token.
      const claimed = await client.query<{ queue: string; epoch: number; acquired_at: Date; previous: string | null }>(
        `UPDATE queue_leases l SET owner = $1, epoch = l.epoch + 1, lease_until = now() + $2::interval, acquired_at = now(), renewed_at = now(),
           takeovers = l.takeovers + (c.previous IS NOT NULL)::int
         FROM (
           SELECT queue, owner AS previous FROM queue_leases
           WHERE queue = ANY($3::text[]) AND owner IS DISTINCT FROM $1
             AND lease_until < now()
             AND (queue = ANY($4::text[]) OR (lease_until > '-infinity' AND lease_until < now() - $2::interval / 4))
           FOR UPDATE SKIP LOCKED
         ) c
         WHERE l.queue = c.queue
         RETURNING l.queue, l.epoch, l.acquired_at, c.previous`,
        [replica, interval, [...queues], home],
      );
      const held = await client.query<{ queue: string; epoch: number; acquired_at: Date }>(
        "SELECT queue, epoch, acquired_at FROM queue_leases WHERE owner = $1 AND queue = ANY($2::text[]) ORDER BY queue",
        [replica, [...queues]],
      );
      const toLease = (r: { queue: string; epoch: number; acquired_at: Date }): HeldLease => ({ queue: r.queue, epoch: r.epoch, since: r.acquired_at });
      return {
        held: held.rows.map(toLease),
        acquired: claimed.rows.map(toLease),
        tookOver: claimed.rows.filter((r) => r.previous !== null).map((r) => r.queue),
      };
    });
  }

  async release(replica: string, queues?: readonly string[]): Promise<void> {
    await this.db.query(
      "release queue leases",
      `UPDATE queue_leases SET owner = NULL, lease_until = now() WHERE owner = $1 AND ($2::text[] IS NULL OR queue = ANY($2::text[]))`,
      [replica, queues === undefined ? null : [...queues]],
    );
    await this.db.query("leave the replicas", "DELETE FROM replicas WHERE id = $1", [replica]);
  }

  replicas(): Promise<ReplicaRecord[]> {
    return listReplicas(this.db);
  }

  async all(): Promise<LeaseRecord[]> {
    const rows = await this.db.query<{
      queue: string;
      owner: string | null;
      epoch: number;
      lease_until: Date;
      acquired_at: Date | null;
      renewed_at: Date | null;
      takeovers: number;
    }>("read queue leases", "SELECT queue, owner, epoch, lease_until, acquired_at, renewed_at, takeovers FROM queue_leases ORDER BY queue");
    return rows.map((r) => ({
      queue: r.queue,
      ...(r.owner === null ? {} : { owner: r.owner }),
      epoch: r.epoch,
      leaseUntil: r.lease_until,
      ...(r.acquired_at === null ? {} : { acquiredAt: r.acquired_at }),
      ...(r.renewed_at === null ? {} : { renewedAt: r.renewed_at }),
      takeovers: r.takeovers,
    }));
  }
}

export async function listReplicas(db: Connection): Promise<ReplicaRecord[]> {
  const rows = await db.query<{ id: string; started_at: Date; seen_until: Date }>("read the replicas", "SELECT id, started_at, seen_until FROM replicas ORDER BY id");
  return rows.map((r) => ({ id: r.id, startedAt: r.started_at, seenUntil: r.seen_until }));
}

/** Rendezvous (highest random weight) hashing: the replica with the highest hash of (replica, queue). */
export function homeOf(queue: string, replicas: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestWeight = -1n;
  for (const replica of replicas) {
    const weight = createHash("sha256").update(`${replica}\n${queue}`).digest().readBigUInt64BE(0);
    if (weight > bestWeight || (weight === bestWeight && best !== undefined && replica < best)) {
      best = replica;
      bestWeight = weight;
    }
  }
  return best;
}
