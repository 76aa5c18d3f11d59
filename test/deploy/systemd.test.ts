/**
 * systemd/mailfetchd.service as systemd itself reads it: `systemd-analyze verify` (syntax,
 * values, that ExecStart's binary exists) and `systemd-analyze security` (the exposure the
 * operator guide records). What this does not exercise: systemd starting the service (no
 * systemd runs as PID 1 on CI machines), so credentials and the sandbox are not tried live.
 */
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";

const UNIT = path.resolve("systemd/mailfetchd.service");
const GUIDE = path.resolve("docs/operator-guide.md");

function systemdAnalyze(...args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    execFile("systemd-analyze", args, { timeout: 60_000 }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === "ENOENT") {
        reject(new Error("systemd-analyze is missing: apt-get install -y systemd (.ci/run installs it)"));
        return;
      }
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

/** Problems systemd reports for a unit file: errors fail the command, ignored settings only print. */
async function verify(unit: string): Promise<string[]> {
  const { code, output } = await systemdAnalyze("verify", unit);
  const lines = output.split("\n").filter((line) => line.includes(path.basename(unit)));
  return code === 0 ? lines : [`exit ${code}`, ...lines];
}

describe("systemd unit", () => {
  it("passes systemd-analyze verify without a single warning", async () => {
    expect(await verify(UNIT)).toEqual([]);
  });

  it("is checked for real: a broken copy is refused", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-unit-"));
    const broken = path.join(dir, "mailfetchd.service");
    copyFileSync(UNIT, broken);
    writeFileSync(
      broken,
      readFileSync(broken, "utf8")
        .replace("ProtectSystem=strict", "ProtectSystem=strictly")
        .replace("ExecStart=/usr/bin/node", "ExecStart=/usr/bin/no-such-node"),
    );
    const problems = (await verify(broken)).join("\n");
    expect(problems).toContain("exit 1");
    expect(problems).toContain("strictly");
    expect(problems).toContain("/usr/bin/no-such-node");
  });

  it("has the exposure the operator guide records, with only the deliberate gaps", async () => {
    const { code, output } = await systemdAnalyze("security", "--offline=true", "--no-pager", UNIT);
    expect(code, output).toBe(0);
    const exposure = /Overall exposure level for mailfetchd\.service: (\d+\.\d+) (\S+)/.exec(output);
    expect(exposure, output).not.toBeNull();
    const recorded = /Overall exposure level for mailfetchd\.service: (\d+\.\d+) (\S+)/.exec(readFileSync(GUIDE, "utf8"));
    expect(recorded?.[1], "docs/operator-guide.md must record the current exposure").toBe(exposure![1]);
    expect(Number(exposure![1])).toBeLessThanOrEqual(2);
    // What is not locked down, each for a reason given in the unit and the guide.
    const open = output
      .split("\n")
      .filter((line) => line.startsWith("✗"))
      .map((line) => line.split(/\s+/)[1]);
    expect(open).toEqual(expect.arrayContaining(["MemoryDenyWriteExecute=", "PrivateNetwork=", "RestrictAddressFamilies=~AF_(INET|INET6)"]));
    for (const hardened of ["NoNewPrivileges=", "PrivateDevices=", "PrivateTmp=", "ProtectHome=", "ProtectSystem=", "UMask=", "User=/DynamicUser="]) {
      expect(open, hardened).not.toContain(hardened);
    }
  });
});
