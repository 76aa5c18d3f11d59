import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { isRetryable, MailfetchdError } from "../../src/errors.js";
import { createDirectoryHandler } from "../../src/handlers/directory.js";
import { MESSAGE_DOCUMENT_SCHEMA, type DirectoryMessageDocument } from "../../src/handlers/message-document.js";
import type { DeliverableMessage, DeliveryContext, ParsedAttachment, ParsedMessage } from "../../src/interfaces.js";
import { MailparserParser } from "../../src/parse/mail-parser.js";
import { rawMessageFromBuffer, rawMessageFromFile } from "../../src/spool/raw-message.js";

const FIXTURES = fileURLToPath(new URL("../fixtures/mail/", import.meta.url));
const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");
const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

const context = (signal: AbortSignal = new AbortController().signal): DeliveryContext => ({
  signal,
  logger: pino({ level: "silent" }),
  attempt: 1,
});

const EMPTY_PARSED: ParsedMessage = { from: [], to: [], cc: [], replyTo: [], references: [], attachments: [] };

function attachment(filename: string, content: string | Buffer, extra: Partial<ParsedAttachment> = {}): ParsedAttachment {
  const buffer = Buffer.isBuffer(content) ? content : Buffer.from(content);
  return { filename, contentType: "application/octet-stream", size: buffer.length, sha256: sha256(buffer), inline: false, content: buffer, ...extra };
}

function deliverable(overrides: Partial<DeliverableMessage> = {}): DeliverableMessage {
  return {
    id: "1700000000-42",
    queue: { name: "support", address: "support@contoso.example" },
    source: { kind: "imap", folder: "INBOX", item: "1700000000:42", uidValidity: "1700000000", uid: 42 },
    raw: rawMessageFromBuffer(Buffer.from("Subject: hello\r\n\r\nbody\r\n")),
    parsed: EMPTY_PARSED,
    ...overrides,
  };
}

/** Every file below `dir`, as paths relative to it. */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "mailfetchd-directory-"));
});

afterEach(async () => {
  await chmod(root, 0o700).catch(() => undefined);
  await rm(root, { recursive: true, force: true });
});

