/**
 * Network, server and handler faults, each against the real daemon process, once per mail
 * source. Over IMAP (a real Dovecot): the IMAP server killed mid-fetch and mid-IDLE, the
 * connection cut mid-literal by a proxy, a slow server. Over Graph (the HTTPS stand-in): the
 * same outage, cut and slowness through the stand-in's switches (connections cut, `$value`
 * broken off half-way, every answer late), plus throttling (429 with Retry-After) and refusals
 * (401, 403). For both, a webhook receiver down for a whole drain. Every phase ends with every
 * message delivered (lost = 0) and counts repeats. Last, a secret scan: no token, password,
 * Graph link token or Graph response body in any log line, status output or file of the run.
 */
import { execFile, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startFaultProxy, type FaultProxy } from "../../tools/testbed/fault-proxy.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { CLI, DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { WebhookReceiver } from "../../tools/testbed/helpers/webhook-receiver.js";
import { recordFigures } from "./figures.js";
import { deliveredIds } from "../../tools/testbed/helpers/directory-output.js";
import {
  issuedSecrets,
  linkTokens,
  MAIL_SOURCES,
  prepareMailbox,
  putRawMessage,
  sourceOptions,
  type MailSourceKind,
} from "../../tools/testbed/helpers/mail-source.js";
import { listFiles, scanForSecrets } from "../../tools/testbed/helpers/secret-scan.js";

interface Phase {
  name: string;
  messages: Buffer[];
  options?: Record<string, unknown>;
  viaProxy?: boolean;
  handlers?: Array<Record<string, unknown>>;
}

const bigMessage = (n: number) =>
  Buffer.from(
    [
      `From: big${n}@example.net`,
      "To: q@example.test",
      `Subject: big ${n}`,
      `Message-ID: <big-${n}@faults.example>`,
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="b"',
      "",
      "--b",
      "Content-Type: text/plain",
      "",
      "see attached",
      "--b",
      'Content-Type: application/octet-stream; name="blob.bin"',
      "Content-Transfer-Encoding: base64",
      "",
      ...(Buffer.alloc(2 * 1024 * 1024, n)
        .toString("base64")
        .match(/.{1,76}/g) ?? []),
      "--b--",
      "",
    ].join("\r\n"),
  );

const runCli = promisify(execFile);

function repeatsIn(daemons: DaemonProcess[]): { delivered: number; distinct: number } {
  const ids = daemons
    .flatMap((d) => d.lines)
    .filter((l) => l.msg === "delivered")
    .map((l) => `${l.handler}:${l.messageId}`);
  return { delivered: ids.length, distinct: new Set(ids).size };
}

