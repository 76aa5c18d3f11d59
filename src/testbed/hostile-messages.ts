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
  add("broken MIME", "missing closing boundary", `${head("nobound")}MIME-Version: 1.0${CRLF}Content-Type: multipart/mixed; boundary="b1"${CRLF}${CRLF}--b1${CRLF}Content-Type: text/plain${CRLF}${CRLF}hello${CRLF}`);
  add("broken MIME", "boundary never used", `${head("unusedbound")}Content-Type: multipart/mixed; boundary="zz"${CRLF}${CRLF}just text, no parts${CRLF}`);
  add("broken MIME", "boundary missing from header", `${head("nobparam")}Content-Type: multipart/mixed${CRLF}${CRLF}--x${CRLF}${CRLF}a${CRLF}--x--${CRLF}`);
  add("broken MIME", "100-deep nesting", nested(100));
  add("broken MIME", "no header/body separator", `${head("nosep").trimEnd()}`);
  add("encoding", "invalid base64", `${head("b64")}Content-Type: text/plain; charset=utf-8${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}!!!not*base64***==${CRLF}SGVsbG8=${CRLF}@@@${CRLF}`);
  add("encoding", "invalid quoted-printable", `${head("qp")}Content-Type: text/plain; charset=utf-8${CRLF}Content-Transfer-Encoding: quoted-printable${CRLF}${CRLF}bad =ZZ escape =${CRLF}=E2=82 truncated utf-8 =C3${CRLF}`);
  add("encoding", "unknown transfer encoding", `${head("xenc")}Content-Transfer-Encoding: x-uuencode-9000${CRLF}${CRLF}begin 644 f${CRLF}${CRLF}`);

  // Charsets
  add("charset", "ks_c_5601-1987", Buffer.concat([Buffer.from(`${head("ks")}Content-Type: text/plain; charset=ks_c_5601-1987${CRLF}Content-Transfer-Encoding: 8bit${CRLF}${CRLF}`, "latin1"), Buffer.from([0xc7, 0xd1, 0xb1, 0xb9, 0xbe, 0xee, 0x0d, 0x0a])]));
  add("charset", "gb2312", Buffer.concat([Buffer.from(`${head("gb")}Content-Type: text/plain; charset=gb2312${CRLF}Content-Transfer-Encoding: 8bit${CRLF}${CRLF}`, "latin1"), Buffer.from([0xd6, 0xd0, 0xce, 0xc4, 0x0d, 0x0a])]));
  add("charset", "iso-2022-jp", `${head("jp")}Content-Type: text/plain; charset=iso-2022-jp${CRLF}${CRLF}\x1b$BF|K\\8l\x1b(B${CRLF}`);
  add("charset", "windows-1252 labelled iso-8859-1", `${head("cp")}Content-Type: text/plain; charset=iso-8859-1${CRLF}Content-Transfer-Encoding: 8bit${CRLF}${CRLF}\x93quoted\x94 \x80uro${CRLF}`);
  add("charset", "unknown charset", `${head("unk")}Content-Type: text/plain; charset=x-klingon-9${CRLF}${CRLF}qapla'${CRLF}`);
  add("charset", "raw 8-bit headers", Buffer.concat([Buffer.from("From: ", "latin1"), Buffer.from("Jürgen Grüße <j@example.net>\r\nSubject: Grüße aus Köln ✓\r\nTo: q@example.test\r\nMessage-ID: <raw8@hostile.example>\r\n\r\nbody\r\n", "utf8")]));

  // Identity
  add("message-id", "missing Message-ID", `From: a@example.net${CRLF}To: q@example.test${CRLF}Subject: no id${CRLF}${CRLF}body${CRLF}`);
  add("message-id", "duplicate Message-ID headers", `${head("dup1")}Message-ID: <dup2@hostile.example>${CRLF}${CRLF}body${CRLF}`);
  add("message-id", "empty message", "");

  // Size and shape
  add("size", "1 MB of headers", `${head("bighead")}${Array.from({ length: 12_000 }, (_, i) => `X-Filler-${i}: ${"y".repeat(80)}`).join(CRLF)}${CRLF}${CRLF}body${CRLF}`);
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
  ].entries()) {
    add("attachment name", `filename ${JSON.stringify(filename).slice(0, 40)}`, attachment(`name${n}`, filename));
  }

  // TNEF
  add("tnef", "winmail.dat that is not TNEF", `${head("tnef")}Content-Type: multipart/mixed; boundary="t"${CRLF}${CRLF}--t${CRLF}Content-Type: application/ms-tnef; name="winmail.dat"${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}eJ8+IgAAAAAAAA==${CRLF}--t--${CRLF}`);
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
        bytes = Buffer.from(bytes.toString("latin1").replace(/--([\w'()+,./:=?-]{1,70})/g, (m) => (random() < 0.3 ? m.slice(0, -1) : m)), "latin1");
        break;
      default: // insert junk
        bytes = Buffer.concat([bytes.subarray(0, pick(bytes.length + 1)), Buffer.from(Array.from({ length: 1 + pick(64) }, () => pick(256))), bytes.subarray(pick(bytes.length + 1))]);
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
