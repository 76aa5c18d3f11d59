/**
 * How a batch of UIDs is fetched, in UID order: runs of small messages in one FETCH each
 * (imapflow buffers every message of a FETCH whole, so a run is bounded in bytes), and each big
 * message alone as a chunked download streamed into the spool. A download cannot run inside a
 * FETCH stream (imapflow#159), hence runs rather than one FETCH with exceptions.
 */

export type FetchRun = { readonly kind: "bulk"; readonly uids: number[] } | { readonly kind: "stream"; readonly uid: number };

export interface FetchPlanLimits {
  /** A message above this many bytes (RFC822.SIZE) is streamed. */
  readonly streamAbove: number;
  /** A bulk run holds at most this many bytes (the last message may cross it). */
  readonly bulkBytes: number;
}

export function planFetchRuns(uids: readonly number[], sizeOf: (uid: number) => number, limits: FetchPlanLimits): FetchRun[] {
  const runs: FetchRun[] = [];
  let bulk: number[] = [];
  let bulkBytes = 0;
  const closeBulk = () => {
    if (bulk.length > 0) runs.push({ kind: "bulk", uids: bulk });
    bulk = [];
    bulkBytes = 0;
  };
  for (const uid of uids) {
    const size = sizeOf(uid);
    if (size > limits.streamAbove) {
      closeBulk();
      runs.push({ kind: "stream", uid });
      continue;
    }
    bulk.push(uid);
    bulkBytes += size;
    if (bulkBytes >= limits.bulkBytes) closeBulk();
  }
  closeBulk();
  return runs;
}
