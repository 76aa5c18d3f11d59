/**
 * The parser pool: the real worker (dist/parse/parse-worker.js, so `npm run build` first)
 * gives what MailparserParser gives, from memory or from a file, with attachments intact;
 * and with a scripted worker (pure pool logic), a parse that hangs or crashes is abandoned,
 * its worker replaced, and the message comes back with parseError, never blocking the others.
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MailparserParser } from "../../src/parse/mail-parser.js";
import { ParserPool } from "../../src/parse/parser-pool.js";
import { bigMessage } from "../../tools/testbed/big-message.js";

const REAL_WORKER = new URL("../../dist/parse/parse-worker.js", import.meta.url);
const SCRIPTED_WORKER = new URL("../fixtures/workers/scripted-parser.mjs", import.meta.url);

const message = (extraHeader: string) =>
  Buffer.from(`From: a@example.test\r\nTo: q@example.test\r\nSubject: s\r\n${extraHeader}\r\nContent-Type: text/plain\r\n\r\nbody\r\n`);

describe("ParserPool with the real parse worker", () => {
  let dir: string;
  const pool = new ParserPool({ workerUrl: REAL_WORKER });
  // 4 MB: big enough that attachment buffers are transferred, not copied.
  const big = bigMessage({ seed: "pool-test", to: "q@example.test", totalBytes: 4 * 1024 * 1024, htmlBytes: 200 * 1024 });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "mailfetchd-pool-"));
  });
  afterAll(async () => {
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("parses a message from memory and from its file exactly as MailparserParser does", async () => {
    const expected = await new MailparserParser().parse(big.raw);
    const file = path.join(dir, "big.eml");
    await writeFile(file, big.raw);
    for (const parsed of [await pool.parse(big.raw), await pool.parseFile(file)]) {
      expect(parsed.parseError).toBeUndefined();
      expect(parsed.subject).toBe(expected.subject);
      expect(parsed.html).toBe(expected.html);
      expect(parsed.text).toBe(expected.text);
      expect(parsed.attachments).toHaveLength(1);
      const [attachment] = parsed.attachments;
      expect(Buffer.isBuffer(attachment!.content)).toBe(true);
      expect(attachment!.size).toBe(big.attachmentSize);
      expect(attachment!.sha256).toBe(big.attachmentSha256);
      expect(createHash("sha256").update(attachment!.content!).digest("hex")).toBe(big.attachmentSha256);
    }
  });

  it("leaves the caller's buffer intact", async () => {
    const raw = message("X-Test: keep");
    const copy = Buffer.from(raw);
    await pool.parse(raw);
    expect(raw.equals(copy)).toBe(true);
  });

  it("reports an unreadable file as a parse error, not a rejection", async () => {
    const parsed = await pool.parseFile(path.join(dir, "missing.eml"));
    expect(parsed.parseError).toMatch(/parse/i);
    expect(parsed.attachments).toEqual([]);
  });
});

describe("ParserPool abandoning parses (scripted worker)", () => {
  it("terminates a parse that takes too long, delivers the headers with parseError, and goes on", async () => {
    const pool = new ParserPool({ workerUrl: SCRIPTED_WORKER, size: 1, timeoutMs: 300 });
    try {
      const slow = await pool.parse(message("X-Test: hang"));
      expect(slow.subject).toBe("headers only");
      expect(slow.parseError).toMatch(/abandoned: took longer than 0.3 s/);
      // The hung worker was replaced: the next message is parsed normally.
      const next = await pool.parse(message("X-Test: fine"));
      expect(next.subject).toMatch(/^parsed by /);
      expect(next.parseError).toBeUndefined();
    } finally {
      await pool.close();
    }
  });

  it("keeps parsing other messages while one hangs", async () => {
    const pool = new ParserPool({ workerUrl: SCRIPTED_WORKER, size: 2, timeoutMs: 60_000 });
    const slow = pool.parse(message("X-Test: hang")).catch((error: Error) => error);
    let slowDone = false;
    void slow.then(() => (slowDone = true));
    try {
      for (let i = 0; i < 5; i++) expect((await pool.parse(message(`X-Test: n${i}`))).subject).toMatch(/^parsed by /);
      expect(slowDone).toBe(false);
    } finally {
      await pool.close();
    }
    expect(String(await slow)).toMatch(/closed/);
  });

  it("survives a worker that dies mid-parse", async () => {
    const pool = new ParserPool({ workerUrl: SCRIPTED_WORKER, size: 1 });
    try {
      const crashed = await pool.parse(message("X-Test: crash"));
      expect(crashed.subject).toBe("headers only");
      expect(crashed.parseError).toMatch(/exited \(code 3\)/);
      expect((await pool.parse(message("X-Test: after"))).subject).toMatch(/^parsed by /);
    } finally {
      await pool.close();
    }
  });

  it("gives an empty message with parseError when even the headers cannot be parsed", async () => {
    const pool = new ParserPool({ workerUrl: SCRIPTED_WORKER, size: 1, timeoutMs: 200, headersTimeoutMs: 200 });
    try {
      const parsed = await pool.parse(message("X-Test: hang-always"));
      expect(parsed).toMatchObject({ from: [], attachments: [] });
      expect(parsed.subject).toBeUndefined();
      expect(parsed.parseError).toMatch(/took longer.*headers: took longer/);
    } finally {
      await pool.close();
    }
  });

  it("rejects parses after close, and close ends a hung parse", async () => {
    const pool = new ParserPool({ workerUrl: SCRIPTED_WORKER, size: 1, timeoutMs: 60_000 });
    const hung = pool.parse(message("X-Test: hang")).catch((error: Error) => error);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await pool.close();
    expect(await hung).toBeInstanceOf(Error);
    expect(String(await hung)).toMatch(/closed/);
    await expect(pool.parse(message("X-Test: late"))).rejects.toThrow(/closed/);
  });

  it("takes turns between queues: a flood of slow messages in one queue does not keep another's waiting", async () => {
    const pool = new ParserPool({ workerUrl: SCRIPTED_WORKER, size: 2, warm: 2 });
    try {
      const finished: string[] = [];
      const workers = new Map<string, string>();
      const track = (name: string, queue: string, header: string) =>
        pool.parse(message(header), { queue }).then((parsed) => {
          finished.push(name);
          workers.set(name, parsed.subject!);
        });
      // Queue "flood" fills both workers and has six more waiting, as its deliverer's 8 in flight do.
      const flood = Array.from({ length: 8 }, (_, i) => track(`flood-${i}`, "flood", "X-Test: busy-300"));
      const other = track("other", "other", "X-Test: quick");
      await Promise.all([...flood, other]);
      // One line for all: "other" came after all eight (9th). Fair: a spare worker parses it
      // at once, and the flood keeps to the pool's two workers.
      expect(finished.indexOf("other")).toBeLessThanOrEqual(2);
      const floodWorkers = new Set(flood.map((_, i) => workers.get(`flood-${i}`)));
      expect(floodWorkers.size).toBe(2);
      expect(floodWorkers.has(workers.get("other"))).toBe(false);
    } finally {
      await pool.close();
    }
  });

  it("starts no spare worker while the pool's workers serve more than one queue", async () => {
    const pool = new ParserPool({ workerUrl: SCRIPTED_WORKER, size: 2, warm: 2 });
    try {
      const parse = (queue: string) => pool.parse(message("X-Test: busy-200"), { queue }).then((parsed) => parsed.subject);
      const subjects = await Promise.all([parse("a"), parse("b"), parse("c"), parse("a"), parse("c")]);
      expect(new Set(subjects).size).toBe(2);
    } finally {
      await pool.close();
    }
  });

  it("gives a queue alone every worker", async () => {
    const pool = new ParserPool({ workerUrl: SCRIPTED_WORKER, size: 2, warm: 2 });
    try {
      const parsed = await Promise.all(Array.from({ length: 6 }, () => pool.parse(message("X-Test: busy-100"), { queue: "alone" })));
      expect(new Set(parsed.map((p) => p.subject)).size).toBe(2);
    } finally {
      await pool.close();
    }
  });
});
