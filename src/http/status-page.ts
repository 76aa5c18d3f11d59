/**
 * The operators' status page: every queue's health at a glance, refreshed by the browser
 * every REFRESH_SECONDS (a meta refresh: no script, so the page's CSP allows none). Every
 * piece of text from the outside world is escaped. Each queue has a small inline-SVG chart of
 * its last 24 hours (deliveries and failures per hour), coloured by the page's one style sheet.
 */
import { describeBytes } from "../metrics/size-format.js";
import { createHash } from "node:crypto";
import { attentionHints, currentError, needsAttention, type QueueHealth } from "../metrics/queue-health.js";
import { describeLastSuccess, describeTokenExpiry, relativeTime, utcTime, waitedFor } from "../metrics/time-format.js";
import type { HourActivity } from "../state/queue-activity.js";
import { describeReplica, UNHELD_HINT, unheldQueues, type ClusterView } from "../metrics/cluster-view.js";
import { escapeHtml as e } from "./html.js";

export const REFRESH_SECONDS = 10;

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d2330;background:#f6f7f9}
h1{font-size:1.3rem;margin:0 0 .25rem}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
ul.replicas{margin:.5rem 0;padding-left:1.2rem}
.summary{margin:0 0 1rem;font-weight:600}
.summary.attention{color:#a4262c}.summary.ok{color:#107c10}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002}
th,td{text-align:left;vertical-align:top;padding:.5rem .6rem;border-bottom:1px solid #e3e6ea}
th{background:#eef0f3;font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.state{display:inline-block;padding:.1rem .5rem;border-radius:1rem;font-weight:600;white-space:nowrap}
.state-ok{background:#dff6dd;color:#0b5a0b}.state-starting,.state-unknown{background:#eef0f3;color:#444}
.state-retrying{background:#fff4ce;color:#6b4b00}
.state-needs-password,.state-needs-sign-in,.state-needs-admin,.state-misconfigured{background:#fde7e9;color:#a4262c}
.error code{font-weight:600}.fix{margin-top:.25rem;color:#0b3a8c}
.muted{color:#68707c}
footer{margin-top:1rem;color:#68707c;font-size:.85rem}
svg.chart{display:block}.chart .delivered{fill:#107c10}.chart .failed{fill:#d13438}.chart .axis{stroke:#b8bec7;stroke-width:1}
.chart-legend{font-size:.8rem;color:#68707c;white-space:nowrap}.chart-legend .d{color:#0b5a0b}.chart-legend .f{color:#a4262c}
`;

/** Chart geometry, px: one slot per hour, a delivered bar and a failures bar side by side. */
const SLOT = 7;
const BAR = 3;
const CHART_HEIGHT = 32;

/** For the Content-Security-Policy: this one inline style and nothing else may run or load. */
export const STATUS_PAGE_CSP = `default-src 'none'; style-src 'sha256-${createHash("sha256").update(STYLE).digest("base64")}'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`;

export interface StatusPageInfo {
  readonly now: Date;
  readonly version: string;
  readonly ready: boolean;
  /** Per queue, the last 24 hours, oldest first; a queue without an entry shows no chart. */
  readonly charts?: ReadonlyMap<string, readonly HourActivity[]>;
  /** Several replicas on PostgreSQL: who holds which queue; absent on one node. */
  readonly cluster?: ClusterView;
}

export function renderStatusPage(queues: readonly QueueHealth[], info: StatusPageInfo): string {
  const attention = queues.filter(needsAttention).length;
  const summary =
    attention === 0
      ? `<p class="summary ok">All ${queues.length} queue${queues.length === 1 ? "" : "s"} ok</p>`
      : `<p class="summary attention">${attention} of ${queues.length} queue${queues.length === 1 ? "" : "s"} need${attention === 1 ? "s" : ""} attention</p>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="${REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${attention === 0 ? "" : `(${attention}) `}mailfetchd status</title>
<style>${STYLE}</style>
</head>
<body>
<h1>mailfetchd</h1>
${summary}
<table id="queues">
<thead><tr><th>Queue</th><th>State</th><th>Token expires</th><th>Last successful fetch</th><th>Backlog</th><th>Oldest waiting</th><th>Dead letters</th><th>Spool</th><th>Last 24 hours</th><th>Last error and fix</th></tr></thead>
<tbody>
${queues.map((q) => renderRow(q, info.now, info.charts?.get(q.queue))).join("\n")}
</tbody>
</table>
${info.cluster ? renderCluster(info.cluster, info.now) : ""}<footer>Generated ${e(utcTime(info.now))} by mailfetchd ${e(info.version)} (${info.ready ? "ready" : "not ready"}); refreshes every ${REFRESH_SECONDS} s.
Machine-readable: <a href="status.json">status.json</a>, <a href="metrics">metrics</a>. Errors and fixes: docs/troubleshooting.md.</footer>
</body>
</html>
`;
}

/** Which replica holds which queue since when, and the replicas seen lately. */
export function renderCluster(cluster: ClusterView, now: Date): string {
  const unheld = unheldQueues(cluster);
  const rows = cluster.leases.map(
    (l) =>
      `<tr data-queue="${e(l.queue)}" data-held-by="${e(l.heldBy ?? "")}"><td class="queue">${e(l.queue)}</td>` +
      `<td>${l.heldBy ? e(l.heldBy) : `<span class="state state-misconfigured">nobody</span>`}</td>` +
      `<td${title(l.since)}>${l.since ? e(relativeTime(l.since, now)) : `<span class="muted">-</span>`}</td>` +
      `<td class="num">${l.epoch}</td><td class="num takeovers">${l.takeovers}</td></tr>`,
  );
  const replicas = cluster.replicas.map((r) => `<li data-replica="${e(r.id)}" data-alive="${r.alive}">${e(describeReplica(r, now))}</li>`);
  return `<h2>Replicas</h2>
${unheld.length > 0 ? `<p class="summary attention">${unheld.length} queue${unheld.length === 1 ? "" : "s"} held by nobody. ${e(UNHELD_HINT)}</p>\n` : ""}<table id="leases">
<thead><tr><th>Queue</th><th>Held by</th><th>Since</th><th>Epoch</th><th>Takeovers</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody>
</table>
<ul class="replicas">${replicas.join("")}</ul>
`;
}

function renderRow(q: QueueHealth, now: Date, hours: readonly HourActivity[] | undefined): string {
  const cells = [
    `<td class="queue">${e(q.queue)}</td>`,
    `<td><span class="state state-${e(q.state)}">${e(q.state)}</span>${q.consecutiveFailures > 1 ? ` <span class="muted">(${q.consecutiveFailures} failures in a row)</span>` : ""}</td>`,
    `<td${title(q.tokenExpiresAt)}>${e(describeTokenExpiry(q.tokenExpiresAt, now))}</td>`,
    `<td${title(q.lastSuccessAt)}>${e(describeLastSuccess(q.lastSuccessAt, now))}</td>`,
    `<td class="num backlog">${q.backlog}</td>`,
    `<td class="num oldest-waiting"${title(q.oldestUndeliveredAt)}>${q.oldestUndeliveredAt ? e(waitedFor(q.oldestUndeliveredAt, now)) : `<span class="muted">none</span>`}</td>`,
    `<td class="num dead-letters">${q.deadLetters}</td>`,
    `<td class="num spool-bytes">${e(describeBytes(q.spoolBytes))}</td>`,
    `<td class="activity">${hours ? renderChart(hours) : `<span class="muted">no data</span>`}</td>`,
    `<td class="last-error">${renderProblem(q, now)}</td>`,
  ];
  return `<tr data-queue="${e(q.queue)}" data-state="${e(q.state)}">${cells.join("")}</tr>`;
}

/**
 * Deliveries (green) and failures (red: failed fetch cycles and failed delivery attempts) per
 * hour, on one scale. Compact, since a page may hold 1,000 queues: each series is one path of
 * bars, and the chart's tooltip lists the hours that had any activity.
 */
export function renderChart(hours: readonly HourActivity[]): string {
  const failures = (h: HourActivity) => h.deliveryFailures + h.fetchFailures;
  const max = Math.max(1, ...hours.map((h) => Math.max(h.delivered, failures(h))));
  const height = (n: number) => (n === 0 ? 0 : Math.max(1, Math.round((n / max) * (CHART_HEIGHT - 1))));
  const bars = (count: (h: HourActivity) => number, offset: number) =>
    hours
      .map((h, i) => {
        const barHeight = height(count(h));
        return barHeight === 0 ? "" : `M${i * SLOT + offset} ${CHART_HEIGHT - 1}v-${barHeight}h${BAR}v${barHeight}z`;
      })
      .join("");
  const path = (cls: string, d: string) => (d === "" ? "" : `<path class="${cls}" d="${d}"/>`);
  const width = hours.length * SLOT;
  const delivered = hours.reduce((sum, h) => sum + h.delivered, 0);
  const failed = hours.reduce((sum, h) => sum + failures(h), 0);
  const failures24 = `${failed} failure${failed === 1 ? "" : "s"}`;
  const label = `Last 24 hours: ${delivered} delivered, ${failures24}`;
  const active = hours
    .filter((h) => h.delivered + failures(h) > 0)
    .map(
      (h) => `${h.start.toISOString().slice(11, 16)} UTC: ${h.delivered} delivered, ${h.deliveryFailures} failed deliveries, ${h.fetchFailures} failed fetches`,
    );
  // A newline as a character reference keeps each table row on one line of HTML.
  const tooltip = [`${label} (one bar pair per hour, oldest left)`, ...active].map((line) => e(line)).join("&#10;");
  return (
    `<svg class="chart" width="${width}" height="${CHART_HEIGHT}" viewBox="0 0 ${width} ${CHART_HEIGHT}" role="img" aria-label="${e(label)}" data-delivered="${delivered}" data-failures="${failed}">` +
    `<title>${tooltip}</title>${path(
      "delivered",
      bars((h) => h.delivered, 0),
    )}${path("failed", bars(failures, BAR))}` +
    `<line class="axis" x1="0" y1="${CHART_HEIGHT - 0.5}" x2="${width}" y2="${CHART_HEIGHT - 0.5}"/></svg>` +
    `<div class="chart-legend"><span class="d">${delivered} delivered</span> · <span class="f">${failures24}</span></div>`
  );
}

function renderProblem(q: QueueHealth, now: Date): string {
  const parts: string[] = [];
  const error = currentError(q);
  if (error) {
    parts.push(`<div class="error"><code>${e(error.code)}</code> ${e(error.message)} <span class="muted">(${e(relativeTime(error.at, now))})</span></div>`);
    if (error.fix) parts.push(`<div class="fix">Fix: ${e(error.fix)}</div>`);
  }
  for (const hint of attentionHints(q)) parts.push(`<div class="fix">${e(hint)}</div>`);
  return parts.length > 0 ? parts.join("") : `<span class="muted">none</span>`;
}

function title(at: Date | undefined): string {
  return at ? ` title="${e(utcTime(at))}"` : "";
}
