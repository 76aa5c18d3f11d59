/**
 * Only what the daemon runs ships (issue 14): `npm run build` puts the daemon and nothing else
 * into dist/, and the npm package carries dist/ plus what an operator needs. The test bed (with
 * its fake identity issuer), the bench and the demo live in tools/ and build to dist-tools/.
 * Reads the real build: `npm run build` first (npm test does).
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DIST = path.join(ROOT, "dist");
const TOOL_NAMES = new Set(["testbed", "bench", "demo", "tools", "helpers"]);

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((name) => !name.endsWith(path.sep) && name.includes("."));
}

describe("what ships", () => {
  it("dist/ holds the daemon only: no test bed, bench or demo file, and every file is compiled from src/", () => {
    expect(existsSync(path.join(DIST, "cli.js")), "dist/cli.js is missing: run `npm run build` first").toBe(true);
    const files = filesUnder(DIST);
    expect(files.filter((file) => file.split(path.sep).some((part) => TOOL_NAMES.has(part)))).toEqual([]);
    const notFromSrc = files.filter((file) => !existsSync(path.join(ROOT, "src", file.replace(/\.js(\.map)?$/, ".ts"))));
    expect(notFromSrc).toEqual([]);
  });

  it("no compiled module imports anything outside dist/", () => {
    const outside: string[] = [];
    for (const file of filesUnder(DIST).filter((name) => name.endsWith(".js"))) {
      const text = readFileSync(path.join(DIST, file), "utf8");
      for (const [, specifier] of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
        const target = path.resolve(DIST, path.dirname(file), specifier!);
        if (!target.startsWith(DIST + path.sep) || !existsSync(target)) outside.push(`${file} -> ${specifier}`);
      }
    }
    expect(outside).toEqual([]);
  });

  it("the npm package carries dist/, config/, systemd/, deploy/ (alert rules, dashboard) and the README, nothing of tools/", () => {
    const [pack] = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: ROOT, encoding: "utf8" })) as [
      { files: { path: string }[] },
    ];
    const paths = pack.files.map((file) => file.path);
    const roots = new Set(paths.map((file) => (file.includes("/") ? `${file.split("/")[0]}/` : file)));
    expect([...roots].sort()).toEqual(["README.md", "config/", "deploy/", "dist/", "package.json", "systemd/"]);
    expect(paths).toContain("dist/cli.js");
    expect(paths).toContain("deploy/prometheus/alerts.yaml");
    expect(paths.filter((file) => file.split("/").some((part) => TOOL_NAMES.has(part)))).toEqual([]);
  });
});
