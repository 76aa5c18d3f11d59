/**
 * `npm run test:unit`: the fast tests, for the edit-test loop. No Dovecot, no daemon process,
 * no browser, no PostgreSQL, no build: every test file that reaches none of those, found by
 * following its relative imports, so a new test lands on the right side by itself.
 * `npm test` still runs everything (vitest.config.ts).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { defineConfig, mergeConfig } from "vitest/config";
import base from "./vitest.config.js";

/** Whole folders of process-level tests: end-to-end, reliability, deployment, bench, and the test bed's own tests. */
const SLOW_FOLDERS = ["test/e2e", "test/reliability", "test/deploy", "test/bench", "test/testbed"];

/** Modules that start a real server or process: Dovecot (through the test bed), the daemon, the probe child. */
const SLOW_MODULES = new Set(
  ["tools/testbed/test-bed.ts", "tools/testbed/dovecot.ts", "tools/testbed/probe-process.ts", "tools/testbed/helpers/daemon-process.ts"].map((file) =>
    path.resolve(file),
  ),
);

/** Text that means a build output (dist/, dist-tools/), a browser or PostgreSQL. */
const SLOW_TEXT = [/["'/]dist(-tools)?\//, /playwright/, /from "(pg|[^"]*postgres[^"]*)"/];

const IMPORT = /(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g;

function reachesSlow(file: string, seen: Set<string>): boolean {
  if (seen.has(file)) return false;
  seen.add(file);
  if (SLOW_MODULES.has(file)) return true;
  const text = readFileSync(file, "utf8");
  if (SLOW_TEXT.some((pattern) => pattern.test(text))) return true;
  for (const [, specifier] of text.matchAll(IMPORT)) {
    const target = path.resolve(path.dirname(file), specifier!).replace(/\.js$/, ".ts");
    if (target.endsWith(".ts") && existsSync(target) && reachesSlow(target, seen)) return true;
  }
  return false;
}

function slowTestFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((name) => name.endsWith(".test.ts"))
    .map((name) => path.join(dir, name))
    .filter((file) => !SLOW_FOLDERS.some((folder) => file.startsWith(folder + path.sep)))
    .filter((file) => reachesSlow(path.resolve(file), new Set()));
}

export default mergeConfig(
  base,
  defineConfig({
    test: {
      // In-process tests only, so worker threads will do: a quarter less CPU than forked
      // processes (measured: 42 s against 55 s of CPU for the 50 files).
      pool: "threads",
      exclude: ["node_modules/**", ...SLOW_FOLDERS.map((folder) => `${folder}/**`), ...slowTestFiles("test")],
    },
  }),
);
