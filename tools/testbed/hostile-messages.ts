/**
 * Malformed and unusual messages, generated (deterministically) for the bad-input suite: each
 * class that breaks peer systems' parsers in the wild. Generated rather than stored because
 * several are huge (1 MB of headers, 100-deep nesting, 4 MB single-line bodies).
 */
import { createHash } from "node:crypto";

export interface HostileMessage {
  readonly name: string;
  readonly klass: string;
  readonly raw: Buffer;
}

const CRLF = "\r\n";
const head = (id: string, extra = "") =>
  `From: Mallory <mallory@example.net>${CRLF}To: queue@example.test${CRLF}Subject: hostile ${id}${CRLF}Date: Mon, 2 Nov 2026 10:00:00 +0000${CRLF}Message-ID: <${id}@hostile.example>${CRLF}${extra}`;

export function hostileMessages(): HostileMessage[] {
  const out: HostileMessage[] = [];
  const add = (klass: string, name: string, raw: string | Buffer) => out.push({ klass, name, raw: typeof raw === "string" ? Buffer.from(raw, "latin1") : raw });

  // MIME structure
  add(
    "broken MIME",
    "missing closing boundary",
    `${head("nobound")}MIME-Version: 1.0${CRLF}Content-Type: multipart/mixed; boundary="b1"${CRLF}${CRLF}--b1${CRLF}Content-Type: text/plain${CRLF}${CRLF}hello${CRLF}`,
  );
  add("broken MIME", "boundary never used", `${head("unusedbound")}Content-Type: multipart/mixed; boundary="zz"${CRLF}${CRLF}just text, no parts${CRLF}`);
  add("broken MIME", "boundary missing from header", `${head("nobparam")}Content-Type: multipart/mixed${CRLF}${CRLF}--x${CRLF}${CRLF}a${CRLF}--x--${CRLF}`);
  add("broken MIME", "100-deep nesting", nested(100));
  add("broken MIME", "no header/body separator", `${head("nosep").trimEnd()}`);
  add(
    "encoding",
    "invalid base64",
    `${head("b64")}Content-Type: text/plain; charset=utf-8${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}!!!not*base64***==${CRLF}SGVsbG8=${CRLF}@@@${CRLF}`,
  );
  add(
    "encoding",
    "invalid quoted-printable",
    `${head("qp")}Content-Type: text/plain; charset=utf-8${CRLF}Content-Transfer-Encoding: quoted-printable${CRLF}${CRLF}bad =ZZ escape =${CRLF}=E2=82 truncated utf-8 =C3${CRLF}`,
  );
  add("encoding", "unknown transfer encoding", `${head("xenc")}Content-Transfer-Encoding: x-uuencode-9000${CRLF}${CRLF}begin 644 f${CRLF}${CRLF}`);

  // Charsets
  add(
    "charset",
    "ks_c_5601-1987",
    Buffer.concat([
      Buffer.from(`${head("ks")}Content-Type: text/plain; charset=ks_c_5601-1987${CRLF}Content-Transfer-Encoding: 8bit${CRLF}${CRLF}`, "latin1"),
      Buffer.from([0xc7, 0xd1, 0xb1, 0xb9, 0xbe, 0xee, 0x0d, 0x0a]),
    ]),
  );
  add(
    "charset",
    "gb2312",
    Buffer.concat([
      Buffer.from(`${head("gb")}Content-Type: text/plain; charset=gb2312${CRLF}Content-Transfer-Encoding: 8bit${CRLF}${CRLF}`, "latin1"),
      Buffer.from([0xd6, 0xd0, 0xce, 0xc4, 0x0d, 0x0a]),
    ]),
  );
  add("charset", "iso-2022-jp", `${head("jp")}Content-Type: text/plain; charset=iso-2022-jp${CRLF}${CRLF}\x1b$BF|K\\8l\x1b(B${CRLF}`);
  add(
    "charset",
    "windows-1252 labelled iso-8859-1",
    `${head("cp")}Content-Type: text/plain; charset=iso-8859-1${CRLF}Content-Transfer-Encoding: 8bit${CRLF}${CRLF}\x93quoted\x94 \x80uro${CRLF}`,
  );
  add("charset", "unknown charset", `${head("unk")}Content-Type: text/plain; charset=x-klingon-9${CRLF}${CRLF}qapla'${CRLF}`);
  add(
    "charset",
    "raw 8-bit headers",
    Buffer.concat([
      Buffer.from("From: ", "latin1"),
      Buffer.from(
        "Jürgen Grüße <j@example.net>\r\nSubject: Grüße aus Köln ✓\r\nTo: q@example.test\r\nMessage-ID: <raw8@hostile.example>\r\n\r\nbody\r\n",
        "utf8",
      ),
    ]),
  );

  // Identity
  add("message-id", "missing Message-ID", `From: a@example.net${CRLF}To: q@example.test${CRLF}Subject: no id${CRLF}${CRLF}body${CRLF}`);
  add("message-id", "duplicate Message-ID headers", `${head("dup1")}Message-ID: <dup2@hostile.example>${CRLF}${CRLF}body${CRLF}`);
  add("message-id", "empty message", "");

  // Size and shape
  add(
    "size",
    "1 MB of headers",
    `${head("bighead")}${Array.from({ length: 12_000 }, (_, i) => `X-Filler-${i}: ${"y".repeat(80)}`).join(CRLF)}${CRLF}${CRLF}body${CRLF}`,
  );
  add("size", "4 MB single-line body", `${head("longline")}Content-Type: text/plain${CRLF}${CRLF}${"A".repeat(4 * 1024 * 1024)}${CRLF}`);
  add("size", "2 MB single-line HTML", `${head("longhtml")}Content-Type: text/html${CRLF}${CRLF}<p>${"<b>x</b>".repeat(256 * 1024)}</p>${CRLF}`);
  add("size", "NUL bytes in body", Buffer.concat([Buffer.from(`${head("nul")}${CRLF}`, "latin1"), Buffer.alloc(1024), Buffer.from("end\r\n")]));

  // Attachment names
  for (const [n, filename] of [
    "../../../../etc/passwd",
    "..\\..\\windows\\system32\\evil.dll",
    "/absolute/path.txt",
    "CON",
    "nul.txt",
    "LPT9.log",
    "a\u0001b\u001fc\u007f.txt",
    "\u202Etxt.exe",
    "x".repeat(400) + ".pdf",
    ".",
    "..",
    ".hidden",
    "trailing. . .",
    `invoice.pdf${" ".repeat(60)}.exe`,
    "in\u200bvoice\u2060\ufeff.pdf\u200d",
    "Re\u00a0\u3000\u2003port\ufe0f.docx",
  ].entries()) {
    add("attachment name", `filename ${JSON.stringify(filename).slice(0, 40)}`, attachment(`name${n}`, filename));
  }

  // TNEF
  add(
    "tnef",
    "winmail.dat that is not TNEF",
    `${head("tnef")}Content-Type: multipart/mixed; boundary="t"${CRLF}${CRLF}--t${CRLF}Content-Type: application/ms-tnef; name="winmail.dat"${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}eJ8+IgAAAAAAAA==${CRLF}--t--${CRLF}`,
  );
  return out;
}

