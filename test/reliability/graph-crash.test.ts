/**
 * Crash over Graph: SIGKILL mailfetchd at random instants while it drains a `source: graph`
 * queue (the Graph stand-in answering slowly enough that kills land in delta paging, $value
 * downloads, spooling and moves), restarting after each kill. At the end every message has
 * reached the directory handler under its content id (lost = 0), and every message was moved
 * out of the inbox only after it was spooled: the inbox ends empty, Processed holds them all.
 * Six kills by default; MAILFETCHD_SOAK=1 runs 1,000 messages and 20 kills.
 */
import { readdirSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startTestBed, type TestBed } from "../../tools/testbed/test-bed.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { expectedStableId } from "../../tools/testbed/helpers/expected-id.js";
import { recordFigures } from "./figures.js";

const SOAK = Boolean(process.env.MAILFETCHD_SOAK);
const TOTAL = SOAK ? 1_000 : 200;
const KILLS = SOAK ? 20 : 6;
const QUEUE = { name: "graph-crash", address: "graph-crash@example.test", password: "graph-crash-password" };

let bed: TestBed;
let configFile: string;
const expected = new Set<string>();
const outDir = () => path.join(bed.dir, "out");

beforeAll(async () => {
  bed = await startTestBed();
  bed.identity.addUser({ username: QUEUE.address, password: QUEUE.password });
  bed.graph.addMailbox(QUEUE.address);
  bed.graph.addFolder(QUEUE.address, "Processed");
  // Slow enough that a drain takes several seconds, so the kills land inside it.
  bed.graph.setResponseDelay(20);
  configFile = bed.writeDaemonConfig({
    stateDir: path.join(bed.dir, "state"),
    logLevel: "info",
    poll: "1s",
    queues: [{ ...QUEUE, options: { source: "graph", afterSpool: "move", moveTo: "Processed" }, handlers: [{ type: "directory", name: "files", path: outDir() }] }],
  });
  for (const m of sampleMessages(TOTAL, { seed: "graph-crash", to: QUEUE.address })) {
    bed.graph.putMessage(QUEUE.address, "inbox", m.raw);
    expected.add(await expectedStableId(QUEUE.address, m.raw));
  }
}, 300_000);

afterAll(async () => {
  await bed?.close();
});

const folders = () => {
  try {
    return readdirSync(path.join(outDir(), QUEUE.name)).filter((name) => !name.startsWith("."));
  } catch {
    return [];
  }
};

describe("crash during a Graph drain", () => {
  it(`loses nothing when killed with SIGKILL ${KILLS} times during a drain of ${TOTAL} messages over Graph`, { timeout: 600_000 }, async () => {
    expect(expected.size).toBe(TOTAL);
    let seed = 11;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const started = Date.now();
    for (let kill = 0; kill < KILLS; kill++) {
      const daemon = new DaemonProcess(configFile);
      daemon.start();
      if (kill % 2 === 1) {
        // Every other kill lands in the drain, however slow the machine: once this run has
        // moved or delivered something, a random instant within the next second.
        const progress = () => folders().length + bed.graph.messages(QUEUE.address, "Processed").length;
        const before = progress();
        const giveUpAt = Date.now() + 15_000;
        while (progress() === before && folders().length < TOTAL && Date.now() < giveUpAt) await new Promise((resolve) => setTimeout(resolve, 20));
        await new Promise((resolve) => setTimeout(resolve, random() * 1_000));
      } else {
        // A random instant from start-up (sign-in, the first delta page) into the drain.
        await new Promise((resolve) => setTimeout(resolve, 800 + random() * 4_000));
      }
      const status = await daemon.stop("SIGKILL");
      expect(status.signal, `the daemon ended by itself:\n${daemon.rawOutput.slice(-5).join("")}`).toBe("SIGKILL");
    }
    const deliveredBeforeFinal = folders().length;
    const movedBeforeFinal = bed.graph.messages(QUEUE.address, "Processed").length;
    const finalStarted = Date.now();
    const final = new DaemonProcess(configFile);
    final.start();
    await final.waitFor("every message delivered", () => folders().length >= TOTAL, 300_000);
    await final.waitFor("the inbox to empty", () => bed.graph.messages(QUEUE.address, "inbox").length === 0, 120_000);
    expect(await final.stop("SIGTERM")).toEqual({ code: 0, signal: null });

    const delivered = new Set(folders());
    const lost = [...expected].filter((id) => !delivered.has(id)).length;
    expect(lost, "lost").toBe(0);
    expect(delivered.size, "a folder that is not an expected id").toBe(TOTAL);
    expect(bed.graph.messages(QUEUE.address, "Processed")).toHaveLength(TOTAL);
    // Moved only once spooled: every move came after that message's $value was answered.
    const valueAnswered = new Map<string, number>();
    for (const r of bed.graph.requests) {
      const id = /\/messages\/([^/]+)\/\$value$/.exec(r.path)?.[1];
      if (id && r.status === 200 && !valueAnswered.has(id)) valueAnswered.set(id, r.at);
    }
    const movedEarly = bed.graph.actions.filter((a) => a.mailbox === QUEUE.address && !(valueAnswered.get(a.id)! <= a.at)).length;
    expect(movedEarly, "moved before it was downloaded").toBe(0);
    recordFigures("graph-crash", [
      {
        fault: `SIGKILL x${KILLS} during a Graph drain (afterSpool move)`,
        runs: KILLS + 1,
        messages: TOTAL,
        lost,
        duplicated: "n/a (one folder per id)",
        recovered: true,
        deliveredBeforeLastRun: deliveredBeforeFinal,
        movedBeforeLastRun: movedBeforeFinal,
        secondsToRecover: Math.round((Date.now() - finalStarted) / 1000),
        secondsInAll: Math.round((Date.now() - started) / 1000),
      },
    ]);
  });
});
