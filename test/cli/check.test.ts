/**
 * `mailfetchd check` as a process against the test bed: every link of the chain passes on a
 * good setup, and each broken link (produced on demand by the stand-in or Dovecot) fails on
 * its own line with the fix, the links after it are skipped, and the exit status is 1.
 */
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { runCli, type CommandResult } from "../../tools/testbed/helpers/tokens-cli.js";

const ALPHA = { name: "alpha", address: "alpha@example.test", password: "alpha-Pa55word!" };

let bed: TestBed;
let configFile: string;
const outputs: CommandResult[] = [];

beforeAll(async () => {
  bed = await startTestBed();
  bed.identity.addUser({ username: ALPHA.address, password: ALPHA.password });
  const handlers = [{ type: "directory", path: path.join(bed.dir, "out") }];
  configFile = bed.writeDaemonConfig({
    stateDir: path.join(bed.dir, "state"),
    queues: [
      { ...ALPHA, handlers },
      { name: "unsigned", address: "unsigned@example.test", handlers },
      { name: "nofolder", address: ALPHA.address, password: ALPHA.password, folder: "Archive/2019", handlers },
    ],
  });
});

afterAll(async () => {
  await bed?.close();
});

async function check(queue: string, file = configFile): Promise<CommandResult & { lines: string[] }> {
  const result = await runCli(["check", "--config", file, "--queue", queue]);
  outputs.push(result);
  return { ...result, lines: result.stdout.trimEnd().split("\n") };
}

function lineOf(lines: string[], step: string): string {
  const found = lines.find((line) => line.includes(`] ${step}`));
  if (!found) throw new Error(`no line for '${step}' in:\n${lines.join("\n")}`);
  return found;
}

