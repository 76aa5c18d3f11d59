/**
 * The reliability suite's figures: each test records rows here (test-artifacts/reliability/
 * <suite>.json, or <suite>-<source>.json for a suite run once per mail source); `npm run
 * reliability` renders them into RELIABILITY.md.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { MailSourceKind } from "../../tools/testbed/helpers/mail-source.js";

export const FIGURES_DIR = fileURLToPath(new URL("../../test-artifacts/reliability/", import.meta.url));

export function recordFigures(suite: string, rows: ReadonlyArray<Record<string, string | number | boolean>>, source?: MailSourceKind): void {
  mkdirSync(FIGURES_DIR, { recursive: true });
  const name = source ? `${suite}-${source}` : suite;
  writeFileSync(path.join(FIGURES_DIR, `${name}.json`), JSON.stringify({ suite, source, at: new Date().toISOString(), rows }, null, 2));
}
