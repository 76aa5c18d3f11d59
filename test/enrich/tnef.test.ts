import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";

import { unpackTnefAttachments } from "../../src/enrich/tnef-attachments.js";
import { readTnef, tnefBudget } from "../../src/enrich/tnef.js";
import { buildTnef } from "../../tools/testbed/hostile-messages.js";
import { createDirectoryHandler } from "../../src/handlers/directory.js";
import type { DirectoryMessageDocument } from "../../src/handlers/message-document.js";
import type { ParsedAttachment } from "../../src/interfaces.js";
import { customerMail, fixture, parse, parseFixture } from "./helpers.js";
import { rawMessageFromBuffer } from "../../src/spool/raw-message.js";

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

/**
 * What the reference decoder (verdammelt/tnef, tests/files/baselines) writes for each stream:
 * names in order, and sizes.
 */
const EXPECTED: Record<string, [name: string, size: number][]> = {
  "two-files.tnef": [
    ["AUTHORS", 244],
    ["README", 893],
  ],
  "long-filename.tnef": [["allproductsmar2000.dat", 279]],
  "MAPI_ATTACH_DATA_OBJ.tnef": [
    ["VIA_Nytt_1402.doc", 61952],
    ["VIA_Nytt_1402.pdf", 213685],
    ["VIA_Nytt_14021.htm", 68919],
  ],
  "data-before-name.tnef": [
    ["AUTOEXEC.BAT", 0],
    ["CONFIG.SYS", 0],
    ["boot.ini", 289],
  ],
  "unicode-mapi-attr-name.tnef": [
    ["spaconsole2.cfg", 8387],
    ["image001.png", 3815],
    ["image002.png", 3573],
    ["image003.png", 3792],
  ],
  "garbage-at-end.tnef": [],
};

describe("readTnef on real winmail.dat streams", () => {
  it.each(Object.entries(EXPECTED))("%s", (file, expected) => {
    const contents = readTnef(fixture(`corpus/mimekit/tnef/${file}`));
    expect(contents.files.map((entry) => [entry.name, entry.data.length])).toEqual(expected);
  });

  it("file contents are the attachment's bytes (the PDF and the Word document start as they should)", () => {
    const [doc, pdf, htm] = readTnef(fixture("corpus/mimekit/tnef/MAPI_ATTACH_DATA_OBJ.tnef")).files;
    expect(doc!.data.subarray(0, 4).toString("hex")).toBe("d0cf11e0");
    expect(pdf!.data.subarray(0, 5).toString("latin1")).toBe("%PDF-");
    expect(htm!.data.subarray(0, 5).toString("latin1")).toBe("<html");
  });

  it("keeps MIME types and Content-IDs of inline images", () => {
    const images = readTnef(fixture("corpus/mimekit/tnef/unicode-mapi-attr-name.tnef")).files.slice(1);
    expect(images.map((image) => [image.mimeType, image.contentId])).toEqual([
      ["image/png", "image001.png@01CF8C82.F4A2A290"],
      ["image/png", "image002.png@01CF8C82.F4A2A290"],
      ["image/png", "image003.png@01CF8C82.F4A2A290"],
    ]);
  });

  it("stops at data it cannot read and says so, keeping what came before", () => {
    const panic = readTnef(fixture("corpus/mimekit/tnef/panic.tnef"));
    expect(panic.files.map((entry) => entry.name)).toEqual(["image001.jpg", "image002.jpg", "image003.png"]);
    expect(panic.warnings).toEqual([expect.stringMatching(/^unexpected data at byte \d+/)]);
    expect(readTnef(fixture("corpus/mimekit/tnef/garbage-at-end.tnef")).warnings).toEqual(["1 bytes after the last TNEF attribute were ignored"]);
  });
});

