/**
 * Fast, deterministic building blocks for generated test mail of any size (the big-message
 * test, the benchmark corpus): seeded bytes, base64 in 76-character CRLF lines built on
 * Buffers (gigabytes of corpus must not go through JS strings line by line), and a seeded PRNG.
 */
import { createCipheriv, createHash } from "node:crypto";

const LINE_BYTES = 57; // 57 bytes -> 76 base64 characters
const CRLF = Buffer.from("\r\n");

/** `length` pseudo-random bytes, the same for the same seed (AES-CTR keystream). */
export function seededBytes(seed: string, length: number): Buffer {
  const key = createHash("sha256").update(`bytes:${seed}`).digest();
  const cipher = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  return cipher.update(Buffer.alloc(length));
}

/** Base64 of `data` in lines of 76 characters, CRLF-separated, no trailing CRLF. */
export function base64LinesBuffer(data: Buffer): Buffer {
  const encoded = Buffer.from(data.toString("base64"), "latin1");
  const lines = Math.ceil(encoded.length / 76);
  if (lines <= 1) return encoded;
  const out = Buffer.allocUnsafe(encoded.length + (lines - 1) * 2);
  let at = 0;
  for (let line = 0; line < lines; line++) {
    if (line > 0) at += CRLF.copy(out, at);
    at += encoded.copy(out, at, line * 76, Math.min(encoded.length, (line + 1) * 76));
  }
  return out;
}

/** Decoded bytes whose base64 lines take about `encodedBytes`. */
export function decodedSizeFor(encodedBytes: number): number {
  return Math.max(0, Math.floor((encodedBytes * LINE_BYTES) / 78));
}

/** mulberry32: a tiny seeded PRNG for choices (sizes, words); not for secrets. */
export function seededRandom(seed: string): () => number {
  let state = createHash("sha256").update(`prng:${seed}`).digest().readUInt32LE(0);
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = [
  "Bestellung",
  "Rückerstattung",
  "größer",
  "Kundennummer",
  "facture",
  "reçu",
  "délai",
  "échange",
  "pedido",
  "devolución",
  "añadir",
  "zamówienie",
  "dziękuję",
  "spätestens",
  "Grüße",
  "naïve",
  "café",
  "Ελλάδα",
  "заказ",
  "доставка",
  "注文",
  "配送",
  "ありがとう",
  "order",
  "invoice",
  "delivery",
  "refund",
  "account",
  "please",
  "thanks",
  "問題",
  "😀",
];

/** About `bytes` of UTF-8 prose with non-ASCII words, deterministic for the seed. */
export function seededProse(seed: string, bytes: number): string {
  const random = seededRandom(seed);
  const parts: string[] = [];
  let length = 0;
  while (length < bytes) {
    const sentence: string[] = [];
    const words = 6 + Math.floor(random() * 12);
    for (let i = 0; i < words; i++) sentence.push(WORDS[Math.floor(random() * WORDS.length)]!);
    const line = `${sentence.join(" ")}.`;
    parts.push(line);
    length += Buffer.byteLength(line) + 1;
  }
  return parts.join("\n");
}

/** HTML of about `bytes`, paragraphs of seededProse. */
export function seededHtml(seed: string, bytes: number): string {
  const prose = seededProse(seed, Math.floor(bytes * 0.85)).split("\n");
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${prose[0] ?? ""}</title></head><body>\n${prose.map((line, i) => (i % 7 === 0 ? `<h2>${line}</h2>` : `<p style="margin:0 0 8px 0">${line}</p>`)).join("\n")}\n</body></html>`;
}
