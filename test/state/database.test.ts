/**
 * The state database opened by several processes at once (the daemon starting while an
 * operator runs `mailfetchd login` or `status` on a new state directory): each migrates or
 * sees it migrated, none fails.
 */
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { MIGRATIONS } from "../../src/store/sqlite/migrations.js";
import { openStateDatabase } from "../../src/store/sqlite/database.js";

const DATABASE_MODULE = fileURLToPath(new URL("../../dist/store/sqlite/database.js", import.meta.url));

describe("state database", () => {
  it("migrates once when eight processes open a new state directory together", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-db-"));
    const script = `import(${JSON.stringify(DATABASE_MODULE)}).then((m) => { m.openStateDatabase(${JSON.stringify(dir)}).close(); })`;
    const results = await Promise.all(
      Array.from(
        { length: 8 },
        () =>
          new Promise<{ code: number | null; stderr: string }>((resolve) => {
            const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "ignore", "pipe"] });
            let stderr = "";
            child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
            child.on("exit", (code) => resolve({ code, stderr }));
          }),
      ),
    );
    expect(results.filter((r) => r.code !== 0).map((r) => r.stderr.split("\n").find((line) => /Error/.test(line)))).toEqual([]);
    const db = openStateDatabase(dir);
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    db.close();
  });
});
