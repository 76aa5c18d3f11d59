/**
 * The first end-to-end slice, on real components: the daemon as its own process, a real
 * Dovecot speaking XOAUTH2 over TLS, the identity stand-in over HTTPS, real SQLite files and
 * the directory handler writing to disk. Access tokens live 2 seconds, so the daemon refreshes
 * many times; it is stopped with SIGTERM half-way and started again.
 */
import { createHash } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { listFiles, scanForSecrets } from "../../tools/testbed/helpers/secret-scan.js";
import { deliveredIds } from "../../tools/testbed/helpers/directory-output.js";

const QUEUES = [
  { name: "alpha", address: "alpha@example.test", password: "alpha-Pa55word!" },
  { name: "beta", address: "beta@example.test", password: "beta-Pa55word!" },
];
const PER_QUEUE = 50;

let bed: TestBed;
let configFile: string;
let outDir: string;
let stateDir: string;

beforeAll(async () => {
  bed = await startTestBed();
  bed.identity.setAccessTokenLifetime(2);
  for (const q of QUEUES) bed.identity.addUser({ username: q.address, password: q.password });
  outDir = path.join(bed.dir, "out");
  stateDir = path.join(bed.dir, "state");
  configFile = bed.writeDaemonConfig({
    stateDir,
    logLevel: "debug",
    http: { listen: "127.0.0.1:0" }, // any free port: parallel test files never collide
    poll: "1s",
    queues: QUEUES.map((q) => ({ name: q.name, address: q.address, password: q.password, handlers: [{ type: "directory", path: outDir }] })),
  });
});

afterAll(async () => {
  await bed?.close();
});

const delivered = (queue: string) => deliveredIds(outDir, queue);

