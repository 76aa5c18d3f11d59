/**
 * `mailfetchd check` and the two mail sources: it reads which permissions the app registration
 * has consent for (`scp` of the `.default` token per resource) and says which sources they allow
 * and what to add for the other. As a process against the test bed, with the consent the admin
 * guide gives (Microsoft Graph User.Read, User.ReadBasic.All, Mail.ReadWrite; nothing for
 * Exchange); plus the judgement itself as pure logic.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { judgeSources } from "../../src/check/source-permissions.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { runCli } from "../../tools/testbed/helpers/tokens-cli.js";

const USER = { address: "agent@example.test", password: "agent-Pa55word!" };
const ADMIN_GUIDE_CONSENT = [
  "https://graph.microsoft.com/User.Read",
  "https://graph.microsoft.com/User.ReadBasic.All",
  "https://graph.microsoft.com/Mail.ReadWrite",
];

let bed: TestBed;
let configFile: string;

beforeAll(async () => {
  bed = await startTestBed();
  bed.identity.addUser({ username: USER.address, password: USER.password });
  bed.graph.addMailbox(USER.address);
  const handlers = [{ type: "directory", path: path.join(bed.dir, "out") }];
  configFile = bed.writeDaemonConfig({
    stateDir: path.join(bed.dir, "state"),
    queues: [
      { name: "overimap", ...USER, handlers },
      { name: "overgraph", ...USER, options: { source: "graph" }, handlers },
    ],
  });
});

afterAll(async () => {
  await bed?.close();
});

async function check(queue: string): Promise<{ code: number | null; lines: string[] }> {
  const result = await runCli(["check", "--config", configFile, "--queue", queue]);
  return { code: result.code, lines: result.stdout.trimEnd().split("\n") };
}

describe("check with the admin guide's consent (Graph only)", () => {
  it("an IMAP queue fails at consent with 'use source: graph or add IMAP.AccessAsUser.All' and the guide's step", async () => {
    bed.identity.setConsentedPermissions(ADMIN_GUIDE_CONSENT);
    const { code, lines } = await check("overimap");
    expect(code).toBe(1);
    const consent = lines.find((l) => l.includes("] admin consent granted"))!;
    expect(consent).toMatch(/^FAIL/);
    expect(consent).toContain("source: imap no, source: graph yes");
    expect(consent).toContain("Use source: graph or add the delegated permission IMAP.AccessAsUser.All");
    expect(consent).toContain("step 10");
  });

  it("a Graph queue passes every step, its token judged for Graph and its folder looked up over Graph", async () => {
    bed.identity.setConsentedPermissions(ADMIN_GUIDE_CONSENT);
    const { code, lines } = await check("overgraph");
    expect(lines.map((line) => line.replace(/:.*$/, ""))).toEqual([
      "PASS  config valid",
      "PASS  token cache key readable",
      "PASS  [overgraph] identity endpoint reachable",
      "PASS  [overgraph] tenant found",
      "PASS  [overgraph] app registration found",
      "PASS  [overgraph] public client flows enabled",
      "PASS  [overgraph] admin consent granted",
      "PASS  [overgraph] sign-in works",
      "PASS  [overgraph] token audience is Graph",
      "PASS  [overgraph] Graph mailbox and folder reachable",
    ]);
    expect(code).toBe(0);
    expect(lines.find((l) => l.includes("token audience is Graph"))).toContain("scp Mail.ReadWrite");
  });

  it("a Graph queue on an app with only IMAP consented is told to use source: imap or add Mail.ReadWrite", async () => {
    bed.identity.setConsentedPermissions(["https://outlook.office.com/IMAP.AccessAsUser.All"]);
    try {
      const { code, lines } = await check("overgraph");
      expect(code).toBe(1);
      const consent = lines.find((l) => l.includes("] admin consent granted"))!;
      expect(consent).toContain("source: imap yes, source: graph no");
      expect(consent).toContain("Use source: imap or add the delegated Microsoft Graph permission Mail.ReadWrite");
    } finally {
      bed.identity.setConsentedPermissions(undefined);
    }
  });
});

describe("judgeSources", () => {
  const own = { address: "q@example.test", signIn: { user: "q@example.test" } };
  const shared = { address: "q@example.test", signIn: { user: "agent@example.test" } };

  it("passes a queue whose source is allowed, saying what the other source would need", () => {
    const judged = judgeSources({ ...own, source: "imap" }, { exchange: ["IMAP.AccessAsUser.All"], graph: ["User.Read"] });
    expect(judged).toMatchObject({
      ok: true,
      fix: expect.stringContaining("To use source: graph instead, add the delegated Microsoft Graph permission Mail.ReadWrite"),
    });
    expect(judgeSources({ ...own, source: "graph" }, { exchange: [], graph: ["Mail.ReadWrite"] })).toMatchObject({
      ok: true,
      fix: expect.stringContaining("IMAP.AccessAsUser.All"),
    });
  });

  it("needs Mail.ReadWrite.Shared for another user's mailbox", () => {
    expect(judgeSources({ ...shared, source: "graph" }, { exchange: [], graph: ["Mail.ReadWrite"] })).toMatchObject({
      ok: false,
      fix: expect.stringContaining("Mail.ReadWrite.Shared"),
    });
    expect(judgeSources({ ...shared, source: "graph" }, { exchange: [], graph: ["Mail.ReadWrite", "Mail.ReadWrite.Shared"] }).ok).toBe(true);
  });

  it("names the permission to add when neither source is allowed", () => {
    expect(judgeSources({ ...own, source: "imap" }, {})).toMatchObject({
      ok: false,
      fix: expect.stringMatching(/^Add the delegated permission IMAP\.AccessAsUser\.All/),
    });
  });
});
