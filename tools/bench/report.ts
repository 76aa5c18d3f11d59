/**
 * The report: every scenario's table, under a header saying when, on what and at which commit
 * it was measured. Written into BENCHMARKS.md between two markers, so the hand-written parts
 * (profiling notes, before/after figures) survive a new run.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import type { BenchOptions, ScenarioReport } from "./context.js";

const BEGIN = "<!-- bench:begin (written by npm run bench; edit outside these markers) -->";
const END = "<!-- bench:end -->";

export function renderReport(reports: readonly ScenarioReport[], options: BenchOptions, startedAt: Date, elapsedMs: number): string {
  const cpu = os.cpus();
  const header = [
    `Measured ${startedAt.toISOString().replace("T", " ").slice(0, 16)} UTC in ${Math.round(elapsedMs / 60_000)} min; ` +
      `${cpu.length} x ${cpu[0]?.model ?? "CPU"}, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GB RAM, Linux ${os.release()}; ` +
      `Node ${process.version}; commit ${commit()}; scale ${options.scale}, ${options.repetitions} repetition(s)` +
      (options.quick ? " (--quick smoke run)" : "") +
      ".",
  ];
  return [header.join("\n"), ...reports.map((r) => `### ${r.title}\n\n${r.markdown}`)].join("\n\n");
}

export function writeReport(file: string, body: string): void {
  const block = `${BEGIN}\n${body}\n${END}`;
  const previous = existsSync(file) ? readFileSync(file, "utf8") : "";
  const start = previous.indexOf(BEGIN);
  const end = previous.indexOf(END);
  const next =
    start >= 0 && end > start
      ? `${previous.slice(0, start)}${block}${previous.slice(end + END.length)}`
      : `${previous || "# Benchmarks\n\n`npm run bench` (see tools/bench/run.ts).\n"}\n## Latest run\n\n${block}\n`;
  writeFileSync(file, next);
}

function commit(): string {
  try {
    const hash = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain"], { encoding: "utf8" }).trim() !== "";
    return dirty ? `${hash} + uncommitted changes` : hash;
  } catch {
    return "unknown";
  }
}
