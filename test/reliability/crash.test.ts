/**
 * Crash: SIGKILL mailfetchd at random instants while it drains 1,000 messages from three
 * queues with two webhook handlers each (real HTTP receivers) and a directory handler, at
 * least 20 times (every other kill once delivery is under way), restarting after each kill. At the end every message has reached every
 * handler (lost = 0); repeats are counted, and a repeat must carry the same id (the receivers
 * see exactly the expected ids). The directory handler's output holds exactly the expected
 * message folders, each complete, and no temp folder a kill left (swept at start).
 * One queue moves each message out of the inbox after spooling: the server ends empty.
 * Run once per mail source: over IMAP (Dovecot) and over Graph (the stand-in), where every move
 * must also come after that message's $value was answered (moved only once downloaded). Last,
 * a secret scan of every run's log and every state and output file.
 * MAILFETCHD_SOAK=1 runs 10,000 messages and 100 kills.
 */
import { readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectedStableId } from "../../tools/testbed/helpers/expected-id.js";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { WebhookReceiver } from "../../tools/testbed/helpers/webhook-receiver.js";
import { listFiles, scanForSecrets } from "../../tools/testbed/helpers/secret-scan.js";
import {
  countMessages,
  issuedSecrets,
  linkTokens,
  MAIL_SOURCES,
  prepareMailbox,
  putRawMessage,
  sourceOptions,
  type MailSourceKind,
} from "../../tools/testbed/helpers/mail-source.js";
import { recordFigures } from "./figures.js";

const SOAK = Boolean(process.env.MAILFETCHD_SOAK);
const TOTAL = SOAK ? 10_000 : 1_000;
const KILLS = SOAK ? 100 : 20;
const QUEUES = [
  { name: "crash-a", address: "crash-a@example.test", password: "crash-a-password", options: {} },
  { name: "crash-b", address: "crash-b@example.test", password: "crash-b-password", options: { afterSpool: "move", moveTo: "Processed" } },
  { name: "crash-c", address: "crash-c@example.test", password: "crash-c-password", options: { afterSpool: "seen" } },
];

