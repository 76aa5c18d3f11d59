/**
 * Queue leases in PostgreSQL (one row per queue: owner, fencing epoch, lease_until), claimed
 * with one UPDATE over a `FOR UPDATE SKIP LOCKED` subselect so replicas never wait on each
 * other, and spread evenly by rendezvous hashing with bounded loads over the live replicas
 * (homesOf): every replica computes the same "home" for each queue, so a joining or leaving
 * replica moves only about its share.
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
      const homes = homesOf(queues, live);
      const home = queues.filter((queue) => homes.get(queue) === replica);
      const elsewhere = queues.filter((queue) => homes.get(queue) !== replica);

      // This replica's rows first, locked in queue order (as a fenced write locks them): no deadlock.
      await client.query("SELECT queue FROM queue_leases WHERE owner = $1 AND queue = ANY($2::text[]) ORDER BY queue FOR UPDATE", [replica, [...queues]]);
      // Another live replica's share goes back (it claims it in its next round); the rest is renewed.
      await client.query(`UPDATE queue_leases SET owner = NULL, lease_until = now() WHERE owner = $1 AND queue = ANY($2::text[])`, [replica, elsewhere]);
      // An own lease that ran out (this replica paused) is renewed at the same epoch only if
      // nobody took it meanwhile: the owner is still this replica.
      await client.query(`UPDATE queue_leases SET lease_until = now() + $2::interval, renewed_at = now() WHERE owner = $1 AND queue = ANY($3::text[])`, [
        replica,
        interval,
        home,
      ]);
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
  const rows = await db.query<{ id: string; started_at: Date; seen_until: Date }>(
    "read the replicas",
    "SELECT id, started_at, seen_until FROM replicas ORDER BY id",
  );
  return rows.map((r) => ({ id: r.id, startedAt: r.started_at, seenUntil: r.seen_until }));
}

/**
 * Each queue's home replica: rendezvous (highest random weight) hashing with bounded loads.
 * Every (queue, replica) pair gets a weight from a hash; pairs are taken heaviest first, and a
 * queue goes to the first replica of its pairs that still has room: floor(queues / replicas)
 * each, and one more for as many replicas as the division leaves over.
 * Every replica computes the same homes from the same lists; the spread is even (a replica
 * holds the floor or the ceiling of its share: plain rendezvous hashing put all 4 queues on one
 * of 2 replicas one time in 8); and a joining or leaving replica moves about its share, nearly
 * all of it to or from itself.
 */
export function homesOf(queues: readonly string[], replicas: readonly string[]): Map<string, string> {
  const homes = new Map<string, string>();
  if (replicas.length === 0) return homes;
  const distinctQueues = [...new Set(queues)];
  const distinctReplicas = [...new Set(replicas)];
  // Each replica holds `share` queues, and `extra` of them one more.
  const share = Math.floor(distinctQueues.length / distinctReplicas.length);
  let extra = distinctQueues.length % distinctReplicas.length;
  const pairs: Array<{ queue: string; replica: string; weight: bigint }> = [];
  for (const queue of distinctQueues) {
    for (const replica of distinctReplicas)
      pairs.push({ queue, replica, weight: createHash("sha256").update(`${replica}\n${queue}`).digest().readBigUInt64BE(0) });
  }
  pairs.sort((a, b) =>
    a.weight !== b.weight ? (a.weight > b.weight ? -1 : 1) : a.replica < b.replica ? -1 : a.replica > b.replica ? 1 : a.queue < b.queue ? -1 : 1,
  );
  const load = new Map<string, number>();
  for (const { queue, replica } of pairs) {
    const held = load.get(replica) ?? 0;
    if (homes.has(queue) || held > share || (held === share && extra === 0)) continue;
    if (held === share) extra--;
    homes.set(queue, replica);
    load.set(replica, held + 1);
  }
  return homes;
}
