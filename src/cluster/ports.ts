/**
 * The cluster ports: queue leases with fencing epochs, for several replicas sharing one state
 * store (PostgreSQL). A queue's pipeline (token refresh, poller, deliverer) runs only on the
 * replica that holds its lease; every queue-scoped write of the shared store checks, in its own
 * transaction, that the writer still holds the queue at its epoch (STATE_FENCED otherwise).
 * One replica on SQLite needs none of this: it owns every queue.
 */

/** A lease as this replica holds it. */
export interface HeldLease {
  readonly queue: string;
  /** The fencing token: grows on every change of owner. */
  readonly epoch: number;
  /** When this replica acquired it. */
  readonly since: Date;
}

/** Who holds a queue, as the store knows it (for `status` and the status page). */
export interface LeaseRecord {
  readonly queue: string;
  readonly owner?: string;
  readonly epoch: number;
  readonly leaseUntil: Date;
  readonly acquiredAt?: Date;
  readonly renewedAt?: Date;
  /** Times the queue changed hands because its owner's lease ran out. */
  readonly takeovers: number;
}

export interface ReplicaRecord {
  readonly id: string;
  readonly startedAt: Date;
  /** Its last lease round's validity: past it, the replica is gone or cannot reach PostgreSQL. */
  readonly seenUntil: Date;
}

/** What the store's writes ask: the epoch this replica holds a queue at, if it holds it still. */
export interface QueueFence {
  /** This replica's id (the `owner` of its leases). */
  readonly owner: string;
  /** The epoch held, or undefined when this replica does not hold the queue (or its lease ran out by its own clock). */
  epochOf(queue: string): number | undefined;
  /** A write found the lease gone: the queue's pipeline stops at once. */
  lost(queue: string, epoch: number): void;
}

export interface LeaseRound {
  /** Every lease this replica holds after the round. */
  readonly held: readonly HeldLease[];
  /** Queues acquired in this round (from nobody, or taken over). */
  readonly acquired: readonly HeldLease[];
  /** Acquired from another replica whose lease had run out. */
  readonly tookOver: readonly string[];
}

export interface QueueLeaseStore {
  /**
   * One round: says this replica is alive, renews the leases it holds, claims the queues it
   * should own (its share by rendezvous hashing over live replicas, and any queue whose lease
   * ran out a round ago), and releases the queues another live replica should own. Each claim
   * bumps the epoch; renewing keeps it. Leases and the replica's liveness last `validMs`, by
   * the database's clock.
   */
  round(replica: string, queues: readonly string[], validMs: number): Promise<LeaseRound>;
  /** Gives up this replica's leases (a clean stop), so others take them at once. */
  release(replica: string, queues?: readonly string[]): Promise<void>;
  /** Every queue's lease, as stored. */
  all(): Promise<LeaseRecord[]>;
  /** The replicas that took part in rounds lately: alive while `seenUntil` is ahead. */
  replicas(): Promise<ReplicaRecord[]>;
}