describe("directory handler", () => {
  it("writes message.eml, message.json and the attachments of a real message, owner-only", async () => {
    const raw = readFileSync(FIXTURES + "php-mime-mail-parser/issue115");
    const parsed = await new MailparserParser().parse(raw);
    const internalDate = new Date("2024-03-01T10:00:00.000Z");
    const out = join(root, "out"); // does not exist yet: the handler creates it
    const handler = createDirectoryHandler({ path: out });
    expect(handler.name).toBe("directory");

    await handler.deliver(deliverable({ raw: rawMessageFromBuffer(raw), parsed, internalDate }), context());

    const dir = join(out, "support", "1700000000-42");
    expect(await listFiles(out)).toEqual([
      join("support", "1700000000-42", "attachments", "attachment.txt"),
      join("support", "1700000000-42", "attachments", "background.jpg"),
      join("support", "1700000000-42", "attachments", "logo.jpg"),
      join("support", "1700000000-42", "message.eml"),
      join("support", "1700000000-42", "message.json"),
    ]);
    expect(await readFile(join(dir, "message.eml"))).toEqual(raw);

    for (const path of [out, join(out, "support"), dir, join(dir, "attachments")]) expect(await mode(path)).toBe(0o700);
    for (const file of await listFiles(dir)) expect(await mode(join(dir, file))).toBe(0o600);

    const document = JSON.parse(await readFile(join(dir, "message.json"), "utf8")) as DirectoryMessageDocument;
    expect(document).toMatchObject({
      schema: MESSAGE_DOCUMENT_SCHEMA,
      id: "1700000000-42",
      queue: { name: "support", address: "support@contoso.example" },
      source: { kind: "imap", folder: "INBOX", item: "1700000000:42", uidValidity: "1700000000", uid: 42 },
      receivedAt: "2024-03-01T10:00:00.000Z",
      size: raw.length,
      messageId: "<20050430192829.0489.name@company.com>",
      date: "2005-04-30T22:28:29.000Z",
      from: [{ name: "Name", address: "name@company.com" }],
      cc: [],
      subject: "Testing MIME E-mail composing with cid",
      inReplyTo: null,
      references: [],
      parseError: null,
      rawPath: "message.eml",
    });
    expect(document.html).toContain("cid:same1");
    expect(document.text).toContain("HTML message");

    expect(document.attachments).toHaveLength(3);
    for (const [index, entry] of document.attachments.entries()) {
      const original = parsed.attachments[index];
      expect(entry.path).toBe(`attachments/${entry.filename}`);
      const onDisk = await readFile(join(dir, entry.path ?? ""));
      expect(onDisk).toEqual(original?.content);
      expect(entry.sha256).toBe(sha256(onDisk));
      expect(entry.size).toBe(onDisk.length);
    }
    expect(document.attachments[0]).toEqual({
      filename: "logo.jpg",
      originalFilename: "logo.jpg",
      contentType: "image/gif",
      size: 2695,
      sha256: "0678808ad4ccd1f149e2f094e06c5e7c47548c6036d81b84bfce4b0f715cfb5d",
      contentId: "same1",
      inline: true,
      path: "attachments/logo.jpg",
      extractedFrom: null,
    });
    expect(document.attachments[2]?.contentId).toBeNull();

    // nothing left behind
    expect((await readdir(join(out, "support"))).filter((name) => name.startsWith("."))).toEqual([]);
  });

  it("writes null, never nothing, for absent fields, pretty-printed", async () => {
    await createDirectoryHandler({ path: root }).deliver(deliverable(), context());
    const text = await readFile(join(root, "support", "1700000000-42", "message.json"), "utf8");
    expect(text.startsWith('{\n  "schema": "mailfetchd.message/1",\n')).toBe(true);
    const document = JSON.parse(text) as Record<string, unknown>;
    for (const key of ["receivedAt", "messageId", "date", "subject", "text", "html", "inReplyTo", "parseError"]) {
      expect(document).toHaveProperty(key, null);
    }
    for (const key of ["from", "to", "cc", "replyTo", "references", "attachments"]) expect(document[key]).toEqual([]);
    expect(await listFiles(join(root, "support", "1700000000-42"))).toEqual(["message.eml", "message.json"]);
  });

  it("keeps hostile attachment names inside the attachments directory", async () => {
    const hostile = [
      "../../../escaped.txt",
      "..\\..\\evil.bat",
      "/etc/cron.d/job",
      "..",
      ".bashrc",
      "CON.txt",
      "a\u0000b.txt",
      "\u202Egnp.exe",
      `${"x".repeat(300)}.pdf`,
      "same.txt",
      "SAME.txt",
    ];
    const parsed: ParsedMessage = { ...EMPTY_PARSED, attachments: hostile.map((name, index) => attachment(name, `content ${index}`)) };
    await createDirectoryHandler({ path: root }).deliver(deliverable({ parsed }), context());

    const dir = join(root, "support", "1700000000-42");
    const files = await listFiles(root);
    for (const file of files) expect(file.startsWith(join("support", "1700000000-42") + sep)).toBe(true);
    const stored = (await readdir(join(dir, "attachments"))).sort();
    expect(stored).toHaveLength(hostile.length);
    expect(stored).toEqual(
      expect.arrayContaining(["escaped.txt", "evil.bat", "job", "attachment-4", "bashrc", "_CON.txt", "ab.txt", "gnp.exe", "same.txt", "SAME (2).txt"]),
    );

    const document = JSON.parse(await readFile(join(dir, "message.json"), "utf8")) as DirectoryMessageDocument;
    for (const [index, entry] of document.attachments.entries()) {
      expect((await readFile(join(dir, entry.path ?? ""))).toString()).toBe(`content ${index}`);
    }
  });

  it("treats a redelivery of the same id as done and leaves the first output untouched", async () => {
    const handler = createDirectoryHandler({ path: root });
    const first = deliverable({ parsed: { ...EMPTY_PARSED, subject: "first", attachments: [attachment("a.txt", "first")] } });
    await handler.deliver(first, context());
    const dir = join(root, "support", "1700000000-42");
    const before = await stat(join(dir, "message.json"));

    const again = deliverable({
      raw: rawMessageFromBuffer(Buffer.from("different")),
      parsed: { ...EMPTY_PARSED, subject: "second", attachments: [attachment("b.txt", "second")] },
    });
    await expect(handler.deliver(again, context())).resolves.toBeUndefined();
    // a fresh handler instance (a restarted daemon) too
    await expect(createDirectoryHandler({ path: root }).deliver(again, context())).resolves.toBeUndefined();

    const document = JSON.parse(await readFile(join(dir, "message.json"), "utf8")) as DirectoryMessageDocument;
    expect(document.subject).toBe("first");
    expect((await stat(join(dir, "message.json"))).mtimeMs).toBe(before.mtimeMs);
    expect(await readFile(join(dir, "message.eml"), "utf8")).toBe("Subject: hello\r\n\r\nbody\r\n");
    expect(await listFiles(dir)).toEqual([join("attachments", "a.txt"), "message.eml", "message.json"]);
    expect(await readdir(join(root, "support"))).toEqual(["1700000000-42"]);
  });

  it("lets concurrent deliveries of one id produce one complete directory", async () => {
    const handler = createDirectoryHandler({ path: root });
    const message = deliverable({ parsed: { ...EMPTY_PARSED, attachments: [attachment("a.bin", Buffer.alloc(256 * 1024, 1))] } });
    await Promise.all([1, 2, 3, 4].map(() => handler.deliver(message, context())));
    expect(await readdir(join(root, "support"))).toEqual(["1700000000-42"]);
    expect(await listFiles(join(root, "support"))).toEqual([
      join("1700000000-42", "attachments", "a.bin"),
      join("1700000000-42", "message.eml"),
      join("1700000000-42", "message.json"),
    ]);
  });

  it("keeps queues apart and messages apart", async () => {
    const handler = createDirectoryHandler({ path: root, name: "archive" });
    expect(handler.name).toBe("archive");
    await handler.deliver(deliverable({ id: "m1" }), context());
    await handler.deliver(deliverable({ id: "m2" }), context());
    await handler.deliver(deliverable({ id: "m1", queue: { name: "sales", address: "sales@contoso.example" } }), context());
    expect((await readdir(join(root, "support"))).sort()).toEqual(["m1", "m2"]);
    expect(await readdir(join(root, "sales"))).toEqual(["m1"]);
    const document = JSON.parse(await readFile(join(root, "sales", "m1", "message.json"), "utf8")) as DirectoryMessageDocument;
    expect(document.queue).toEqual({ name: "sales", address: "sales@contoso.example" });
  });

  it("makes the queue's directory again when it was removed between deliveries, and says so when a file stands in its place", async () => {
    // The directory is made only when missing (issue 17): an lstat, not a mkdir, per message.
    const handler = createDirectoryHandler({ path: root });
    await handler.deliver(deliverable({ id: "m1" }), context());
    await rm(join(root, "support"), { recursive: true });
    await handler.deliver(deliverable({ id: "m2" }), context());
    expect(await readdir(join(root, "support"))).toEqual(["m2"]);
    expect(await mode(join(root, "support"))).toBe(0o700);

    await rm(join(root, "support"), { recursive: true });
    await writeFile(join(root, "support"), "not a directory");
    const error = await handler.deliver(deliverable({ id: "m3" }), context()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MailfetchdError);
    expect((error as MailfetchdError).retryable).toBe(true);
    expect((error as MailfetchdError).fix).toContain("is a file, not a directory");
  });

  it("sweeps the temp dirs a crash left at first use, however recent, and nothing else", async () => {
    const queueDir = join(root, "support");
    // What a SIGKILL mid-write leaves: the handler's own temp name, a partial message inside.
    const leftover = join(queueDir, ".tmp-1700000000-41-0123456789ab");
    await mkdir(join(leftover, "attachments"), { recursive: true });
    await writeFile(join(leftover, "message.eml"), "partial");
    await mkdir(join(queueDir, ".tmp-swept-aaaaaaaaaaaa")); // a sweep that was itself interrupted
    await mkdir(join(queueDir, ".tmp-notes")); // not a name the handler makes
    await mkdir(join(queueDir, "not-temp"));
    const handler = createDirectoryHandler({ path: root });
    // Changed after the handler was built: another process may be writing it right now.
    const busyElsewhere = join(queueDir, ".tmp-1700000000-43-ba9876543210");
    await mkdir(busyElsewhere);
    const later = new Date(Date.now() + 60_000);
    await utimes(busyElsewhere, later, later);

    await handler.deliver(deliverable(), context());
    expect((await readdir(queueDir)).sort()).toEqual([".tmp-1700000000-43-ba9876543210", ".tmp-notes", "1700000000-42", "not-temp"]);
  });

  it("sweeps a queue's leftovers when the queue starts, with nothing to deliver", async () => {
    const queueDir = join(root, "support");
    await mkdir(join(queueDir, ".tmp-1700000000-41-0123456789ab"), { recursive: true });
    const handler = createDirectoryHandler({ path: root });
    await handler.start?.({ name: "support", address: "support@contoso.example" }, pino({ level: "silent" }));
    expect(await readdir(queueDir)).toEqual([]);
    // A queue that never had output: nothing to sweep, no error.
    await handler.start?.({ name: "sales", address: "sales@contoso.example" }, pino({ level: "silent" }));
  });

  it("removes its temp dir and reports a retryable error when writing fails midway", async () => {
    const broken = attachment("b.txt", "x");
    Object.defineProperty(broken, "content", {
      get() {
        throw new Error("simulated read failure");
      },
    });
    const parsed: ParsedMessage = { ...EMPTY_PARSED, attachments: [attachment("a.txt", "fine"), broken] };
    const error = await createDirectoryHandler({ path: root })
      .deliver(deliverable({ parsed }), context())
      .then(
        () => undefined,
        (caught: unknown) => caught,
      );
    expect(error).toBeInstanceOf(MailfetchdError);
    expect(error).toMatchObject({ code: "HANDLER_FAILED", retryable: true });
    expect(await readdir(join(root, "support"))).toEqual([]);
  });

  it.each([
    ["the output path is a regular file", async (path: string) => writeFile(path, "not a directory")],
    [
      "the queue directory is a regular file",
      async (path: string) => {
        await mkdir(path);
        await writeFile(join(path, "support"), "not a directory");
      },
    ],
  ])("gives a retryable HANDLER_FAILED error when %s (an unwritable target)", async (_label, arrange) => {
    const out = join(root, "out");
    await arrange(out);
    const error = await createDirectoryHandler({ path: out })
      .deliver(deliverable(), context())
      .then(
        () => undefined,
        (caught: unknown) => caught,
      );
    expect(error).toBeInstanceOf(MailfetchdError);
    expect(error).toMatchObject({ code: "HANDLER_FAILED", retryable: true });
    expect(isRetryable(error)).toBe(true);
    expect((error as MailfetchdError).message).toMatch(/ENOTDIR|EEXIST/);
    expect((error as MailfetchdError).fix).toBeDefined();
  });

  it("refuses a symlink planted at <path>/<queue>: nothing lands in its target, the error says why and what to do", async () => {
    const elsewhere = join(root, "elsewhere");
    const out = join(root, "out");
    await mkdir(elsewhere);
    await mkdir(out);
    await symlink(elsewhere, join(out, "support"));
    const error = await createDirectoryHandler({ path: out })
      .deliver(deliverable(), context())
      .then(
        () => undefined,
        (caught: unknown) => caught,
      );
    expect(error).toBeInstanceOf(MailfetchdError);
    expect(error).toMatchObject({ code: "HANDLER_FAILED", retryable: true });
    expect((error as MailfetchdError).message).toContain(`${join(out, "support")} is a symbolic link (to ${elsewhere}); refused`);
    expect((error as MailfetchdError).fix).toContain(`rm ${join(out, "support")}`);
    expect(await readdir(elsewhere)).toEqual([]);
  });

  it("refuses a symlink planted at <path>/<queue>/<id> instead of taking it for a delivered message", async () => {
    const elsewhere = join(root, "elsewhere");
    await mkdir(elsewhere);
    await mkdir(join(root, "out", "support"), { recursive: true });
    await symlink(elsewhere, join(root, "out", "support", "1700000000-42"));
    const error = await createDirectoryHandler({ path: join(root, "out") })
      .deliver(deliverable(), context())
      .then(
        () => undefined,
        (caught: unknown) => caught,
      );
    expect(error).toMatchObject({ code: "HANDLER_FAILED", retryable: true });
    expect((error as MailfetchdError).message).toContain("1700000000-42 is a symbolic link");
    expect(await readdir(elsewhere)).toEqual([]);
  });

  it("follows a symlink at the handler's path itself (the operator's choice)", async () => {
    const real = join(root, "real");
    await mkdir(real);
    await symlink(real, join(root, "link"));
    await createDirectoryHandler({ path: join(root, "link") }).deliver(deliverable(), context());
    expect(await readdir(join(real, "support"))).toEqual(["1700000000-42"]);
  });

  it("gives a retryable HANDLER_FAILED error when the final path is taken by a file", async () => {
    await mkdir(join(root, "support"));
    await writeFile(join(root, "support", "1700000000-42"), "squatter");
    const error = await createDirectoryHandler({ path: root })
      .deliver(deliverable(), context())
      .then(
        () => undefined,
        (caught: unknown) => caught,
      );
    expect(error).toMatchObject({ code: "HANDLER_FAILED", retryable: true });
    expect(await readFile(join(root, "support", "1700000000-42"), "utf8")).toBe("squatter");
  });

  // Root ignores permission bits, so as root (CI) the directory is a read-only tmpfs mount
  // instead of a chmod 0500 one: either way the write really fails.
  it("gives a retryable error for a read-only output directory", async () => {
    const asRoot = process.getuid?.() === 0;
    if (asRoot) execFileSync("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", root]);
    else await chmod(root, 0o500);
    try {
      const error = await createDirectoryHandler({ path: root })
        .deliver(deliverable(), context())
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );
      expect(error).toMatchObject({ code: "HANDLER_FAILED", retryable: true });
      expect((error as MailfetchdError).message, (error as Error).message).toMatch(asRoot ? /EROFS/ : /EACCES/);
    } finally {
      if (asRoot) execFileSync("umount", [root]);
    }
  });

  it.each([
    ["id", { id: "../escape" }],
    ["id", { id: "a/b" }],
    ["id", { id: ".hidden" }],
    ["id", { id: "" }],
    ["id", { id: "CON" }],
    ["id", { id: "x".repeat(300) }],
    ["queue", { queue: { name: "..", address: "q@example.com" } }],
    ["queue", { queue: { name: "a\\b", address: "q@example.com" } }],
  ] as const)("refuses an unsafe %s as a programming error, writing nothing", async (_what, overrides) => {
    const error = await createDirectoryHandler({ path: root })
      .deliver(deliverable(overrides), context())
      .then(
        () => undefined,
        (caught: unknown) => caught,
      );
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(MailfetchdError);
    expect((error as Error).message).toMatch(/not a safe path segment/);
    expect(await readdir(root)).toEqual([]);
  });

  it("links message.eml to the spool's file and a big attachment to its scratch file on the same file system, and copies them from another (tmpfs)", async () => {
    const bytes = Buffer.from("Subject: linked\r\n\r\nbody\r\n");
    const bigBytes = Buffer.alloc(2 * 1024 * 1024, 0x42);
    for (const [where, spoolDir] of [
      ["same", root],
      ["other", "/dev/shm"],
    ] as const) {
      const source = await mkdtemp(join(spoolDir, "mailfetchd-spool-"));
      try {
        const spoolFile = join(source, "m.eml");
        const scratchFile = join(source, "attachment-1");
        await writeFile(spoolFile, bytes, { mode: 0o600 });
        await writeFile(scratchFile, bigBytes, { mode: 0o600 });
        const out = join(root, `out-${where}`);
        const parsed = {
          ...EMPTY_PARSED,
          attachments: [{ ...attachment("big.bin", ""), content: undefined, file: scratchFile, size: bigBytes.length, sha256: sha256(bigBytes) }],
        };
        await createDirectoryHandler({ path: out }).deliver(
          deliverable({ id: `id-${where}`, raw: rawMessageFromFile(spoolFile, bytes.length), parsed }),
          context(),
        );

        const dir = join(out, "support", `id-${where}`);
        expect(await readFile(join(dir, "message.eml"))).toEqual(bytes);
        expect((await readFile(join(dir, "attachments", "big.bin"))).equals(bigBytes)).toBe(true);
        const linked = (await stat(join(dir, "message.eml"))).ino === (await stat(spoolFile)).ino;
        expect(linked).toBe(where === "same");
        const attachmentLinked = (await stat(join(dir, "attachments", "big.bin"))).ino === (await stat(scratchFile)).ino;
        expect(attachmentLinked).toBe(where === "same");
        expect(await mode(join(dir, "message.eml"))).toBe(0o600);
        expect(await mode(join(dir, "attachments", "big.bin"))).toBe(0o600);
        expect(await readFile(spoolFile)).toEqual(bytes);
        // The scratch file goes after the delivery round; the delivered attachment stays whole.
        await rm(scratchFile);
        expect((await readFile(join(dir, "attachments", "big.bin"))).equals(bigBytes)).toBe(true);
      } finally {
        await rm(source, { recursive: true, force: true });
      }
    }
  });

  it("does not start when the delivery is already aborted", async () => {
    const controller = new AbortController();
    controller.abort(new Error("shutting down"));
    await expect(createDirectoryHandler({ path: root }).deliver(deliverable(), context(controller.signal))).rejects.toThrow("shutting down");
    expect(await readdir(root)).toEqual([]);
  });
});
