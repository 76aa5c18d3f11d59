/**
 * The benchmark corpus: a seeded, generated backlog with the size mix of issue 8, about 70%
 * small text/HTML of 5-50 KB with non-ASCII content, 25% with attachments of 100 KB-2 MB and
 * 5% with attachments of 5-10 MB (10,000 messages, ~9 GB, at scale 1).
 *
 * Written once per run straight into Dovecot's Maildir/new (doveadm save costs ~13 ms a message
 * and copies every byte through a pipe); Dovecot takes them in on the first SELECT. The same
 * files are hard-linked into other mailboxes (the 10-queue drain), costing no disk.
 */
import { createHash } from "node:crypto";
import { chownSync } from "node:fs";
import { link, mkdir, open, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { base64LinesBuffer, seededBytes, seededHtml, seededProse, seededRandom } from "../testbed/generated-mime.js";

export type CorpusKind = "small" | "attachment" | "large";

export interface CorpusEntry {
  readonly index: number;
  readonly kind: CorpusKind;
  /** Body text bytes (small) or decoded attachment bytes (attachment, large). */
  readonly payloadBytes: number;
}

const KB = 1024;
const MB = 1024 * KB;

/** Which messages, in which order, with which sizes: the same for the same seed and count. */
export function planCorpus(count: number, seed: string): CorpusEntry[] {
  const random = seededRandom(`${seed}:plan`);
  const between = (low: number, high: number) => Math.floor(low + random() * (high - low));
  const entries: CorpusEntry[] = [];
  for (let index = 0; index < count; index++) {
    const roll = random();
    if (roll < 0.7) entries.push({ index, kind: "small", payloadBytes: between(5 * KB, 50 * KB) });
    else if (roll < 0.95) entries.push({ index, kind: "attachment", payloadBytes: between(100 * KB, 2 * MB) });
    else entries.push({ index, kind: "large", payloadBytes: between(5 * MB, 10 * MB) });
  }
  return entries;
}

/** One corpus message, byte for byte the same for the same seed and entry. */
export function renderCorpusMessage(entry: CorpusEntry, seed: string, to: string): Buffer {
  const id = `${seed}-${entry.index}`;
  const boundary = `=_bench_${createHash("sha256").update(id).digest("hex").slice(0, 16)}`;
  const date = new Date(Date.UTC(2024, 0, 1) + entry.index * 61_000).toUTCString().replace("GMT", "+0000");
  const head = [
    `From: "Kundin ${entry.index} Müller" <customer${entry.index % 500}@customers.example.test>`,
    `To: <${to}>`,
    `Subject: =?UTF-8?B?${Buffer.from(`Anfrage Nr. ${entry.index}: Rückerstattung für Bestellung`).toString("base64")}?=`,
    `Date: ${date}`,
    `Message-ID: <bench-${createHash("sha256").update(id).digest("hex").slice(0, 24)}@customers.example.test>`,
    `MIME-Version: 1.0`,
  ];
  const textBytes = entry.kind === "small" ? Math.floor(entry.payloadBytes * 0.4) : 2 * KB;
  const htmlBytes = entry.kind === "small" ? Math.floor(entry.payloadBytes * 0.6) : 4 * KB;
  const alternative = [
    `Content-Type: multipart/alternative; boundary="${boundary}-alt"`,
    ``,
    `--${boundary}-alt`,
    `Content-Type: text/plain; charset=utf-8`,
    `Content-Transfer-Encoding: base64`,
    ``,
    base64LinesBuffer(Buffer.from(seededProse(`${id}:text`, textBytes))).toString("latin1"),
    `--${boundary}-alt`,
    `Content-Type: text/html; charset=utf-8`,
    `Content-Transfer-Encoding: base64`,
    ``,
    base64LinesBuffer(Buffer.from(seededHtml(`${id}:html`, htmlBytes))).toString("latin1"),
    `--${boundary}-alt--`,
    ``,
  ];
  if (entry.kind === "small") return Buffer.from([...head, ...alternative].join("\r\n"), "latin1");

  const name = entry.kind === "large" ? `scan-${entry.index}.pdf` : `rechnung-${entry.index}.pdf`;
  const before = Buffer.from(
    [
      ...head,
      `Content-Type: multipart/mixed; boundary="${boundary}"`,
      ``,
      `--${boundary}`,
      ...alternative,
      `--${boundary}`,
      `Content-Type: application/pdf; name="${name}"`,
      `Content-Disposition: attachment; filename="${name}"`,
      `Content-Transfer-Encoding: base64`,
      ``,
      ``,
    ].join("\r\n"),
    "latin1",
  );
  const attachment = base64LinesBuffer(seededBytes(`${id}:attachment`, entry.payloadBytes));
  return Buffer.concat([before, attachment, Buffer.from(`\r\n--${boundary}--\r\n`)]);
}

export interface WrittenCorpus {
  readonly messages: number;
  readonly bytes: number;
  /** The Maildir files, for linking into other mailboxes. */
  readonly files: string[];
}

/**
 * Writes the corpus into `maildir`/new as Dovecot would name the files, owned by `owner` (the
 * uid Dovecot's mail processes run as). Resumable: files already there are kept.
 */
export async function writeCorpus(
  maildir: string,
  entries: readonly CorpusEntry[],
  seed: string,
  to: string,
  owner?: { uid: number; gid: number },
): Promise<WrittenCorpus> {
  const newDir = path.join(maildir, "new");
  for (const sub of ["new", "cur", "tmp"]) await mkdir(path.join(maildir, sub), { recursive: true });
  if (owner)
    for (const dir of [maildir, path.dirname(maildir), ...["new", "cur", "tmp"].map((s) => path.join(maildir, s))]) chownSync(dir, owner.uid, owner.gid);
  const existing = new Set(await readdir(newDir));
  const files: string[] = [];
  let bytes = 0;
  for (const entry of entries) {
    // Sorted names in corpus order; Dovecot assigns UIDs in the order it finds them.
    const name = `${1_700_000_000 + entry.index}.M${String(entry.index).padStart(6, "0")}P1.bench`;
    const file = path.join(newDir, name);
    files.push(file);
    if (existing.has(name)) {
      bytes += (await stat(file)).size;
      continue;
    }
    const raw = renderCorpusMessage(entry, seed, to);
    bytes += raw.length;
    const handle = await open(file, "w", 0o600);
    try {
      await handle.writeFile(raw);
    } finally {
      await handle.close();
    }
    if (owner) chownSync(file, owner.uid, owner.gid);
  }
  return { messages: entries.length, bytes, files };
}

/** Spreads already written corpus files over other mailboxes by hard link (round robin). */
export async function linkCorpus(files: readonly string[], maildirs: readonly string[], owner?: { uid: number; gid: number }): Promise<void> {
  for (const maildir of maildirs) {
    for (const sub of ["new", "cur", "tmp"]) await mkdir(path.join(maildir, sub), { recursive: true });
    if (owner)
      for (const dir of [maildir, path.dirname(maildir), ...["new", "cur", "tmp"].map((s) => path.join(maildir, s))]) chownSync(dir, owner.uid, owner.gid);
  }
  for (const [index, file] of files.entries()) {
    const maildir = maildirs[index % maildirs.length]!;
    await link(file, path.join(maildir, "new", path.basename(file))).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "EEXIST") throw error;
    });
  }
}
