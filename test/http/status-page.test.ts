/** The page's HTML on its own (pure); the rendered page is tested in Chromium in operating-surface.test.ts. */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { escapeHtml } from "../../src/http/html.js";
import { renderStatusPage, STATUS_PAGE_CSP } from "../../src/http/status-page.js";
import type { QueueHealth } from "../../src/metrics/queue-health.js";

const now = new Date("2026-05-20T10:00:00Z");
const hostile = `<img src=x onerror="alert(1)">&'`;

const queues: QueueHealth[] = [
  { queue: "support", state: "ok", tokenExpiresAt: new Date("2026-05-20T10:52:00Z"), lastSuccessAt: new Date("2026-05-20T09:59:48Z"), consecutiveFailures: 0, backlog: 0, deadLetters: 0, spoolBytes: 0 },
  {
    queue: "sales",
    state: "misconfigured",
    lastError: { code: "IMAP_FOLDER_NOT_FOUND", message: `Queue sales: the folder '${hostile}' does not exist in the mailbox.`, fix: "Correct the queue's `folder`.", at: new Date("2026-05-20T09:58:00Z") },
    consecutiveFailures: 3,
    backlog: 4,
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
});