describe("mailfetchd check", () => {
  it("passes every step of a good setup, one line each, and exits 0", async () => {
    const { code, lines, stderr } = await check(ALPHA.name);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(lines.map((line) => line.replace(/:.*$/, ""))).toEqual([
      "PASS  config valid",
      "PASS  token cache key readable",
      "PASS  [alpha] identity endpoint reachable",
      "PASS  [alpha] tenant found",
      "PASS  [alpha] app registration found",
      "PASS  [alpha] public client flows enabled",
      "PASS  [alpha] admin consent granted",
      "PASS  [alpha] sign-in works",
      "PASS  [alpha] token audience is Exchange",
      "PASS  [alpha] IMAP login works",
      "PASS  [alpha] folder exists",
    ]);
    expect(lineOf(lines, "sign-in works")).toContain(`password sign-in as ${ALPHA.address}`);
    // The stand-in's tokens are opaque, as Microsoft's may be: judged by the granted scopes.
    expect(lineOf(lines, "token audience is Exchange")).toContain("opaque");
    expect(lineOf(lines, "token audience is Exchange")).toContain("https://outlook.office.com/IMAP.AccessAsUser.All");
  });

  it("uses (and refreshes) the stored sign-in on the next run", async () => {
    const since = bed.identity.tokenRequests.length;
    const { code, lines } = await check(ALPHA.name);
    expect(code).toBe(0);
    expect(lineOf(lines, "sign-in works")).toContain(`stored sign-in of ${ALPHA.address}, refreshed`);
    expect(bed.identity.tokenRequests.slice(since).map((r) => r.grantType)).toEqual(["refresh_token"]);
  });

  it.each([
    { aadsts: 700016, step: "app registration found", fix: /section 2\.2 step 7/, passedBefore: [] as string[] },
    { aadsts: 7000218, step: "public client flows enabled", fix: /section 2\.2 step 9/, passedBefore: ["app registration found"] },
    { aadsts: 65001, step: "admin consent granted", fix: /section 2\.2 step 10\.5/, passedBefore: ["app registration found", "public client flows enabled"] },
  ])("AADSTS$aadsts fails '$step' with the fix and skips the rest; exit 1", async ({ aadsts, step, fix, passedBefore }) => {
    bed.identity.failNext(aadsts);
    const { code, lines } = await check(ALPHA.name);
    expect(code).toBe(1);
    const failed = lineOf(lines, step);
    expect(failed).toMatch(new RegExp(`^FAIL  \\[alpha\\] ${step}: Queue alpha: .*\\(AADSTS${aadsts}\\)\\. Fix: `));
    expect(failed).toMatch(fix);
    for (const earlier of passedBefore) expect(lineOf(lines, earlier)).toMatch(/^PASS/);
    for (const later of ["sign-in works", "IMAP login works", "folder exists"])
      expect(lineOf(lines, later)).toMatch(/^SKIP .*not checked: an earlier step failed/);
  });

  it("a queue that was never signed in fails at the sign-in, naming `mailfetchd login`", async () => {
    const { code, lines } = await check("unsigned");
    expect(code).toBe(1);
    expect(lineOf(lines, "sign-in works")).toMatch(/^FAIL .*Fix: Run `mailfetchd login unsigned`/);
    expect(lineOf(lines, "admin consent granted")).toMatch(/^SKIP .*not determined/);
  });

  it("a folder that does not exist fails the last step", async () => {
    const { code, lines } = await check("nofolder");
    expect(code).toBe(1);
    expect(lineOf(lines, "IMAP login works")).toMatch(/^PASS/);
    expect(lineOf(lines, "folder exists")).toMatch(/^FAIL .*the folder 'Archive\/2019' does not exist.* Fix: Correct the queue's `folder`/);
  });

  it("the IMAP server unable to check tokens fails the IMAP login as temporary", async () => {
    bed.identity.setIntrospectionDown(true);
    try {
      const { code, lines } = await check(ALPHA.name);
      expect(code).toBe(1);
      expect(lineOf(lines, "token audience is Exchange")).toMatch(/^PASS/);
      expect(lineOf(lines, "IMAP login works")).toMatch(/^FAIL .*could not check the token right now.*Fix: /);
    } finally {
      bed.identity.setIntrospectionDown(false);
    }
  });

  it("an identity endpoint that drops every connection fails the first step", async () => {
    bed.identity.setDown(true);
    try {
      const { code, lines } = await check(ALPHA.name);
      expect(code).toBe(1);
      expect(lineOf(lines, "identity endpoint reachable")).toMatch(/^FAIL .*unavailable.*Fix: .*identity\.caFile/);
      expect(lineOf(lines, "tenant found")).toMatch(/^SKIP/);
    } finally {
      bed.identity.setDown(false);
    }
  });

  it("a tenant that does not exist fails 'tenant found', naming admin guide step 8", async () => {
    const config = parse(readFileSync(configFile, "utf8")) as { identity: Record<string, string> };
    const otherTenant = "0badbad0-0000-4000-8000-000000000000";
    config.identity.tenantId = otherTenant;
    config.identity.authority = `${bed.identity.origin}/${otherTenant}`;
    const file = path.join(bed.dir, "wrong-tenant.yaml");
    writeFileSync(file, stringify(config), { mode: 0o600 });

    const { code, lines } = await check(ALPHA.name, file);
    expect(code).toBe(1);
    expect(lineOf(lines, "identity endpoint reachable")).toMatch(/^PASS/);
    expect(lineOf(lines, "tenant found")).toMatch(/^FAIL .*AADSTS90002.*Fix: .*section 2\.2 step 8/);
  });

  it("an invalid config fails the first line and exits 1", async () => {
    const file = path.join(bed.dir, "broken.yaml");
    writeFileSync(file, "state: {}\nqueues: []\n");
    const result = await runCli(["check", "--config", file]);
    outputs.push(result);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^FAIL  config valid: .*the config is not valid/);
  });

  it("reports a password or key file readable by others with the exact chmod, and exits 1", async () => {
    const config = parse(readFileSync(configFile, "utf8")) as { state: { keyFile: string }; queues: Array<{ signIn?: { passwordFile: string } }> };
    const passwordFile = config.queues[0]!.signIn!.passwordFile;
    chmodSync(passwordFile, 0o666);
    try {
      const { code, lines } = await check(ALPHA.name);
      expect(code).toBe(1);
      expect(lines[0]).toMatch(/^FAIL  config valid: /);
      expect(lines[0]).toContain(`queues[0].signIn.passwordFile: ${passwordFile} is readable by group and others (mode 0666)`);
      expect(lines[0]).toContain(`chmod 600 ${passwordFile}`);
    } finally {
      chmodSync(passwordFile, 0o600);
    }
    chmodSync(config.state.keyFile, 0o644);
    try {
      const { code, lines } = await check(ALPHA.name);
      expect(code).toBe(1);
      expect(lines[1]).toMatch(/^FAIL  token cache key readable: The key file .* \(mode 0644\)/);
      expect(lines[1]).toContain(`chmod 600 ${config.state.keyFile}`);
    } finally {
      chmodSync(config.state.keyFile, 0o600);
    }
  });

  it("never prints a token, password or device code", () => {
    const printed = outputs.map((r) => r.stdout + r.stderr).join("\n");
    const secrets = bed.identity.secretsIssued;
    expect(secrets.length).toBeGreaterThan(5);
    expect(secrets.filter((secret) => printed.includes(secret)).map((s) => s.slice(0, 6))).toEqual([]);
  });
});
