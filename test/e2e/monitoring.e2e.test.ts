/**
 * The operator kit against a real daemon: the Grafana dashboard (deploy/grafana/mailfetchd.json)
 * is valid JSON for Grafana's import, and every metric name its queries, and the alert rules
 * (deploy/prometheus/alerts.yaml), read is exported by the daemon: built dist/cli.js as its own
 * process on the test bed, fetching and delivering, its /metrics scraped.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { exportedNames, metricNames } from "../../tools/testbed/helpers/promql-names.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { deliveredIds } from "../../tools/testbed/helpers/directory-output.js";

interface Target {
  expr: string;
  refId: string;
}
interface Panel {
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query?: string | { query: string } }> };
}

const QUEUE = { name: "support", address: "support@example.test", password: "support-Pa55word!" };

let bed: TestBed;
let daemon: DaemonProcess;
let metricsText: string;

beforeAll(async () => {
  bed = await startTestBed();
  bed.identity.addUser({ username: QUEUE.address, password: QUEUE.password });
  const outDir = path.join(bed.dir, "out");
  const configFile = bed.writeDaemonConfig({
    stateDir: path.join(bed.dir, "state"),
    http: { listen: "127.0.0.1:0" },
    poll: "1s",
    queues: [{ ...QUEUE, handlers: [{ type: "directory", path: outDir }] }],
  });
  for (const m of sampleMessages(2, { seed: "monitoring", to: QUEUE.address })) await bed.dovecot.deliver(QUEUE.address, m.raw);
  daemon = new DaemonProcess(configFile);
  daemon.start();
  await daemon.waitFor("2 messages delivered", () => deliveredIds(outDir, QUEUE.name).length === 2);
  const listening = daemon.lines.find((l) => l.msg === "HTTP surface listening")!;
  const response = await fetch(`http://127.0.0.1:${String(listening.listen).split(":").pop()}/metrics`);
  expect(response.status).toBe(200);
  metricsText = await response.text();
});

afterAll(async () => {
  await daemon?.stop();
  await bed?.close();
});

function panelsOf(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...panelsOf(p.panels ?? [])]);
}

describe("operator kit against a running daemon", () => {
  const dashboard = JSON.parse(readFileSync("deploy/grafana/mailfetchd.json", "utf8")) as Dashboard;
  const panels = panelsOf(dashboard.panels);
  const targets = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
  const variables = dashboard.templating.list.flatMap((v) => {
    const query = typeof v.query === "string" ? v.query : v.query?.query;
    return v.type === "query" && query ? [{ panel: `variable ${v.name}`, expr: /^label_values\((.*),\s*\w+\)$/.exec(query)![1]! }] : [];
  });

  it("has a dashboard Grafana can import: panels with queries on the chosen Prometheus", () => {
    expect(dashboard).toMatchObject({ title: "mailfetchd", uid: "mailfetchd" });
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(["datasource", "job", "instance", "queue"]);
    const charts = panels.filter((p) => p.type !== "row");
    expect(charts.length).toBeGreaterThanOrEqual(15);
    for (const panel of charts) {
      expect(panel.datasource?.uid, panel.title).toBe("${datasource}");
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
    }
    // What the issue asks to see: per-queue flow, latency, backlog, dead letters, token expiry, errors by code.
    const all = targets.map((t) => t.expr).join("\n");
    for (const metric of [
      "mailfetchd_messages_fetched_total",
      "mailfetchd_deliveries_total",
      "mailfetchd_delivery_delay_seconds_bucket",
      "mailfetchd_spool_backlog",
      "mailfetchd_dead_letters",
      "mailfetchd_token_expiry_timestamp_seconds",
      "mailfetchd_fetch_failures_total",
    ]) {
      expect(all).toContain(metric);
    }
    expect(all).toMatch(/sum by \(code\)/);
  });

  it("queries only metrics the daemon exports (dashboard panels and variables)", () => {
    const exported = exportedNames(metricsText);
    expect(exported.has("mailfetchd_spool_backlog")).toBe(true);
    for (const { panel, expr } of [...targets, ...variables]) {
      const names = metricNames(expr);
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const name of names) expect(exported.has(name), `${panel}: ${name} in ${expr}`).toBe(true);
    }
  });

  it("alerts on metrics the daemon exports (and `up`, which Prometheus adds)", () => {
    const exported = exportedNames(metricsText);
    const rules = (
      parse(readFileSync("deploy/prometheus/alerts.yaml", "utf8")) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
    ).groups.flatMap((g) => g.rules);
    for (const rule of rules) {
      const names = metricNames(rule.expr);
      expect(names.length, rule.alert).toBeGreaterThan(0);
      for (const name of names) expect(exported.has(name) || name === "up", `${rule.alert}: ${name}`).toBe(true);
    }
  });
});
