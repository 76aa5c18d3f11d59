/**
 * mailfetchd's version, from its package.json: the nearest one above this file. That is two
 * levels up from dist/support/ (the package and the image), and three from
 * dist-tools/src/support/ (the daemon as compiled with the bench and the demo).
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export function packageVersion(): string {
  const start = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = start; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, "package.json");
    if (existsSync(file)) return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
  }
  throw new Error(`mailfetchd's package.json was not found above ${start}`);
}