describe.each(MAIL_SOURCES)("faults over %s", (source: MailSourceKind) => {
  const imap = source === "imap";
  let bed: TestBed;
  let proxy: FaultProxy | undefined;
  const rows: Array<Record<string, string | number | boolean>> = [];
  /** Every daemon of this source's run, and every status output taken: the secret scan reads them. */
  const daemons: DaemonProcess[] = [];
  const statusOutputs: string[] = [];
  const passwords: string[] = [];

  beforeAll(async () => {
    bed = await startTestBed();
    if (imap) proxy = await startFaultProxy(bed.dovecot.port);
  });

  afterAll(async () => {
    recordFigures("faults", rows, source);
    await proxy?.close();
    await bed?.close();
  });

  /** The mail server's outage switch: Dovecot killed and restarted, or the stand-in cutting every connection. */
  const server = imap
    ? { down: () => bed.dovecot.stop(), up: () => bed.dovecot.start() }
    : { down: async () => bed.graph.setDown(true), up: async () => bed.graph.setDown(false) };

  /** Sets up one queue for a phase; returns its config and a count of its directory output. */
  async function phaseQueue(phase: Phase) {
    const address = `${phase.name}@example.test`;
    const password = `${phase.name}-password-1`;
    passwords.push(password);
    bed.identity.addUser({ username: address, password });
    await prepareMailbox(bed, source, address);
    const outDir = path.join(bed.dir, `out-${phase.name}`);
    const configFile = bed.writeDaemonConfig(
      {
        stateDir: path.join(bed.dir, `state-${phase.name}`),
        logLevel: "debug",
        poll: "1s",
        queues: [
          {
            name: phase.name,
            address,
            password,
            options: { ...sourceOptions(source), ...phase.options, ...(phase.viaProxy ? { imap: { port: proxy!.port } } : {}) },
            handlers: phase.handlers ?? [{ type: "directory", path: outDir }],
          },
        ],
      },
      path.join(bed.dir, `${phase.name}.yaml`),
    );
    const delivered = () => deliveredIds(outDir, phase.name).length;
    const put = async (raw: Buffer) => void (await putRawMessage(bed, source, address, raw));
    const daemon = () => {
      const d = new DaemonProcess(configFile);
      daemons.push(d);
      return d;
    };
    const status = (...args: string[]) => {
      const out = spawnSync(process.execPath, [CLI, "status", ...args, "--config", configFile], { encoding: "utf8" });
      statusOutputs.push(out.stdout, out.stderr);
      return out.stdout;
    };
    const statusInBackground = async (...args: string[]) => {
      const out = await runCli(process.execPath, [CLI, "status", ...args, "--config", configFile], { encoding: "utf8" }).catch(
        (error: { stdout: string; stderr: string }) => error,
      );
      statusOutputs.push(out.stdout, out.stderr);
    };
    return { address, configFile, delivered, put, daemon, status, statusInBackground };
  }

  it(imap ? "IMAP server killed and restarted mid-fetch" : "Graph down (every connection cut) mid-fetch, back after 2 s", { timeout: 300_000 }, async () => {
    const phase = {
      name: `killfetch-${source}`,
      messages: sampleMessages(300, { seed: "killfetch", to: `killfetch-${source}@example.test` }).map((m) => m.raw),
    };
    const q = await phaseQueue(phase);
    for (const m of phase.messages) await q.put(m);
    const daemon = q.daemon();
    daemon.start();
    await daemon.waitFor("the drain to start", () => q.delivered() >= 20);
    await server.down();
    const down = Date.now();
    // A status taken during the outage (the scan reads it), not lengthening the outage.
    await Promise.all([new Promise((resolve) => setTimeout(resolve, 2_000)), q.statusInBackground("--json")]);
    await server.up();
    const back = Date.now();
    await daemon.waitFor("all 300 after the restart", () => q.delivered() === 300, 120_000);
    const recovered = Date.now();
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    const r = repeatsIn([daemon]);
    expect(r.distinct).toBe(300);
    const fault = imap ? "IMAP server killed mid-fetch, back after 2 s" : "Graph down mid-fetch (connections cut), back after 2 s";
    rows.push({
      fault,
      runs: 1,
      messages: 300,
      lost: 0,
      duplicated: r.delivered - r.distinct,
      recovered: true,
      secondsToRecover: (recovered - back) / 1000,
      secondsDown: (back - down) / 1000,
    });
  });

  it(
    imap ? "connection cut mid-literal by a proxy, three times in a row" : "$value broken off half-way, three times in a row",
    { timeout: 300_000 },
    async () => {
      // IDLE off: only fetch sessions may take the planned cuts.
      const phase = { name: `midliteral-${source}`, messages: [1, 2, 3, 4].map(bigMessage), viaProxy: imap, options: imap ? { idle: false } : {} };
      const q = await phaseQueue(phase);
      for (const m of phase.messages) await q.put(m);
      const cutsBefore = proxy?.cuts ?? 0;
      if (imap)
        proxy!.cutAfterServerBytes(1_500_000, 3); // inside the first 2.8 MB literal
      else bed.graph.setValueBehaviour({ above: 1_000_000, fail: "broken", times: 3 }); // half of a 2.8 MB $value, then the connection is cut
      const valueRequests = () => bed.graph.requests.filter((r) => r.mailbox === q.address && r.path.endsWith("/$value")).length;
      const daemon = q.daemon();
      const started = Date.now();
      daemon.start();
      await daemon.waitFor("the big messages despite the cuts", () => q.delivered() === 4, 120_000);
      expect(await daemon.stop()).toEqual({ code: 0, signal: null });
      if (imap) expect(proxy!.cuts - cutsBefore).toBe(3);
      else expect(valueRequests(), "each broken $value asked again").toBeGreaterThanOrEqual(4 + 3);
      bed.graph.setValueBehaviour(undefined);
      const r = repeatsIn([daemon]);
      expect(r.distinct).toBe(4);
      const fault = imap ? "connection cut mid-literal (3 cuts, 2.8 MB messages)" : "$value cut half-way (3 cuts, 2.8 MB messages)";
      rows.push({
        fault,
        runs: 1,
        messages: 4,
        lost: 0,
        duplicated: r.delivered - r.distinct,
        recovered: true,
        secondsToRecover: (Date.now() - started) / 1000,
      });
    },
  );

  it(imap ? "a slow server (every chunk delayed 30 ms)" : "a slow Graph (every answer delayed 30 ms)", { timeout: 300_000 }, async () => {
    const phase = {
      name: `slow-${source}`,
      messages: sampleMessages(40, { seed: "slow", to: `slow-${source}@example.test` }).map((m) => m.raw),
      viaProxy: imap,
      options: imap ? { idle: false } : {},
    };
    const q = await phaseQueue(phase);
    for (const m of phase.messages) await q.put(m);
    const slow = (ms: number) => (imap ? proxy!.setDelay(ms) : bed.graph.setResponseDelay(ms));
    slow(30);
    const daemon = q.daemon();
    const started = Date.now();
    daemon.start();
    try {
      await daemon.waitFor("all 40 from the slow server", () => q.delivered() === 40, 180_000);
    } finally {
      slow(0);
    }
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    const r = repeatsIn([daemon]);
    expect(r.distinct).toBe(40);
    rows.push({
      fault: imap ? "slow server (30 ms per chunk)" : "slow Graph (30 ms per answer)",
      runs: 1,
      messages: 40,
      lost: 0,
      duplicated: r.delivered - r.distinct,
      recovered: true,
      secondsToRecover: (Date.now() - started) / 1000,
    });
  });

  it.runIf(imap)("IMAP server killed mid-IDLE", { timeout: 300_000 }, async () => {
    const mail = sampleMessages(6, { seed: "killidle", to: "killidle@example.test" }).map((m) => m.raw);
    const q = await phaseQueue({ name: "killidle", messages: mail, options: { idle: true, poll: "1h" } });
    const daemon = q.daemon();
    daemon.start();
    await daemon.waitFor("an IDLE session", () => daemon.lines.some((l) => l.msg === "IDLE session open"));
    for (const m of mail.slice(0, 3)) await q.put(m);
    await daemon.waitFor("the first three through IDLE", () => q.delivered() === 3);
    await bed.dovecot.stop();
    await bed.dovecot.start();
    const back = Date.now();
    for (const m of mail.slice(3)) await q.put(m);
    await daemon.waitFor("the rest through a new IDLE session", () => q.delivered() === 6, 60_000);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    const r = repeatsIn([daemon]);
    expect(r.distinct).toBe(6);
    rows.push({
      fault: "IMAP server killed mid-IDLE (poll 1 h: IDLE only)",
      runs: 1,
      messages: 6,
      lost: 0,
      duplicated: r.delivered - r.distinct,
      recovered: true,
      secondsToRecover: (Date.now() - back) / 1000,
    });
  });

  it.runIf(!imap)("Graph throttling the mailbox: 429 with Retry-After 1 s, 25 answers during a drain", { timeout: 300_000 }, async () => {
    const mail = sampleMessages(100, { seed: "throttled", to: "throttled-graph@example.test" }).map((m) => m.raw);
    const q = await phaseQueue({ name: "throttled-graph", messages: mail });
    for (const m of mail) await q.put(m);
    const daemon = q.daemon();
    daemon.start();
    await daemon.waitFor("the drain to start", () => q.delivered() >= 10);
    bed.graph.throttleNext(25, { retryAfterSeconds: 1, mailbox: q.address });
    const throttledAt = Date.now();
    await daemon.waitFor("the throttling to be noticed", () => daemon.lines.some((l) => l.msg === "Graph is throttling the mailbox; waiting"), 60_000);
    q.status("--json");
    await daemon.waitFor("all 100 despite the throttling", () => q.delivered() === 100, 180_000);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    const throttled = bed.graph.requests.filter((r) => r.mailbox === q.address && r.status === 429).length;
    expect(throttled).toBeGreaterThanOrEqual(25);
    const r = repeatsIn([daemon]);
    expect(r.distinct).toBe(100);
    rows.push({
      fault: `Graph throttling (${throttled} answers 429, Retry-After 1 s)`,
      runs: 1,
      messages: 100,
      lost: 0,
      duplicated: r.delivered - r.distinct,
      recovered: true,
      secondsToRecover: (Date.now() - throttledAt) / 1000,
    });
  });

  it.runIf(!imap)(
    "Graph refusing the token (401, also after a fresh one) and then a permission (403): the queue says so, and delivers all after a restart",
    { timeout: 300_000 },
    async () => {
      const mail = sampleMessages(20, { seed: "refused", to: "refused-graph@example.test" }).map((m) => m.raw);
      const q = await phaseQueue({ name: "refused-graph", messages: mail });
      for (const m of mail) await q.put(m);
      const started = Date.now();
      for (const [status, code] of [
        [401, "GRAPH_AUTH_REJECTED"],
        [403, "GRAPH_ACCESS_DENIED"],
      ] as const) {
        // 401 twice: the source retries once with a freshly refreshed token.
        bed.graph.refuseNext(status === 401 ? 2 : 1, status, { mailbox: q.address });
        const daemon = q.daemon();
        daemon.start();
        await daemon.waitFor(`the ${status} to stop the queue`, () => daemon.lines.some((l) => l.code === code), 60_000);
        const report = JSON.parse(q.status("--json")) as { queues: Array<Record<string, unknown>> };
        expect(JSON.stringify(report.queues[0]), "status names the failure").toContain(code);
        q.status(); // the human-readable form too, for the scan
        expect(await daemon.stop()).toEqual({ code: 0, signal: null });
        expect(q.delivered(), `nothing fetched past the ${status}`).toBe(0);
      }
      const restartedAt = Date.now();
      const daemon = q.daemon();
      daemon.start();
      await daemon.waitFor("all 20 once Graph accepts again", () => q.delivered() === 20, 60_000);
      expect(await daemon.stop()).toEqual({ code: 0, signal: null });
      rows.push({
        fault: "Graph answering 401 (twice) then 403: queue stopped with the error and fix, restarted",
        runs: 3,
        messages: 20,
        lost: 0,
        duplicated: 0,
        recovered: true,
        secondsToRecover: (Date.now() - restartedAt) / 1000,
        secondsInAll: (Date.now() - started) / 1000,
      });
    },
  );

  it("a webhook receiver down for the whole drain, then back", { timeout: 300_000 }, async () => {
    let down = true;
    const receiver = await WebhookReceiver.start(() => (down ? { status: 503 } : { status: 200 }));
    try {
      const name = imap ? "outage" : "outage-graph";
      const mail = sampleMessages(200, { seed: "outage", to: `${name}@example.test` }).map((m) => m.raw);
      const q = await phaseQueue({ name, messages: mail, handlers: [{ type: "webhook", url: receiver.url() }] });
      for (const m of mail) await q.put(m);
      const daemon = q.daemon();
      daemon.start();
      const accepted = () => new Set(receiver.requests.filter((r) => r.headers["x-test-accepted"] !== "no").map((r) => String(r.headers["webhook-id"])));
      await daemon.waitFor(
        "the whole drain to be spooled and tried",
        () => daemon.lines.filter((l) => l.msg === "delivery failed; will retry").length >= 200,
        120_000,
      );
      const failedAttempts = receiver.requests.length;
      down = false;
      const back = Date.now();
      const okIds = () => receiver.requests.slice(failedAttempts).map((r) => String(r.headers["webhook-id"]));
      await daemon.waitFor("every message once the receiver is back", () => new Set(okIds()).size === 200, 240_000);
      expect(await daemon.stop()).toEqual({ code: 0, signal: null });
      expect(accepted().size).toBe(200);
      const repeats = okIds().length - new Set(okIds()).size;
      expect(repeats).toBe(0); // a retried message is accepted once: the deliverer never sends an accepted one again
      rows.push({
        fault: "webhook receiver answering 503 for the whole drain",
        runs: 1,
        messages: 200,
        lost: 0,
        duplicated: repeats,
        recovered: true,
        secondsToRecover: (Date.now() - back) / 1000,
      });
    } finally {
      await receiver.close();
    }
  });

  it("leaks no secret into any log line, status output or file of the faults above", () => {
    const logFile = path.join(bed.dir, "faults-daemons.log");
    writeFileSync(logFile, daemons.flatMap((d) => d.rawOutput).join(""));
    const statusFile = path.join(bed.dir, "faults-status.txt");
    writeFileSync(statusFile, statusOutputs.join("\n"));
    const secrets = [...issuedSecrets(bed, source), ...passwords];
    const links = linkTokens(bed, source);
    expect(secrets.length).toBeGreaterThan(passwords.length);
    if (!imap) expect(links.length).toBeGreaterThan(0);
    // The state and spool directories (state database, spooled messages) and every handler's output.
    const files = listFiles(bed.dir).filter((f) => /[/\\](state|out)-[^/\\]+[/\\]/.test(f));
    expect(files.length).toBeGreaterThan(0);
    // The state database holds each folder's cursor, which over Graph is the delta link itself.
    const stateDatabase = (f: string) => /[/\\]state\.sqlite(-wal|-shm|-journal)?$/.test(f);
    const hits = [
      ...scanForSecrets([logFile, statusFile, ...files.filter((f) => !stateDatabase(f))], [...secrets, ...links]),
      ...scanForSecrets(files.filter(stateDatabase), secrets),
    ];
    expect(hits).toEqual([]);
    const what = imap ? "tokens, passwords" : "tokens, passwords, Graph error bodies; delta/skip link tokens outside the state database";
    rows.push({
      fault: `secret scan (${what}): ${secrets.length + links.length} secrets in the logs of ${daemons.length} runs, ${statusOutputs.length / 2} status outputs, ${files.length} files`,
      hits: hits.length,
    });
  });
});