function nested(depth: number): string {
  let body = `Content-Type: text/plain${CRLF}${CRLF}the bottom${CRLF}`;
  for (let level = depth; level > 0; level--) {
    body = `Content-Type: multipart/mixed; boundary="n${level}"${CRLF}${CRLF}--n${level}${CRLF}${body}--n${level}--${CRLF}`;
  }
  return `${head("nested")}MIME-Version: 1.0${CRLF}${body}`;
}

function attachment(id: string, filename: string): string {
  const encoded = `=?UTF-8?B?${Buffer.from(filename, "utf8").toString("base64")}?=`;
  return (
    `${head(id)}MIME-Version: 1.0${CRLF}Content-Type: multipart/mixed; boundary="a"${CRLF}${CRLF}` +
    `--a${CRLF}Content-Type: text/plain${CRLF}${CRLF}see attached${CRLF}` +
    `--a${CRLF}Content-Type: application/octet-stream; name="${encoded}"${CRLF}Content-Disposition: attachment; filename="${encoded}"${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}` +
    `${Buffer.from(`content of ${id}`).toString("base64")}${CRLF}--a--${CRLF}`
  );
}

/**
 * Seeded mutations of a message: byte flips, truncation, duplicated and deleted lines, boundary
 * damage. Deterministic for a seed, so a failure can be replayed.
 */
