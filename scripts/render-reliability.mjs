#!/usr/bin/env node
// Renders the reliability suite's figures (test-artifacts/reliability/*.json, written by the
// tests in test/reliability/) into the "Latest figures" part of RELIABILITY.md.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";

const dir = "test-artifacts/reliability";
const suites = existsSync(dir)
  ? readdirSync(dir)
      .filter((f) => f.endsWith(".json"))
      .map((f) => JSON.parse(readFileSync(`${dir}/${f}`, "utf8")))
  : [];
if (suites.length === 0) {
  console.error("no figures: run `npm run reliability` (or the tests in test/reliability/) first");
  process.exit(1);
}

const table = (rows) => {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return [
    `| ${columns.join(" | ")} |`,
    `|${columns.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${columns.map((c) => String(r[c] ?? "")).join(" | ")} |`),
  ].join("\n");
};
let commit = "unknown";
try {
  commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
} catch {}
const order = ["crash", "replicas", "faults", "identity", "storage", "bad-input", "hostile-network", "message-identity"];
// A suite run once per mail source comes twice, IMAP first.
const sources = [undefined, "imap", "graph"];
suites.sort((a, b) => order.indexOf(a.suite) - order.indexOf(b.suite) || sources.indexOf(a.source) - sources.indexOf(b.source));
const figures = [
  "<!-- figures:start -->",
  `Measured ${new Date().toISOString().slice(0, 10)} on ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, commit ${commit}${process.env.MAILFETCHD_SOAK ? ", soak mode" : ""}.`,
  "",
  ...suites.flatMap((s) => [`### ${s.suite}${s.source ? ` over ${s.source === "imap" ? "IMAP" : "Graph"}` : ""} (run ${s.at})`, "", table(s.rows), ""]),
  "<!-- figures:end -->",
].join("\n");

const file = "RELIABILITY.md";
const text = readFileSync(file, "utf8");
const updated = text.replace(/<!-- figures:start -->[\s\S]*<!-- figures:end -->/, figures);
writeFileSync(file, updated);
console.log(`wrote the figures of ${suites.length} suites into ${file}`);