describe("mailfetchd end to end", () => {
  it("signs in, fetches over XOAUTH2, parses and delivers every message exactly once across a restart", async () => {
    const messages = Object.fromEntries(QUEUES.map((q) => [q.name, sampleMessages(PER_QUEUE, { seed: q.name, to: q.address })]));
    const inject = async (from: number, to: number) => {
      for (const q of QUEUES) for (const m of messages[q.name]!.slice(from, to)) await bed.dovecot.deliver(q.address, m.raw);
    };

    // Some mail waits before the first start; more arrives while it runs.
    await inject(0, 15);
    const first = new DaemonProcess(configFile);
    first.start();
    await first.waitFor("the first 15 per queue", () => QUEUES.every((q) => delivered(q.name).length >= 15));
    await inject(15, 30);
    await first.waitFor("30 per queue", () => QUEUES.every((q) => delivered(q.name).length >= 30));
    // Let the 2-second tokens expire a few times over.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(await first.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(first.lines.some((l) => l.msg === "mailfetchd stopped")).toBe(true);

    // Mail that arrives while it is down, then a restart.
    await inject(30, 40);
    const passwordGrantsBeforeRestart = bed.identity.tokenRequests.filter((r) => r.grantType === "password").length;
    const second = new DaemonProcess(configFile);
    second.start();
    await inject(40, PER_QUEUE);
    await second.waitFor("all 50 per queue", () => QUEUES.every((q) => delivered(q.name).length >= PER_QUEUE));
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // a few more polls: nothing new may appear
    // What operators see over HTTP, kept for the secret scan below.
    const listening = second.lines.find((l) => l.msg === "HTTP surface listening")!;
    const httpPort = Number(String(listening.listen).split(":").pop());
    const surfaces: string[] = [];
    for (const route of ["/", "/status.json", "/metrics", "/readyz"]) {
      const response = await fetch(`http://127.0.0.1:${httpPort}${route}`);
      expect(response.status, route).toBe(200);
      surfaces.push(await response.text());
    }
    writeFileSync(path.join(bed.dir, "http-surfaces.txt"), surfaces.join("\n"));
    expect(surfaces[2]).toMatch(/mailfetchd_\w+\{[^}]*queue="alpha"/);
    expect(await second.stop("SIGTERM")).toEqual({ code: 0, signal: null });

    // Tokens: one password sign-in per queue in all, none after the restart, many refreshes.
    const grants = bed.identity.tokenRequests;
    expect(passwordGrantsBeforeRestart).toBe(QUEUES.length);
    expect(grants.filter((r) => r.grantType === "password").length).toBe(QUEUES.length);
    expect(grants.filter((r) => r.grantType === "refresh_token").length).toBeGreaterThanOrEqual(4);

    // Every message exactly once, with the right fields.
    const deliveredLines = [...first.lines, ...second.lines].filter((l) => l.msg === "delivered");
    for (const q of QUEUES) {
      const ids = delivered(q.name);
      expect(ids.length).toBe(PER_QUEUE);
      const perId = new Map<string, number>();
      for (const line of deliveredLines.filter((l) => l.queue === q.name)) perId.set(line.messageId!, (perId.get(line.messageId!) ?? 0) + 1);
      expect([...perId.values()].every((n) => n === 1)).toBe(true);
      expect(perId.size).toBe(PER_QUEUE);

      const expected = new Map(messages[q.name]!.map((m) => [m.messageId, m]));
      const seen = new Set<string>();
      for (const id of ids) {
        const dir = path.join(outDir, q.name, id);
        const doc = JSON.parse(readFileSync(path.join(dir, "message.json"), "utf8"));
        const original = expected.get(doc.messageId);
        expect(original, `message ${doc.messageId} was not sent`).toBeDefined();
        seen.add(doc.messageId);
        expect(doc.id).toBe(id);
        expect(doc.queue).toEqual({ name: q.name, address: q.address });
        expect(doc.subject).toBe(original!.subject);
        expect(doc.from.length).toBe(1);
        expect(doc.to.map((a: { address: string }) => a.address)).toContain(q.address);
        expect(doc.source.folder).toBe("INBOX");
        expect(typeof doc.source.uid).toBe("number");
        expect(readFileSync(path.join(dir, "message.eml"))).toEqual(original!.raw);
        expect(doc.text ?? doc.html).toBeTruthy();
        for (const attachment of doc.attachments) {
          const file = path.resolve(dir, attachment.path);
          expect(file.startsWith(path.join(dir, "attachments") + path.sep)).toBe(true);
          const content = readFileSync(file);
          expect(content.length).toBe(attachment.size);
          expect(createHash("sha256").update(content).digest("hex")).toBe(attachment.sha256);
        }
      }
      expect(seen.size).toBe(PER_QUEUE);
    }

    // Threading and attachments reached the JSON for the shapes that carry them.
    const all = QUEUES.flatMap((q) => delivered(q.name).map((id) => JSON.parse(readFileSync(path.join(outDir, q.name, id, "message.json"), "utf8"))));
    expect(all.some((d) => d.inReplyTo && d.references.length > 0)).toBe(true);
    expect(all.some((d) => d.attachments.length > 0)).toBe(true);
    expect(all.some((d) => d.html && d.attachments.some((a: { inline: boolean }) => a.inline))).toBe(true);

    // Nothing on the server changed: this slice only reads.
    for (const q of QUEUES) expect(await bed.dovecot.countMessages(q.address)).toBe(PER_QUEUE);

    // No secret anywhere: logs (at debug), the status page and /metrics, the state database, the spool.
    const secrets = [...bed.identity.secretsIssued, ...QUEUES.map((q) => q.password)];
    expect(secrets.length).toBeGreaterThan(10);
    const logs = [...first.rawOutput, ...second.rawOutput].join("");
    writeFileSync(path.join(bed.dir, "daemon.log"), logs);
    expect(scanForSecrets([path.join(bed.dir, "daemon.log"), path.join(bed.dir, "http-surfaces.txt"), ...listFiles(stateDir)], secrets)).toEqual([]);
    expect(statSync(stateDir).mode & 0o777).toBe(0o700);
  });
});
