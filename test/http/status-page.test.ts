/** The page's HTML on its own (pure); the rendered page is tested in Chromium in operating-surface.test.ts. */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { escapeHtml } from "../../src/http/html.js";
import { renderStatusPage, STATUS_PAGE_CSP } from "../../src/http/status-page.js";
import type { QueueHealth } from "../../src/metrics/queue-health.js";
import { clusterView } from "../../src/metrics/cluster-view.js";
import { HOUR_MS, type HourActivity } from "../../src/state/queue-activity.js";

const now = new Date("2026-05-20T10:00:00Z");
const hostile = `<img src=x onerror="alert(1)">&'`;

const queues: QueueHealth[] = [
  {
    queue: "support",
    state: "ok",
    tokenExpiresAt: new Date("2026-05-20T10:52:00Z"),
    lastSuccessAt: new Date("2026-05-20T09:59:48Z"),
    consecutiveFailures: 0,
    backlog: 0,
    deadLetters: 0,
    spoolBytes: 0,
  },
  {
    queue: "sales",
    state: "misconfigured",
    lastError: {
      code: "IMAP_FOLDER_NOT_FOUND",
      message: `Queue sales: the folder '${hostile}' does not exist in the mailbox.`,
      fix: "Correct the queue's `folder`.",
      at: new Date("2026-05-20T09:58:00Z"),
    },
    consecutiveFailures: 3,
    backlog: 4,
    oldestUndeliveredAt: new Date("2026-05-20T09:12:00Z"),
    deadLetters: 2,
    spoolBytes: 0,
  },
];

describe("status page HTML", () => {
  it("escapes every character that could open markup", () => {
    expect(escapeHtml(hostile)).toBe("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;");
  });

  it("shows each queue and never passes outside text through as markup", () => {
    const html = renderStatusPage(queues, { now, version: "1.2.3", ready: true });
    expect(html).not.toContain("<img");
    expect(html).toContain(escapeHtml(hostile));
    expect(html).toContain('data-queue="sales" data-state="misconfigured"');
    expect(html).toContain("1 of 2 queues needs attention");
    expect(html).toContain("in 52m");
    expect(html).toContain("Fix: Correct the queue&#39;s `folder`.");
    expect(html).toContain('<meta http-equiv="refresh" content="10">');
  });

  it("allows exactly its own inline style in the Content-Security-Policy", () => {
    const html = renderStatusPage(queues, { now, version: "1.2.3", ready: true });
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
    expect(STATUS_PAGE_CSP).toContain(`'sha256-${createHash("sha256").update(style).digest("base64")}'`);
    expect(STATUS_PAGE_CSP).toContain("default-src 'none'");
  });

  it("draws each queue's last 24 hours as an inline SVG chart, one slot per hour, on one scale", () => {
    const first = Date.parse("2026-05-19T11:00:00Z");
    const hours: HourActivity[] = Array.from({ length: 24 }, (_, i) => ({
      start: new Date(first + i * HOUR_MS),
      delivered: 0,
      deliveryFailures: 0,
      fetchFailures: 0,
    }));
    hours[20] = { ...hours[20]!, delivered: 10 };
    hours[23] = { ...hours[23]!, delivered: 5, deliveryFailures: 1, fetchFailures: 1 };
    const html = renderStatusPage(queues, { now, version: "1.2.3", ready: true, charts: new Map([["support", hours]]) });
    const row = html.split("\n").find((line) => line.includes('data-queue="support"'))!;
    const svg = /<svg class="chart"[\s\S]*?<\/svg>/.exec(row)![0];
    expect(svg).toContain('width="168" height="32"');
    expect(svg).toContain('aria-label="Last 24 hours: 15 delivered, 2 failures"');
    // One tooltip: the totals, then each hour that had activity.
    expect(svg.match(/<title>/g)).toHaveLength(1);
    expect(svg).toContain(
      "&#10;07:00 UTC: 10 delivered, 0 failed deliveries, 0 failed fetches&#10;10:00 UTC: 5 delivered, 1 failed deliveries, 1 failed fetches</title>",
    );
    // The busiest hour fills the height; the others scale to it; quiet hours draw nothing.
    expect(svg).toContain('<path class="delivered" d="M140 31v-31h3v31zM161 31v-16h3v16z"/>');
    expect(svg).toContain('<path class="failed" d="M164 31v-6h3v6z"/>');
    expect(row).toContain('15 delivered</span> · <span class="f">2 failures');
    // A queue without numbers (the page rendered without a state) says so instead.
    expect(html.split("\n").find((line) => line.includes('data-queue="sales"'))).toContain('<td class="activity"><span class="muted">no data</span></td>');
  });

  it("shows how long the oldest undelivered message has waited", () => {
    const html = renderStatusPage(queues, { now, version: "1.2.3", ready: true });
    expect(html).toContain('<td class="num oldest-waiting" title="2026-05-20 09:12:00Z">48m</td>');
    expect(html).toContain('<td class="num oldest-waiting"><span class="muted">none</span></td>');
  });

  it("with several replicas, shows who holds each queue since when, the replicas, and a queue nobody holds as needing attention", () => {
    const cluster = clusterView(
      [
        {
          queue: "support",
          owner: `r1:${hostile}`,
          epoch: 3,
          leaseUntil: new Date("2026-05-20T10:00:10Z"),
          acquiredAt: new Date("2026-05-20T09:55:00Z"),
          takeovers: 1,
        },
        // Its holder's lease ran out: nobody holds it now.
        {
          queue: "sales",
          owner: "r2:gone",
          epoch: 2,
          leaseUntil: new Date("2026-05-20T09:59:00Z"),
          acquiredAt: new Date("2026-05-20T08:00:00Z"),
          takeovers: 0,
        },
      ],
      [
        { id: `r1:${hostile}`, startedAt: new Date("2026-05-20T09:00:00Z"), seenUntil: new Date("2026-05-20T10:00:10Z") },
        { id: "r2:gone", startedAt: new Date("2026-05-20T07:00:00Z"), seenUntil: new Date("2026-05-20T09:59:00Z") },
      ],
      ["support", "sales"],
      now,
    );
    const html = renderStatusPage(queues, { now, version: "1.0.0", ready: true, cluster });
    expect(html).not.toContain(hostile);
    const lease = (queue: string) => html.split("\n").find((line) => line.startsWith(`<tr data-queue="${queue}" data-held-by=`))!;
    expect(lease("support")).toContain(`<td>r1:${escapeHtml(hostile)}</td>`);
    expect(lease("support")).toContain(">5m ago</td>");
    expect(lease("support")).toContain('<td class="num takeovers">1</td>');
    expect(lease("sales")).toContain(">nobody</span>");
    expect(html).toContain("1 queue held by nobody.");
    expect(html).toContain('data-replica="r2:gone" data-alive="false">replica r2:gone: not renewing since 1m ago');
    // One node: no replicas section at all.
    expect(renderStatusPage(queues, { now, version: "1.0.0", ready: true })).not.toContain("Replicas");
  });
});
