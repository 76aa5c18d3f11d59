/**
 * Several replicas on PostgreSQL, as operators see them: which replica holds which queue since
 * when, and which replicas are alive. One reading for `status` (table and JSON), the status
 * page and /status.json, from the lease store.
 */
import type { LeaseRecord, QueueLeaseStore, ReplicaRecord } from "../cluster/ports.js";
import { relativeTime } from "./time-format.js";

export interface LeaseView {
  readonly queue: string;
  /** The replica holding the queue now; undefined when nobody does (the queue is not fetched). */
  readonly heldBy?: string;
  /** Since when it holds it. */
  readonly since?: Date;
  readonly leaseUntil: Date;
  readonly epoch: number;
  readonly takeovers: number;
}

export interface ReplicaView {
  readonly id: string;
  readonly startedAt: Date;
  readonly seenUntil: Date;
  readonly alive: boolean;
}

export interface ClusterView {
  readonly leases: readonly LeaseView[];
  readonly replicas: readonly ReplicaView[];
}

export const UNHELD_HINT = "A queue held by nobody is not fetched: start a replica (mailfetchd run), or check that the replicas reach PostgreSQL.";

/** Every configured queue's lease (a queue never claimed is held by nobody), and the replicas seen lately. */
export async function readClusterView(store: Pick<QueueLeaseStore, "all" | "replicas">, queues: readonly string[], now: Date): Promise<ClusterView> {
  const [leases, replicas] = await Promise.all([store.all(), store.replicas()]);
  return clusterView(leases, replicas, queues, now);
}

export function clusterView(leases: readonly LeaseRecord[], replicas: readonly ReplicaRecord[], queues: readonly string[], now: Date): ClusterView {
  return {
    leases: queues.map((queue): LeaseView => {
      const lease = leases.find((l) => l.queue === queue);
      if (!lease) return { queue, leaseUntil: new Date(0), epoch: 0, takeovers: 0 };
      const held = lease.owner !== undefined && lease.leaseUntil > now;
      return {
        queue,
        ...(held ? { heldBy: lease.owner, since: lease.acquiredAt } : {}),
        leaseUntil: lease.leaseUntil,
        epoch: lease.epoch,
        takeovers: lease.takeovers,
      };
    }),
    replicas: replicas.map((r) => ({ id: r.id, startedAt: r.startedAt, seenUntil: r.seenUntil, alive: r.seenUntil > now })),
  };
}

export function unheldQueues(view: ClusterView): string[] {
  return view.leases.filter((l) => l.heldBy === undefined).map((l) => l.queue);
}

/** One line per replica: alive, or since when it stopped renewing and what that means. */
export function describeReplica(replica: ReplicaView, now: Date): string {
  return replica.alive
    ? `replica ${replica.id}: alive (started ${relativeTime(replica.startedAt, now)})`
    : `replica ${replica.id}: not renewing since ${relativeTime(replica.seenUntil, now)}: stopped, or cannot reach PostgreSQL (its queues move to the others)`;
}

/** The JSON of `status --json` and /status.json (times ISO 8601, null when unknown). */
export function clusterToJson(view: ClusterView): { leases: object[]; replicas: object[] } {
  return {
    leases: view.leases.map((l) => ({
      queue: l.queue,
      heldBy: l.heldBy ?? null,
      since: l.since?.toISOString() ?? null,
      leaseUntil: l.leaseUntil.toISOString(),
      epoch: l.epoch,
      takeovers: l.takeovers,
    })),
    replicas: view.replicas.map((r) => ({ id: r.id, startedAt: r.startedAt.toISOString(), seenUntil: r.seenUntil.toISOString(), alive: r.alive })),
  };
}