describe.each(MAIL_SOURCES)("crash over %s", (source: MailSourceKind) => {
  let bed: TestBed;
  let receivers: WebhookReceiver[];
  let configFile: string;
  const expected = new Map<string, string>(); // id -> queue
  const daemons: DaemonProcess[] = [];

  beforeAll(async () => {
    bed = await startTestBed();
    receivers = [await WebhookReceiver.start(), await WebhookReceiver.start()];
    for (const q of QUEUES) {
      bed.identity.addUser({ username: q.address, password: q.password });
      await prepareMailbox(bed, source, q.address, q.name === "crash-b" ? ["Processed"] : []);
    }
    configFile = bed.writeDaemonConfig({
      stateDir: path.join(bed.dir, "state"),
      logLevel: "info",
      poll: "1s",
      queues: QUEUES.map((q) => ({
        ...q,
        options: { ...sourceOptions(source), ...q.options },
        handlers: [
          { type: "webhook", name: "crm", url: receivers[0]!.url(), timeout: "10s" },
          { type: "webhook", name: "archive", url: receivers[1]!.url(), timeout: "10s" },
          { type: "directory", name: "files", path: outDir() },
        ],
      })),
    });
    for (const [index, q] of QUEUES.entries()) {
      const count = Math.floor(TOTAL / QUEUES.length) + (index < TOTAL % QUEUES.length ? 1 : 0);
      for (const m of sampleMessages(count, { seed: `crash-${q.name}`, to: q.address })) {
        await putRawMessage(bed, source, q.address, m.raw);
        expected.set(await expectedStableId(q.address, m.raw), q.name);
      }
    }
  }, 600_000);

  afterAll(async () => {
    await Promise.all(receivers?.map((r) => r.close()) ?? []);
    await bed?.close();
  });

  const idsAt = (receiver: WebhookReceiver) => receiver.requests.map((r) => String(r.headers["webhook-id"]));
  const outDir = () => path.join(bed.dir, "out");
  const outputEntries = () => QUEUES.flatMap((q) => readdirIfAny(path.join(outDir(), q.name)));
  const messageFolders = () => outputEntries().filter((name) => !name.startsWith("."));
  const complete = () => receivers.every((r) => new Set(idsAt(r)).size >= expected.size) && messageFolders().length >= expected.size;

  function readdirIfAny(dir: string): string[] {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  }

  it(`loses nothing when killed with SIGKILL ${KILLS} times during a drain of ${TOTAL} messages`, { timeout: SOAK ? 3_600_000 : 600_000 }, async () => {
    expect(expected.size).toBe(TOTAL);
    let kills = 0;
    const tempFoldersLeftByKills = new Set<string>();
    let seed = 7;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const started = Date.now();
    // Always the full number of kills: one that lands after the drain finished still tests a
    // restart over a complete spool.
    while (kills < KILLS) {
      const daemon = new DaemonProcess(configFile);
      daemons.push(daemon);
      daemon.start();
      if (kills % 2 === 1) {
        // Every other kill lands in delivery, however slow the machine: once this run has
        // written a message folder, a random instant within the next second (messages are
        // then being written, some half-way). A run with nothing left to deliver is killed
        // after 10 s.
        const folders = messageFolders().length;
        const giveUpAt = Date.now() + 10_000;
        while (messageFolders().length === folders && messageFolders().length < expected.size && Date.now() < giveUpAt)
          await new Promise((resolve) => setTimeout(resolve, 20));
        await new Promise((resolve) => setTimeout(resolve, random() * 1_000));
      } else {
        // A random instant: during start-up, sign-in, fetch, spooling, server actions or delivery.
        await new Promise((resolve) => setTimeout(resolve, 200 + random() * 2_800));
      }
      const status = await daemon.stop("SIGKILL");
      expect(status.signal, `the daemon ended by itself (${JSON.stringify(status)}):\n${daemon.rawOutput.slice(-5).join("")}`).toBe("SIGKILL");
      kills++;
      // What the kill left; the next start sweeps it.
      for (const name of outputEntries()) if (name.startsWith(".tmp-")) tempFoldersLeftByKills.add(name);
    }
    const deliveredBeforeFinal = receivers.map((r) => new Set(idsAt(r)).size);
    const filesBeforeFinal = messageFolders().length;
    const finalStarted = Date.now();
    const final = new DaemonProcess(configFile);
    daemons.push(final);
    final.start();
    await final.waitFor("every message at every handler", complete, SOAK ? 1_800_000 : 300_000);
    await final.waitFor("the moved queue's inbox to empty", async () => (await countMessages(bed, source, "crash-b@example.test")) === 0, 60_000);
    expect(await final.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    const totalSeconds = (Date.now() - started) / 1000;
    const recoverSeconds = (Date.now() - finalStarted) / 1000;

    const rows: Array<Record<string, string | number | boolean>> = receivers.map((receiver, index) => {
      const ids = idsAt(receiver);
      const distinct = new Set(ids);
      const lost = [...expected.keys()].filter((id) => !distinct.has(id)).length;
      const unexpected = [...distinct].filter((id) => !expected.has(id)).length;
      expect(lost, "lost").toBe(0);
      expect(unexpected, "a repeat carried another id").toBe(0);
      return {
        fault: `SIGKILL x${kills} (handler ${index === 0 ? "crm" : "archive"})`,
        runs: kills + 1,
        messages: expected.size,
        lost,
        duplicated: ids.length - distinct.size,
        recovered: true,
        secondsToRecover: Math.round(recoverSeconds),
        secondsInAll: Math.round(totalSeconds),
        deliveredBeforeLastRun: deliveredBeforeFinal[index]!,
      };
    });
    expect(await countMessages(bed, source, "crash-b@example.test", "Processed")).toBe(Math.floor(TOTAL / 3));
    if (source === "graph") {
      // Moved only once spooled: every move came after that message's $value was answered.
      const valueAnswered = new Map<string, number>();
      for (const r of bed.graph.requests) {
        const id = /\/messages\/([^/]+)\/\$value$/.exec(r.path)?.[1];
        if (id && r.status === 200 && !valueAnswered.has(id)) valueAnswered.set(id, r.at);
      }
      const movedEarly = bed.graph.actions.filter((a) => !(valueAnswered.get(a.id)! <= a.at)).length;
      expect(movedEarly, "moved or marked read before it was downloaded").toBe(0);
    }

    // The directory handler: every message under its id, each complete, and no temp folder left.
    const folders = messageFolders();
    const leftoverTempFolders = outputEntries().filter((name) => name.startsWith(".tmp-")).length;
    const incomplete = QUEUES.flatMap((q) =>
      readdirIfAny(path.join(outDir(), q.name)).filter(
        (id) =>
          !id.startsWith(".") &&
          readdirIfAny(path.join(outDir(), q.name, id))
            .sort()
            .join() !== "attachments,message.eml,message.json",
      ),
    ).length;
    const lostFiles = [...expected.keys()].filter((id) => !folders.includes(id)).length;
    expect(lostFiles, "lost (directory handler)").toBe(0);
    expect(folders.length, "a folder that is not an expected id").toBe(expected.size);
    expect(incomplete, "message folders without all their files").toBe(0);
    expect(leftoverTempFolders, "temp folders left after the final run").toBe(0);
    rows.push({
      fault: `SIGKILL x${kills} (handler files: directory)`,
      runs: kills + 1,
      messages: expected.size,
      lost: lostFiles,
      duplicated: "n/a (one folder per id)",
      recovered: true,
      secondsToRecover: Math.round(recoverSeconds),
      secondsInAll: Math.round(totalSeconds),
      deliveredBeforeLastRun: filesBeforeFinal,
      tempFoldersLeftByKills: tempFoldersLeftByKills.size,
      leftoverTempFolders,
    });
    // Killed mid-request and mid-write: still no token, password or Graph error body in any
    // log line or file, and no Graph link token outside the state database (its cursor).
    const logFile = path.join(bed.dir, "crash-daemons.log");
    writeFileSync(logFile, daemons.flatMap((d) => d.rawOutput).join(""));
    const files = [...listFiles(path.join(bed.dir, "state")), ...listFiles(outDir())];
    const stateDatabase = (f: string) => /[/\\]state\.sqlite(-wal|-shm|-journal)?$/.test(f);
    const secrets = [...issuedSecrets(bed, source), ...QUEUES.map((q) => q.password)];
    const leaks = [
      ...scanForSecrets([logFile, ...files.filter((f) => !stateDatabase(f))], [...secrets, ...linkTokens(bed, source)]),
      ...scanForSecrets(files.filter(stateDatabase), secrets),
    ];
    expect(leaks, "secrets in logs or files").toEqual([]);
    recordFigures("crash", rows, source);
  });
});
