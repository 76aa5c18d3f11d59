/**
 * The HTTP surface of a real daemon (src/app.ts, in process) on the test bed: Dovecot over
 * XOAUTH2, the identity stand-in, real SQLite, the directory handler on disk. Four queues,
 * each in a different condition: fetching and delivering, a refused password, a folder whose
 * name is hostile HTML, and one whose message is above its size cap (a dead letter). Bound to
 * loopback with a bearer token, which every path then requires (off loopback it would also
 * need TLS: test/http/http-hardening.test.ts). The status page is checked in headless Chromium.
 */
import { mkdirSync, mkdtempSync, readdirSync, existsSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Daemon } from "../../src/app.js";
import { loadConfig } from "../../src/config/load.js";
import { createLogger, SecretRegistry } from "../../src/log.js";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { addHttpBlock, largeMessage, waitFor, writeTokenFile } from "../../tools/testbed/helpers/config-file.js";

// Runs in the page (tsconfig has no DOM library).
declare const getComputedStyle: (element: unknown) => { backgroundColor: string; fill: string };

const HOSTILE_FOLDER = `Queue <img src=x onerror="alert(1)">`;
const QUEUES = {
  alpha: { address: "alpha@example.test", password: "alpha-Pa55word!" },
  locked: { address: "locked@example.test", password: "locked-Pa55word!" },
  odd: { address: "odd@example.test", password: "odd-Pa55word!" },
  big: { address: "big@example.test", password: "big-Pa55word!" },
};
const ARTIFACTS = path.resolve("test-artifacts");

let bed: TestBed;
let daemon: Daemon;
let token: string;
let base: string;
let outDir: string;
const logLines: string[] = [];
const bodies: string[] = [];

async function get(urlPath: string, headers: Record<string, string> = { authorization: `Bearer ${token}` }) {
  const response = await fetch(`${base}${urlPath}`, { headers });
  const body = await response.text();
  bodies.push(body);
  return { status: response.status, headers: response.headers, body };
}

function delivered(queue: string): number {
  const dir = path.join(outDir, queue);
  return existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith(".")).length : 0;
}

/** value of one sample in Prometheus text, e.g. metric('x_total{queue="a"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const EXPECTED_STATES = { alpha: "ok", locked: "needs-password", odd: "misconfigured", big: "ok" };

/** Waits until every queue is in the condition it was built for; on timeout, says what each one is in. */
async function waitForExpectedStates(): Promise<void> {
  let last = "";
  try {
    await waitFor("every queue in its expected state", async () => {
      last = (await get("/status.json")).body;
      const queues = (JSON.parse(last) as { queues: Array<{ queue: string; state: string }> }).queues;
      return queues.every((q) => EXPECTED_STATES[q.queue as keyof typeof EXPECTED_STATES] === q.state);
    });
  } catch (error) {
    throw new Error(`${(error as Error).message}; /status.json said:\n${last}`);
  }
}

beforeAll(async () => {
  bed = await startTestBed();
  for (const [, q] of Object.entries(QUEUES)) bed.identity.addUser({ username: q.address, password: q.password });
  outDir = path.join(bed.dir, "out");
  // A directory handler whose path is a file: every delivery fails and is retried (a backlog).
  const blocked = path.join(bed.dir, "not-a-directory");
  writeFileSync(blocked, "");
  const handlers = [{ type: "directory", path: outDir }];
  const configFile = bed.writeDaemonConfig({
    stateDir: path.join(bed.dir, "state"),
    poll: "1s",
    logLevel: "debug",
    queues: [
      { name: "alpha", ...QUEUES.alpha, options: { idle: false }, handlers: [...handlers, { type: "directory", name: "blocked", path: blocked }] },
      { name: "locked", address: QUEUES.locked.address, password: "not-the-password", options: { idle: false }, handlers },
      { name: "odd", ...QUEUES.odd, folder: HOSTILE_FOLDER, options: { idle: false }, handlers },
      { name: "big", ...QUEUES.big, options: { idle: false, maxMessageSize: "2KB" }, handlers },
    ],
  });
  const tokenFile = path.join(bed.dir, "http.token");
  token = writeTokenFile(tokenFile);
  // Port 0: the system picks a free one, so parallel test files never collide.
  addHttpBlock(configFile, { listen: "127.0.0.1:0", bearerTokenFile: tokenFile });

  for (const m of sampleMessages(3, { seed: "alpha", to: QUEUES.alpha.address })) await bed.dovecot.deliver(QUEUES.alpha.address, m.raw);
  await bed.dovecot.deliver(QUEUES.big.address, largeMessage(QUEUES.big.address, 8_000));

  const config = loadConfig(configFile);
  const secrets = new SecretRegistry();
  const logger = createLogger({ level: "debug", secrets, destination: { write: (line: string) => void logLines.push(line) } });
  daemon = new Daemon(config, logger, secrets);
  await daemon.start();
  base = `http://127.0.0.1:${daemon.surface!.authority!.split(":").pop()}`;
});