export function mutate(raw: Buffer, seed: string): Buffer {
  const random = seededRandom(seed);
  const pick = (n: number) => Math.floor(random() * n);
  let bytes = Buffer.from(raw);
  const rounds = 1 + pick(4);
  for (let round = 0; round < rounds; round++) {
    switch (pick(6)) {
      case 0: // flip bytes
        for (let i = 0; i < 1 + pick(16) && bytes.length > 0; i++) bytes[pick(bytes.length)] = pick(256);
        break;
      case 1: // truncate
        bytes = bytes.subarray(0, pick(bytes.length + 1));
        break;
      case 2: {
        // duplicate a line
        const lines = bytes.toString("latin1").split("\r\n");
        const at = pick(lines.length);
        lines.splice(at, 0, lines[at] ?? "");
        bytes = Buffer.from(lines.join("\r\n"), "latin1");
        break;
      }
      case 3: {
        // delete a line
        const lines = bytes.toString("latin1").split("\r\n");
        lines.splice(pick(lines.length), 1);
        bytes = Buffer.from(lines.join("\r\n"), "latin1");
        break;
      }
      case 4: // damage boundaries
        bytes = Buffer.from(
          bytes.toString("latin1").replace(/--([\w'()+,./:=?-]{1,70})/g, (m) => (random() < 0.3 ? m.slice(0, -1) : m)),
          "latin1",
        );
        break;
      default: // insert junk
        bytes = Buffer.concat([
          bytes.subarray(0, pick(bytes.length + 1)),
          Buffer.from(Array.from({ length: 1 + pick(64) }, () => pick(256))),
          bytes.subarray(pick(bytes.length + 1)),
        ]);
    }
  }
  return bytes;
}

function seededRandom(seed: string): () => number {
  let state = createHash("sha256").update(seed).digest().readUInt32LE(0) || 1;
  return () => {
    // xorshift32: enough for reproducible fuzzing, not for anything secret
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

/**
 * The worst cases of parse cost a sender controls (issue 13): one generator per class, each
 * filling a message of about `bytes` with the shape that was (or could be) super-linear in
 * some parser or enricher. `npm run bench` parses each at 1x and 4x size and reports CPU ms per
 * MB; the bad-input suite sends each through the daemon.
 */
export interface WorstCaseClass {
  readonly klass: string;
  /** What the shape attacks, for the benchmark table. */
  readonly attacks: string;
  readonly make: (bytes: number) => Buffer;
}

export const WORST_CASE_CLASSES: readonly WorstCaseClass[] = [
  {
    klass: "html <p><li> nesting",
    attacks: "htmlparser2's element stack (li closes only an li on top)",
    make: (bytes) => htmlMessage("pli", fill("<p><li>x", bytes)),
  },
  {
    klass: "html at the depth limit",
    attacks: "htmlparser2's stack at the 512-level limit, then many short elements",
    make: (bytes) => htmlMessage("deep", "<div>".repeat(511) + fill("<b>x</b>", bytes - 2600)),
  },
  {
    klass: "html nested blockquotes",
    attacks: "html-to-text's quote marks (one per level on every line)",
    make: (bytes) => htmlMessage("quotes", "<blockquote>".repeat(510) + fill("word ", bytes - 6200)),
  },
  {
    klass: "html nested lists",
    attacks: "html-to-text's list indentation",
    make: (bytes) => htmlMessage("lists", "<ul><li>".repeat(255) + fill("word ", bytes - 2100)),
  },
  {
    klass: "html attribute patterns",
    attacks: "remote-content patterns over the whole HTML (runs of spaces, <link repeated)",
    make: (bytes) => htmlMessage("attrs", `<div background=${" ".repeat(Math.floor(bytes / 2))}x>a</div>${fill("<link", bytes / 2)}`),
  },
  {
    klass: "css",
    attacks: "postcss on style sheets and style attributes",
    make: (bytes) =>
      htmlMessage(
        "css",
        `<style>${fill("@media x{a{color:red;background:url(//e/x)}", bytes / 2)}</style>${fill('<p style="color:red;background:url(//e/x)">a</p>', bytes / 2)}`,
      ),
  },
  { klass: "tnef", attacks: "files per message and same-name numbering", make: (bytes) => tnefMessage(bytes) },
  { klass: "delivery reports", attacks: "DSN recipients across many status parts", make: (bytes) => dsnMessage(bytes) },
  { klass: "calendar", attacks: "METHOD search across many text/calendar parts", make: (bytes) => calendarMessage(bytes) },
  { klass: "header folding", attacks: "unfolding and encoded words in long headers", make: (bytes) => headerMessage(bytes) },
  { klass: "MIME parts and nesting", attacks: "800 parts of one name, 100-deep multiparts", make: (bytes) => mimePartsMessage(bytes) },
  {
    klass: "reply and quote markers",
    attacks: "quote-marker patterns on every line (label words, then a run of spaces)",
    make: (bytes) => replyMessage(bytes),
  },
];

function fill(unit: string, bytes: number): string {
  return unit.repeat(Math.max(1, Math.floor(bytes / unit.length)));
}

function htmlMessage(id: string, html: string): Buffer {
  return Buffer.from(`${head(`worst-${id}`)}MIME-Version: 1.0${CRLF}Content-Type: text/html; charset=utf-8${CRLF}${CRLF}${html}${CRLF}`, "latin1");
}

function multipart(id: string, type: string, parts: string[], extraHeaders = ""): Buffer {
  const boundary = `worst-${id}`;
  const body = parts.map((part) => `--${boundary}${CRLF}${part}${CRLF}`).join("");
  return Buffer.from(
    `${head(`worst-${id}`, extraHeaders)}MIME-Version: 1.0${CRLF}Content-Type: ${type}; boundary="${boundary}"${CRLF}${CRLF}${body}--${boundary}--${CRLF}`,
    "latin1",
  );
}

/** A TNEF stream (winmail.dat) holding `files`, each with attAttachRendData, attAttachTitle and attAttachData. */
export function buildTnef(files: readonly { name: string; data: Buffer }[]): Buffer {
  const attribute = (level: number, id: number, data: Buffer): Buffer => {
    const header = Buffer.alloc(9);
    header[0] = level;
    header.writeUInt32LE(id >>> 0, 1);
    header.writeUInt32LE(data.length, 5);
    let sum = 0;
    for (const byte of data) sum = (sum + byte) & 0xffff;
    const checksum = Buffer.alloc(2);
    checksum.writeUInt16LE(sum);
    return Buffer.concat([header, data, checksum]);
  };
  const start = Buffer.alloc(6);
  start.writeUInt32LE(0x223e9f78, 0);
  const parts: Buffer[] = [start];
  for (const file of files) {
    parts.push(attribute(2, 0x00069002, Buffer.alloc(14)));
    parts.push(attribute(2, 0x00018010, Buffer.from(`${file.name}\0`, "latin1")));
    parts.push(attribute(2, 0x0006800f, file.data));
  }
  return Buffer.concat(parts);
}

/** Eight winmail.dat parts, each full of tiny files all called "image001.png". */
function tnefMessage(bytes: number): Buffer {
  const perFile = 60; // attributes and name: ~60 bytes per file; base64 adds a third
  const filesPerContainer = Math.max(1, Math.floor(bytes / 8 / 1.37 / perFile));
  const container = buildTnef(Array.from({ length: filesPerContainer }, (_, i) => ({ name: "image001.png", data: Buffer.from([i & 0xff]) })));
  const encoded = container.toString("base64").replace(/.{76}/g, `$&${CRLF}`);
  const part = `Content-Type: application/ms-tnef; name="winmail.dat"${CRLF}Content-Disposition: attachment; filename="winmail.dat"${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}${encoded}`;
  return multipart("tnef", "multipart/mixed", [`Content-Type: text/plain${CRLF}${CRLF}see attached`, ...Array.from({ length: 8 }, () => part)]);
}

function dsnMessage(bytes: number): Buffer {
  const recipient = (i: number) =>
    `Final-Recipient: rfc822; r${i}@example.test${CRLF}Action: failed${CRLF}Status: 5.1.1${CRLF}Diagnostic-Code: smtp; 550 5.1.1 no such user${CRLF}${CRLF}`;
  const partBytes = 16 * 1024;
  const parts = Math.max(1, Math.min(900, Math.floor(bytes / partBytes)));
  const recipients = Math.max(1, Math.floor(bytes / parts / recipient(0).length));
  const status = `Content-Type: message/delivery-status${CRLF}${CRLF}Reporting-MTA: dns; mx.example.test${CRLF}${CRLF}${Array.from({ length: recipients }, (_, i) => recipient(i)).join("")}`;
  return multipart("dsn", 'multipart/report; report-type="delivery-status"', [
    `Content-Type: text/plain${CRLF}${CRLF}undeliverable`,
    ...Array.from({ length: parts }, () => status),
  ]);
}

function calendarMessage(bytes: number): Buffer {
  const partBytes = 64 * 1024;
  const parts = Math.max(1, Math.min(900, Math.floor(bytes / partBytes)));
  const calendar = `Content-Type: text/calendar; charset=utf-8${CRLF}${CRLF}BEGIN:VCALENDAR${CRLF}${fill(`X-FILLER:${"x".repeat(70)}${CRLF}`, bytes / parts - 100)}END:VCALENDAR`;
  return multipart("calendar", "multipart/mixed", [`Content-Type: text/plain${CRLF}${CRLF}invite`, ...Array.from({ length: parts }, () => calendar)]);
}

/** Folded headers and encoded words, just under mailparser's 1 MB header limit at most. */
function headerMessage(bytes: number): Buffer {
  // mailsplit counts each header line as at least a minimum cost: lines of ~76 characters fit the most in.
  const budget = Math.min(bytes, 700 * 1024);
  const subject = `Subject: ${fill(`=?utf-8?Q?R=C3=A9ponse_R=C3=A9ponse_R=C3=A9ponse_R=C3=A9ponse?=${CRLF} `, budget / 3)}x`;
  const references = `References: ${fill(`<${"r".repeat(24)}@example.test> <${"s".repeat(24)}@example.test>${CRLF} `, budget / 3)}<last@example.test>`;
  const folded = `X-Folded: ${fill(`${"a".repeat(72)}${CRLF} `, budget / 3)}z`;
  return Buffer.from(
    `From: Mallory <mallory@example.net>${CRLF}To: queue@example.test${CRLF}${subject}${CRLF}${references}${CRLF}${folded}${CRLF}Message-ID: <worst-headers@hostile.example>${CRLF}${CRLF}body${CRLF}`,
    "latin1",
  );
}

/** Many parts all named the same (mailparser stops at 1000), in a 100-deep multipart. */
function mimePartsMessage(bytes: number): Buffer {
  const parts = Math.max(1, Math.min(800, Math.floor(bytes / 200)));
  const perPart = Math.max(1, Math.floor(bytes / parts) - 150);
  const part = `Content-Type: application/octet-stream${CRLF}Content-Disposition: attachment; filename="invoice.pdf"${CRLF}${CRLF}${"x".repeat(perPart)}`;
  let inner = multipart(
    "parts",
    "multipart/mixed",
    Array.from({ length: parts }, () => part),
  ).toString("latin1");
  inner = inner.slice(inner.indexOf("Content-Type: multipart/mixed"));
  for (let level = 0; level < 100; level++)
    inner = `Content-Type: multipart/mixed; boundary="n${level}"${CRLF}${CRLF}--n${level}${CRLF}${inner}${CRLF}--n${level}--`;
  return Buffer.from(`${head("worst-mime")}MIME-Version: 1.0${CRLF}${inner}${CRLF}`, "latin1");
}

/**
 * A reply whose body is all almost-markers: From: lines and "On ... wrote" starts, never a full
 * header block, and label words followed by a long run of spaces without the colon (the label
 * patterns were quadratic in that run: 3.6 ms a line).
 */
function replyMessage(bytes: number): Buffer {
  const unit = `From: someone${CRLF}On Monday someone${CRLF}> q${CRLF}answer${CRLF}From${" ".repeat(900)}x${CRLF}写道${" ".repeat(900)}x${CRLF}`;
  return Buffer.from(
    `${head("worst-reply", `In-Reply-To: <earlier@example.test>${CRLF}`)}Content-Type: text/plain; charset=utf-8${CRLF}${CRLF}${fill(unit, bytes)}${CRLF}`,
    "utf8",
  );
}
