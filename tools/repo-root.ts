/**
 * The checkout's root, found by walking up to the nearest package.json: the tools run both from
 * source (tools/, under vitest) and compiled (dist-tools/tools/, one level deeper), so a fixed
 * "../../" from import.meta.url would be right in only one of the two.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

function findRepoRoot(): string {
  const start = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, "package.json"))) return dir;
    if (dir === path.dirname(dir)) throw new Error(`no package.json above ${start}: run the tools from a mailfetchd checkout`);
  }
}

export const REPO_ROOT = findRepoRoot();
