/**
 * `mailfetchd status`: every configured queue's health, read from the state store (safe
 * while the daemon runs): state, token expiry, last successful fetch, backlog and how long its
 * oldest message has waited, dead letters,
 * and the last error with its fix. `--json` prints the same as JSON.
 * Exit 0: every queue is ok; 1: some queue needs attention (not ok, or dead letters waiting),
 * or the daemon has never run with this config; 78: the config is invalid.
 */
import { describeBytes } from "../metrics/size-format.js";
import type { Command } from "commander";
import { loadConfig } from "../config/load.js";
import { attentionHints, currentError, healthToJson, needsAttention, readQueueHealth, type QueueHealth } from "../metrics/queue-health.js";
import { describeLastSuccess, describeTokenExpiry, relativeTime, waitedFor } from "../metrics/time-format.js";
import { openStateStoreReadOnly } from "../store/open-store.js";
import { clusterToJson, describeReplica, readClusterView, UNHELD_HINT, unheldQueues, type ClusterView } from "../metrics/cluster-view.js";
import { configPathOf, EXIT, withConfigOption } from "./common.js";

export function registerStatus(program: Command): void {
  withConfigOption(
    program
      .command("status")
      .description(
        "each queue's state, token expiry, last successful fetch, backlog, dead letters and last error with its fix (exit 1 when any needs attention)",
      )
      .option("--json", "print JSON instead of a table"),
  ).action(async (options: { config?: string; json?: boolean }) => {
    const config = loadConfig(configPathOf(options));
    const queues = config.queues.map((q) => q.name);
    const store = openStateStoreReadOnly(config);
    let health: QueueHealth[];
    let cluster: ClusterView | undefined;
    try {
      health = store
        ? await readQueueHealth({ status: store.queueStatus, retention: store.retention, tokenCaches: store.tokenCaches }, queues)
        : queues.map((queue): QueueHealth => ({ queue, state: "unknown", consecutiveFailures: 0, backlog: 0, deadLetters: 0, spoolBytes: 0 }));
      if (store?.leases) cluster = await readClusterView(store.leases, queues, new Date());
    } finally {
      await store?.close();
    }
    const now = new Date();
    const ok = health.every((h) => !needsAttention(h)) && (cluster === undefined || unheldQueues(cluster).length === 0);
    if (options.json) {
      process.stdout.write(
        `${JSON.stringify({ generatedAt: now.toISOString(), ok, queues: health.map(healthToJson), ...(cluster ? clusterToJson(cluster) : {}) }, null, 2)}\n`,
      );
    } else {
      process.stdout.write(renderTable(health, now));
      if (cluster) process.stdout.write(`\n${renderCluster(cluster, now)}`);
      if (!store)
        process.stdout.write(
          `\nNo state yet in ${config.stateDir}: the daemon has not run with this config. Start it: mailfetchd run (or systemctl start mailfetchd).\n`,
        );
    }
    process.exitCode = ok ? EXIT.OK : EXIT.FAILURE;
  });
}

/** Several replicas on PostgreSQL: which replica holds which queue since when, and the replicas seen. */
export function renderCluster(cluster: ClusterView, now: Date): string {
  const header = ["QUEUE", "HELD BY", "SINCE", "EPOCH", "TAKEOVERS"];
  const rows = cluster.leases.map((l) => [l.queue, l.heldBy ?? "nobody", l.since ? relativeTime(l.since, now) : "-", String(l.epoch), String(l.takeovers)]);
  const out = [...columns(header, rows, 3), ""];
  for (const r of cluster.replicas) out.push(describeReplica(r, now));
  if (unheldQueues(cluster).length > 0) out.push("", UNHELD_HINT);
  return `${out.join("\n")}\n`;
}

/** Columns for a terminal, then one block per queue that needs a look: its error and fix. */
export function renderTable(health: readonly QueueHealth[], now: Date): string {
  const header = ["QUEUE", "STATE", "TOKEN EXPIRES", "LAST FETCH OK", "BACKLOG", "OLDEST WAITING", "DEAD LETTERS", "SPOOL"];
  const rows = health.map((h) => [
    h.queue,
    h.state,
    describeTokenExpiry(h.tokenExpiresAt, now),
    describeLastSuccess(h.lastSuccessAt, now),
    String(h.backlog),
    // How long the oldest message not yet handed to every handler has waited: a backlog that
    // moves stays young; one that is stuck ages.
    h.oldestUndeliveredAt ? waitedFor(h.oldestUndeliveredAt, now) : "-",
    String(h.deadLetters),
    describeBytes(h.spoolBytes),
  ]);
  const out = columns(header, rows, 4);
  for (const h of health) {
    const error = currentError(h);
    const hints = attentionHints(h);
    if (!error && hints.length === 0) continue;
    out.push("", `${h.queue}:`);
    if (error) {
      out.push(
        `  last error ${error.code} (${relativeTime(error.at, now)}${h.consecutiveFailures > 1 ? `, ${h.consecutiveFailures} in a row` : ""}): ${error.message}`,
      );
      if (error.fix) out.push(`  fix: ${error.fix}`);
    }
    for (const hint of hints) out.push(`  ${hint}`);
  }
  return `${out.join("\n")}\n`;
}

/** A header and rows lined up in columns two spaces apart; columns from `rightFrom` on (figures) aligned right. */
function columns(header: readonly string[], rows: ReadonlyArray<readonly string[]>, rightFrom: number): string[] {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i >= rightFrom ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}