describe("readTnef on broken and hostile streams", () => {
  const good = fixture("corpus/mimekit/tnef/two-files.tnef");

  it("every truncation of a real stream reads without throwing and never invents bytes", () => {
    for (let length = 0; length <= good.length; length += 7) {
      const contents = readTnef(good.subarray(0, length));
      for (const file of contents.files) expect(good.includes(file.data)).toBe(true);
    }
  });

  it("random bytes after a valid signature", () => {
    let seed = 42;
    const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 256;
    for (let round = 0; round < 200; round++) {
      const noise = Buffer.from(Array.from({ length: 64 + (round % 300) }, random));
      const stream = Buffer.concat([good.subarray(0, 6), noise]);
      expect(() => readTnef(stream)).not.toThrow();
    }
  });

  it("an attribute claiming 4 GB, and a property list claiming a billion properties", () => {
    const huge = tnef([attribute(2, 0x00069002, Buffer.alloc(14)), rawAttribute(2, 0x0006800f, 0xffffffff, Buffer.alloc(10))]);
    expect(readTnef(huge).warnings[0]).toMatch(/is truncated/);
    const props = Buffer.alloc(8);
    props.writeUInt32LE(1_000_000_000, 0);
    const list = readTnef(tnef([attribute(2, 0x00069002, Buffer.alloc(14)), attribute(2, 0x00069005, props)]));
    expect(list.warnings[0]).toMatch(/property count 1000000000 is not plausible/);
  });

  it("an embedded message: its attachments are unpacked, to a bounded depth", () => {
    const inner = tnef([
      attribute(2, 0x00069002, Buffer.alloc(14)),
      attribute(2, 0x00018010, Buffer.from("inner.txt\0")),
      attribute(2, 0x0006800f, Buffer.from("inner file")),
    ]);
    const embedding = (stream: Buffer): Buffer =>
      tnef([
        attribute(2, 0x00069002, Buffer.alloc(14)),
        attribute(2, 0x0006800f, Buffer.from("This attachment is a MAPI 1.0 embedded message and is not supported by this mail system.")),
        attribute(2, 0x00069005, mapiProperties([longProperty(0x3705, 5), objectProperty(0x3701, stream)])),
      ]);
    expect(readTnef(embedding(inner)).files.map((file) => [file.name, file.data.toString()])).toEqual([["inner.txt", "inner file"]]);
    // Nested deeper than real mail goes: the innermost is not unpacked, and that is said.
    const deep = readTnef(embedding(embedding(embedding(inner))));
    expect(deep.files).toEqual([]);
    expect(deep.warnings.at(-1)).toMatch(/was not unpacked|only its attachments/);
  });

  it("not TNEF at all", () => {
    expect(readTnef(Buffer.from("PK\u0003\u0004zip")).warnings).toEqual(["not a TNEF stream (no signature)"]);
  });
});

describe("winmail.dat in a message", () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  function messageWithWinmail(tnefBytes: Buffer, extraAttachmentName = "README"): string {
    return customerMail({
      contentType: 'multipart/mixed; boundary="outlook"',
      body: [
        "--outlook",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "Please see the attached files.",
        "--outlook",
        "Content-Type: text/plain",
        `Content-Disposition: attachment; filename="${extraAttachmentName}"`,
        "",
        "a file the sender attached outside the winmail.dat",
        "--outlook",
        'Content-Type: application/ms-tnef; name="winmail.dat"',
        'Content-Disposition: attachment; filename="winmail.dat"',
        "Content-Transfer-Encoding: base64",
        "",
        ...(tnefBytes.toString("base64").match(/.{1,76}/g) ?? []),
        "--outlook--",
      ],
    });
  }

  it("is unpacked into its files, after the container, with unique safe names and hashes", async () => {
    const parsed = await parse(messageWithWinmail(fixture("corpus/mimekit/tnef/two-files.tnef")));
    expect(parsed.attachments.map((attachment) => [attachment.filename, attachment.extractedFrom ?? null])).toEqual([
      ["README", null],
      ["winmail.dat", null],
      ["AUTHORS", "winmail.dat"],
      ["README (2)", "winmail.dat"], // the message already has a README
    ]);
    for (const attachment of parsed.attachments) {
      expect(attachment.size).toBe(attachment.content!.length);
      expect(attachment.sha256).toBe(sha256(attachment.content!));
    }
    expect(parsed.attachments[2]?.contentType).toBe("application/octet-stream");
    expect(parsed.enrichmentErrors).toEqual([]);
  });

  it("the directory handler writes the unpacked files, and message.json says where they came from", async () => {
    const root = await mkdtemp(join(tmpdir(), "mailfetchd-tnef-"));
    dirs.push(root);
    const raw = Buffer.from(messageWithWinmail(fixture("corpus/mimekit/tnef/MAPI_ATTACH_DATA_OBJ.tnef")));
    const parsed = await parse(raw);
    const handler = createDirectoryHandler({ path: root });
    await handler.deliver(
      {
        id: "m1",
        queue: { name: "support", address: "support@contoso.example" },
        source: { kind: "imap", folder: "INBOX", item: "1:7", uidValidity: "1", uid: 7 },
        raw: rawMessageFromBuffer(raw),
        parsed,
      },
      { signal: new AbortController().signal, logger: pino({ level: "silent" }), attempt: 1 },
    );
    const dir = join(root, "support", "m1");
    expect((await readdir(join(dir, "attachments"))).sort()).toEqual(["README", "VIA_Nytt_1402.doc", "VIA_Nytt_1402.pdf", "VIA_Nytt_14021.htm", "winmail.dat"]);
    const document = JSON.parse(await readFile(join(dir, "message.json"), "utf8")) as DirectoryMessageDocument;
    const pdf = document.attachments.find((entry) => entry.filename === "VIA_Nytt_1402.pdf");
    expect(pdf).toMatchObject({ contentType: "application/pdf", extractedFrom: "winmail.dat", path: "attachments/VIA_Nytt_1402.pdf", size: 213685 });
    expect(sha256(await readFile(join(dir, pdf!.path!)))).toBe(pdf!.sha256);
  });

  it("a winmail.dat that is not TNEF (a real Outlook read receipt with a PNG in it) stays as it is", async () => {
    const parsed = await parseFixture("corpus/zbateson/m4006.txt");
    expect(parsed.attachments.map((attachment) => attachment.filename)).toEqual(["winmail.dat"]);
    expect(parsed.enrichmentErrors).toEqual([]);
  });

  it("a truncated winmail.dat gives what it can and a note, and the message is still delivered", async () => {
    const truncated = fixture("corpus/mimekit/tnef/two-files.tnef").subarray(0, 2500);
    const parsed = await parse(messageWithWinmail(truncated));
    expect(parsed.attachments.map((attachment) => attachment.filename)).toEqual(["README", "winmail.dat", "AUTHORS"]);
    expect(parsed.enrichmentErrors).toEqual([{ enricher: "tnef", error: expect.stringMatching(/^winmail\.dat: TNEF attribute .* is truncated/) }]);
  });

  it("does nothing to a message without TNEF", () => {
    const plain: ParsedAttachment = {
      filename: "a.txt",
      contentType: "text/plain",
      size: 1,
      sha256: sha256(Buffer.from("a")),
      inline: false,
      content: Buffer.from("a"),
    };
    expect(unpackTnefAttachments([plain])).toEqual({ attachments: [plain], warnings: [] });
  });
});

