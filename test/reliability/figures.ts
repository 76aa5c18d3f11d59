/**
 * The reliability suite's figures: each test records rows here (test-artifacts/reliability/
 * <suite>.json); `npm run reliability` renders them into RELIABILITY.md.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const FIGURES_DIR = fileURLToPath(new URL("../../test-artifacts/reliability/", import.meta.url));

export function recordFigures(suite: string, rows: ReadonlyArray<Record<string, string | number | boolean>>): void {
  mkdirSync(FIGURES_DIR, { recursive: true });
  writeFileSync(path.join(FIGURES_DIR, `${suite}.json`), JSON.stringify({ suite, at: new Date().toISOString(), rows }, null, 2));
}