afterAll(async () => {
  await daemon?.stop(5_000);
  await bed?.close();
});

describe("HTTP surface of a running daemon", () => {
  it("is ready once every queue has finished a cycle, well or in a known error state", async () => {
    expect((await get("/livez")).body).toBe("ok\n");
    await waitFor("/readyz to answer 200", async () => (await get("/readyz")).status === 200);
    expect((await get("/readyz")).body).toBe("ready\n");
    await waitFor(
      "alpha's 3 messages delivered and big's dead letter",
      async () => delivered("alpha") === 3 && (await daemon.spool.deadLetterCount("big")) === 1,
    );
  });

  it("refuses every path without the right bearer token, and says how to send it", async () => {
    for (const urlPath of ["/livez", "/readyz", "/metrics", "/", "/status.json", "/nothing"]) {
      const none = await get(urlPath, {});
      expect(none.status, urlPath).toBe(401);
      expect(none.headers.get("www-authenticate")).toBe('Bearer realm="mailfetchd"');
      expect(none.body).toContain("Authorization: Bearer");
      expect((await get(urlPath, { authorization: `Bearer ${token.slice(0, -1)}0` })).status, urlPath).toBe(401);
      expect((await get(urlPath, { authorization: `Basic ${token}` })).status, urlPath).toBe(401);
    }
    expect((await get("/nothing")).status).toBe(404);
    const post = await fetch(`${base}/metrics`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
    expect(post.status).toBe(405);
  });

  it("reports each queue's health in /status.json", async () => {
    await waitForExpectedStates();
    const status = JSON.parse((await get("/status.json")).body) as { ready: boolean; version: string; queues: Array<Record<string, any>> };
    const byName = Object.fromEntries(status.queues.map((q) => [q.queue, q]));
    expect(status.ready).toBe(true);
    expect(byName.alpha).toMatchObject({ state: "ok", lastError: null, deadLetters: 0 });
    expect(Date.parse(byName.alpha!.tokenExpiresAt)).toBeGreaterThan(Date.now());
    expect(Date.parse(byName.alpha!.lastSuccessAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(byName.alpha!.backlog).toBe(await daemon.spool.backlog("alpha"));
    expect(byName.alpha!.backlog).toBeGreaterThanOrEqual(3); // the blocked handler's deliveries
    expect(byName.locked).toMatchObject({ state: "needs-password", ok: false, lastError: { code: "IDENTITY_BAD_PASSWORD" } });
    expect(byName.locked!.lastError.fix).toEqual(expect.any(String));
    expect(byName.odd).toMatchObject({ state: "misconfigured", lastError: { code: "IMAP_FOLDER_NOT_FOUND" } });
    expect(byName.odd!.lastError.message).toContain(HOSTILE_FOLDER);
    expect(byName.big).toMatchObject({ state: "ok", ok: false, deadLetters: 1, oldestUndeliveredAt: null });
    // The blocked handler's deliveries wait; the sign-in was stored at the first fetch.
    expect(Date.parse(byName.alpha!.oldestUndeliveredAt)).toBeLessThan(Date.now());
    expect(Date.parse(byName.alpha!.signInRenewedAt)).toBeGreaterThan(Date.now() - 120_000);
    expect(byName.locked!.signInRenewedAt).toBeNull();
  });

  it("exposes Prometheus metrics: counters from events, gauges read on scrape, process defaults", async () => {
    await waitFor(
      "a failed delivery to the blocked handler",
      async () => (sample((await get("/metrics")).body, 'mailfetchd_delivery_failures_total{queue="alpha",handler="blocked"}') ?? 0) >= 1,
    );
    const response = await get("/metrics");
    expect(response.headers.get("content-type")).toContain("text/plain");
    const text = response.body;
    expect(sample(text, 'mailfetchd_messages_spooled_total{queue="alpha"}')).toBe(3);
    expect(sample(text, 'mailfetchd_messages_fetched_total{queue="alpha"}')).toBe(3);
    expect(sample(text, 'mailfetchd_deliveries_total{queue="alpha",handler="directory"}')).toBe(3);
    expect(sample(text, 'mailfetchd_handler_duration_seconds_count{queue="alpha",handler="directory"}')).toBe(3);
    expect(sample(text, 'mailfetchd_delivery_failures_total{queue="alpha",handler="blocked"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'mailfetchd_spool_backlog{queue="alpha"}')).toBe(await daemon.spool.backlog("alpha"));
    expect(sample(text, 'mailfetchd_dead_lettered_total{queue="big",handler="directory"}')).toBe(1);
    expect(sample(text, 'mailfetchd_dead_letters{queue="big"}')).toBe(1);
    expect(sample(text, 'mailfetchd_identity_errors_total{queue="locked",code="IDENTITY_BAD_PASSWORD"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'mailfetchd_imap_errors_total{queue="odd",code="IMAP_FOLDER_NOT_FOUND"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'mailfetchd_fetch_failures_total{queue="odd",code="IMAP_FOLDER_NOT_FOUND"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'mailfetchd_fetch_cycles_total{queue="alpha",result="ok"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'mailfetchd_queue_state{queue="locked",state="needs-password"}')).toBe(1);
    expect(sample(text, 'mailfetchd_queue_state{queue="locked",state="ok"}')).toBe(0);
    const expiry = (await daemon.status.get("alpha"))!.tokenExpiresAt!.getTime() / 1000;
    expect(sample(text, 'mailfetchd_token_expiry_timestamp_seconds{queue="alpha"}')).toBe(expiry);
    expect(sample(text, 'mailfetchd_last_success_timestamp_seconds{queue="alpha"}')).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(sample(text, 'mailfetchd_token_expiry_timestamp_seconds{queue="locked"}')).toBeUndefined();
    // Ages as gauges, so alert rules need no arithmetic.
    expect(sample(text, 'mailfetchd_last_success_age_seconds{queue="alpha"}')).toBeLessThan(60);
    expect(sample(text, 'mailfetchd_last_success_age_seconds{queue="locked"}')).toBeGreaterThanOrEqual(0); // never fetched: since the start
    expect(sample(text, 'mailfetchd_oldest_undelivered_age_seconds{queue="alpha"}')).toBeGreaterThan(0);
    expect(sample(text, 'mailfetchd_oldest_undelivered_age_seconds{queue="big"}')).toBe(0); // only a dead letter
    expect(sample(text, 'mailfetchd_refresh_token_age_seconds{queue="alpha"}')).toBeLessThan(120);
    expect(sample(text, 'mailfetchd_refresh_token_age_seconds{queue="locked"}')).toBeUndefined();
    expect(sample(text, 'mailfetchd_delivery_delay_seconds_count{queue="alpha",handler="directory"}')).toBe(3);
    const avail = sample(text, "mailfetchd_state_filesystem_avail_bytes")!;
    expect(avail).toBeGreaterThan(0);
    expect(sample(text, "mailfetchd_state_filesystem_size_bytes")).toBeGreaterThanOrEqual(avail);
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(text).toContain('mailfetchd_info{version="');
  });

  it("renders the status page in Chromium: a row per queue, states, errors with their fixes, hostile text inert, refreshing itself", async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    await waitForExpectedStates();
    const profile = mkdtempSync(path.join(tmpdir(), "mailfetchd-chromium-"));
    let context: BrowserContext | undefined;
    try {
      context = await chromium.launchPersistentContext(profile, {
        executablePath: "/usr/bin/chromium",
        headless: true,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ],
        // As a reverse proxy in front of the daemon would add it.
        extraHTTPHeaders: { authorization: `Bearer ${token}` },
        viewport: { width: 1400, height: 800 },
      });
      const page = context.pages()[0] ?? (await context.newPage());
      const dialogs: string[] = [];
      const consoleErrors: string[] = [];
      page.on("dialog", (dialog) => {
        dialogs.push(dialog.message());
        void dialog.dismiss();
      });
      page.on("console", (message) => {
        if (message.type() === "error") consoleErrors.push(message.text());
      });
      const response = await page.goto(`${base}/status`, { waitUntil: "load" });
      expect(response?.status()).toBe(200);

      const rows = page.locator("#queues tbody tr");
      expect(await rows.count()).toBe(4);
      expect(await rows.evaluateAll((trs) => trs.map((tr) => [tr.getAttribute("data-queue"), tr.getAttribute("data-state")]))).toEqual([
        ["alpha", "ok"],
        ["locked", "needs-password"],
        ["odd", "misconfigured"],
        ["big", "ok"],
      ]);
      const locked = page.locator('tr[data-queue="locked"]');
      expect(await locked.locator(".state").innerText()).toBe("needs-password");
      expect(await locked.locator(".error code").innerText()).toBe("IDENTITY_BAD_PASSWORD");
      const fix = locked.locator(".fix").first();
      expect(await fix.isVisible()).toBe(true);
      expect(await fix.innerText()).toMatch(/^Fix: \S/);
      expect(await page.locator('tr[data-queue="big"] .dead-letters').innerText()).toBe("1");
      expect(await page.locator('tr[data-queue="big"] .last-error').innerText()).toContain("mailfetchd deadletters list");
      expect(await page.locator('tr[data-queue="alpha"] .oldest-waiting').innerText()).toMatch(/^\d+(s|m)$/);
      expect(await page.locator('tr[data-queue="big"] .oldest-waiting').innerText()).toBe("none");
      expect(Number(await page.locator('tr[data-queue="alpha"] .backlog').innerText())).toBeGreaterThanOrEqual(3);
      expect(await page.locator(".summary").innerText()).toBe("3 of 4 queues need attention");

      // The folder name is shown as text, never run as markup.
      expect(await page.locator('tr[data-queue="odd"] .error').innerText()).toContain(HOSTILE_FOLDER);
      expect(await page.locator("img").count()).toBe(0);
      // The inline style is allowed by its CSP hash (a blocked style would leave the badge unstyled).
      expect(await page.locator('tr[data-queue="alpha"] .state').evaluate((el) => getComputedStyle(el).backgroundColor)).toBe("rgb(223, 246, 221)");
      await page.screenshot({ path: path.join(ARTIFACTS, "status-page.png"), fullPage: true });

      // Each queue's 24-hour chart is drawn: alpha delivered 3 (green) and its blocked handler
      // failed (red); locked only failed to fetch. Bars have a size on screen and their colour
      // from the page's style sheet (the CSP lets it apply).
      const charts = page.locator("#queues svg.chart");
      expect(await charts.count()).toBe(4);
      const alphaChart = page.locator('tr[data-queue="alpha"] svg.chart');
      const box = await alphaChart.boundingBox();
      expect(box!.width).toBeGreaterThanOrEqual(150);
      expect(box!.height).toBeGreaterThanOrEqual(30);
      expect(Number(await alphaChart.getAttribute("data-delivered"))).toBe(3);
      const bars = async (queue: string, kind: string) => {
        const box = await page.locator(`tr[data-queue="${queue}"] svg.chart path.${kind}`).boundingBox();
        return box !== null && box.width > 0 && box.height > 0;
      };
      expect(await bars("alpha", "delivered")).toBe(true);
      expect(await bars("alpha", "failed")).toBe(true);
      expect(await bars("locked", "failed")).toBe(true);
      expect(await page.locator('tr[data-queue="locked"] svg.chart path.delivered').count()).toBe(0);
      expect(await alphaChart.locator("path.delivered").evaluate((el) => getComputedStyle(el).fill)).toBe("rgb(16, 124, 16)");
      expect(await alphaChart.locator("title").textContent()).toMatch(/\n\d\d:00 UTC: 3 delivered, \d+ failed deliveries, 0 failed fetches$/);
      await page.locator('tr[data-queue="alpha"] td.activity').screenshot({ path: path.join(ARTIFACTS, "status-page-chart.png") });

      // It refreshes itself: the browser loads it again without being asked.
      const generated = await page.locator("footer").innerText();
      await page.waitForEvent("load", { timeout: 30_000 });
      expect(await page.locator("footer").innerText()).not.toBe(generated);
      expect(dialogs).toEqual([]);
      expect(consoleErrors).toEqual([]);
    } finally {
      await context?.close();
      await rm(profile, { recursive: true, force: true });
    }
  });

  it("never shows or logs a secret", async () => {
    const secrets = [token, ...Object.values(QUEUES).map((q) => q.password), "not-the-password", ...bed.identity.secretsIssued];
    const seen = [...bodies, ...logLines].join("\n");
    for (const secret of secrets) expect(seen.includes(secret), `${secret.slice(0, 6)}…`).toBe(false);
  });

  it("stops listening when the daemon stops", async () => {
    await daemon.stop(5_000);
    await expect(fetch(`${base}/livez`)).rejects.toThrow();
  });
});