// A minimal TNEF writer for the hostile cases ([MS-OXTNEF] 2.1.3).
function tnef(attributes: Buffer[]): Buffer {
  const header = Buffer.alloc(6);
  header.writeUInt32LE(0x223e9f78, 0);
  header.writeUInt16LE(0x0001, 4);
  return Buffer.concat([header, ...attributes]);
}

function attribute(level: number, id: number, data: Buffer): Buffer {
  return rawAttribute(level, id, data.length, data);
}

function rawAttribute(level: number, id: number, length: number, data: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUInt8(level, 0);
  head.writeUInt32LE(id, 1);
  head.writeUInt32LE(length, 5);
  let checksum = 0;
  for (const byte of data) checksum = (checksum + byte) % 65536;
  const tail = Buffer.alloc(2);
  tail.writeUInt16LE(checksum, 0);
  return Buffer.concat([head, data, tail]);
}

function mapiProperties(properties: Buffer[]): Buffer {
  const count = Buffer.alloc(4);
  count.writeUInt32LE(properties.length, 0);
  return Buffer.concat([count, ...properties]);
}

function longProperty(id: number, value: number): Buffer {
  const property = Buffer.alloc(8);
  property.writeUInt16LE(0x0003, 0);
  property.writeUInt16LE(id, 2);
  property.writeUInt32LE(value, 4);
  return property;
}

/** A PT_OBJECT value: count 1, length, IID (16 bytes) + the object, padded to 4. */
function objectProperty(id: number, object: Buffer): Buffer {
  const value = Buffer.concat([Buffer.from("0703020000000000c000000000000046", "hex"), object]);
  const head = Buffer.alloc(12);
  head.writeUInt16LE(0x000d, 0);
  head.writeUInt16LE(id, 2);
  head.writeUInt32LE(1, 4);
  head.writeUInt32LE(value.length, 8);
  return Buffer.concat([head, value, Buffer.alloc((4 - (value.length % 4)) % 4)]);
}

describe("TNEF across a whole message (issue 13)", () => {
  const container = (files: number, name = "image001.png"): ParsedAttachment => {
    const content = buildTnef(Array.from({ length: files }, (_, i) => ({ name, data: Buffer.from([i & 0xff]) })));
    return { filename: "winmail.dat", contentType: "application/ms-tnef", size: content.length, sha256: sha256(content), inline: false, content };
  };

  it("caps the files at 500 per message, not per winmail.dat (eight containers gave 4,000)", () => {
    const eight = Array.from({ length: 8 }, (_, i) => ({ ...container(400), filename: `winmail${i === 0 ? "" : ` (${i + 1})`}.dat` }));
    const unpacked = unpackTnefAttachments(eight);
    expect(unpacked.attachments.filter((attachment) => attachment.extractedFrom !== undefined)).toHaveLength(500);
    expect(unpacked.warnings).toContainEqual(expect.stringMatching(/more than 500 files in the message's TNEF/));
  });

  it("counts files inside embedded messages against the same budget", () => {
    const budget = tnefBudget();
    const first = readTnef(container(300).content!, 0, budget);
    const second = readTnef(container(300).content!, 0, budget);
    expect(first.files.length + second.files.length).toBe(500);
    expect(budget.files).toBe(0);
  });

  it("names 500 files of one name with one look-up each", () => {
    const unpacked = unpackTnefAttachments([container(500)]);
    const names = unpacked.attachments.map((attachment) => attachment.filename);
    expect(new Set(names).size).toBe(501);
    expect(names.slice(1, 4)).toEqual(["image001.png", "image001 (2).png", "image001 (3).png"]);
  });
});
