/** Reads what the directory handler wrote: one folder per delivered message id. */
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";

/** The ids delivered to `outDir` for a queue (temp folders of deliveries in flight left out). */
export function deliveredIds(outDir: string, queue: string): string[] {
  const dir = path.join(outDir, queue);
  return existsSync(dir) ? readdirSync(dir).filter((name) => !name.startsWith(".")) : [];
}
