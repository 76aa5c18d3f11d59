/**
 * The shipped Prometheus alert rules (deploy/prometheus/alerts.yaml): valid for Prometheus
 * (`promtool check rules`), behaving as their unit tests on synthetic series say (`promtool
 * test rules deploy/prometheus/alerts.test.yaml`), each with a summary and a description
 * that names a section an operator can open. promtool comes from Debian's prometheus package
 * (scripts/ensure-test-bed.sh --suite installs it). That every metric they read is exported
 * by a running daemon is checked in test/e2e/monitoring.e2e.test.ts.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const run = promisify(execFile);
const RULES = "deploy/prometheus/alerts.yaml";
const RULE_TESTS = "deploy/prometheus/alerts.test.yaml";

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const rules = (parse(readFileSync(RULES, "utf8")) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);
const ruleTests = parse(readFileSync(RULE_TESTS, "utf8")) as {
  tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
};

/** The headings a description may name: README's and docs/troubleshooting.md's. */
function headings(file: string): Set<string> {
  return new Set([...readFileSync(file, "utf8").matchAll(/^#+ (.+)$/gm)].map((m) => m[1]!.replaceAll("`", "")));
}

describe("Prometheus alert rules", () => {
  it("pass promtool check rules", async () => {
    const { stdout } = await run("promtool", ["check", "rules", RULES]);
    expect(stdout).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  it("pass their unit tests on synthetic series (promtool test rules)", async () => {
    const result = await run("promtool", ["test", "rules", RULE_TESTS]).catch((error: { stdout: string; stderr: string }) => error);
    expect(`${result.stdout}${result.stderr}`).toContain("SUCCESS");
  });

  it("each fire in at least one unit test and stay quiet in another", () => {
    const cases = ruleTests.tests.flatMap((t) => t.alert_rule_test);
    for (const rule of rules) {
      const mine = cases.filter((c) => c.alertname === rule.alert);
      expect(
        mine.some((c) => c.exp_alerts.length > 0),
        `${rule.alert} fires in a test`,
      ).toBe(true);
      expect(
        mine.some((c) => c.exp_alerts.length === 0),
        `${rule.alert} stays quiet in a test`,
      ).toBe(true);
    }
  });

  it("each have a severity, a summary and a description naming a README or troubleshooting section", () => {
    const readme = headings("README.md");
    const troubleshooting = headings("docs/troubleshooting.md");
    expect(rules.length).toBeGreaterThanOrEqual(15);
    for (const rule of rules) {
      expect(["warning", "critical"], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toMatch(/\S/);
      const description = rule.annotations?.description ?? "";
      const sections = [...description.matchAll(/(README|docs\/troubleshooting\.md)[,:]? ((?:\\?"[^"\\]+\\?"(?: and )?)+)/g)];
      expect(sections.length, `${rule.alert} names a section`).toBeGreaterThan(0);
      for (const [, file, names] of sections) {
        for (const [, name] of names!.matchAll(/"([^"]+)"/g)) {
          expect(file === "README" ? readme : troubleshooting, `${rule.alert}: ${file} has "${name}"`).toContain(name);
        }
      }
    }
  });
});
