/**
 * The few MIME encodings the sample message generator needs, written out so the generated
 * bytes are exactly what we intend (a MIME library would "fix" the hostile cases away).
 */

const CRLF = "\r\n";
const MAX_LINE = 76;

/** Base64 in lines of 76 characters (RFC 2045 6.8). */
export function base64Lines(data: Buffer): string {
  const encoded = data.toString("base64");
  const lines: string[] = [];
  for (let offset = 0; offset < encoded.length; offset += MAX_LINE) lines.push(encoded.slice(offset, offset + MAX_LINE));
  return lines.join(CRLF);
}

/** Quoted-printable of the given bytes, soft line breaks keeping lines within 76 characters. */
export function quotedPrintable(data: Buffer): string {
  const text = data.toString("latin1");
  const hardLines = text.split("\r\n");
  return hardLines.map((line) => softWrap(encodeQpLine(line))).join(CRLF);
}

function encodeQpLine(line: string): string[] {
  const tokens: string[] = [];
  for (let index = 0; index < line.length; index += 1) {
    const code = line.charCodeAt(index);
    const isLast = index === line.length - 1;
    const printable = (code >= 33 && code <= 126 && code !== 61) || ((code === 32 || code === 9) && !isLast);
    tokens.push(printable ? (line[index] ?? "") : `=${code.toString(16).toUpperCase().padStart(2, "0")}`);
  }
  return tokens;
}

/** Joins encoded tokens, inserting "=" CRLF before a line would exceed 76 characters. */
function softWrap(tokens: string[]): string {
  let output = "";
  let lineLength = 0;
  for (const token of tokens) {
    // Keep room for the "=" of the soft break.
    if (lineLength + token.length > MAX_LINE - 1) {
      output += `=${CRLF}`;
      lineLength = 0;
    }
    output += token;
    lineLength += token.length;
  }
  return output;
}

/** An RFC 2047 "B" encoded-word of bytes already in `charset`. */
export function encodedWordB(charset: string, bytes: Buffer): string {
  return `=?${charset}?B?${bytes.toString("base64")}?=`;
}

/**
 * UTF-8 text as a folded sequence of "B" encoded-words, each within RFC 2047's 75 characters
 * and split between characters (a word may not end inside a multi-byte character).
 */
export function encodedWordsUtf8(text: string): string {
  const maxBytesPerWord = 39; // 52 base64 characters + 12 of "=?UTF-8?B?...?=": 64
  const words: string[] = [];
  let chunk = "";
  for (const char of text) {
    if (Buffer.byteLength(chunk + char, "utf8") > maxBytesPerWord) {
      words.push(encodedWordB("UTF-8", Buffer.from(chunk, "utf8")));
      chunk = "";
    }
    chunk += char;
  }
  if (chunk) words.push(encodedWordB("UTF-8", Buffer.from(chunk, "utf8")));
  return words.join(`${CRLF} `);
}

/** An RFC 2047 "Q" encoded-word of bytes already in `charset` ("_" is a space). */
export function encodedWordQ(charset: string, bytes: Buffer): string {
  let encoded = "";
  for (const byte of bytes) {
    if (byte === 0x20) encoded += "_";
    else if ((byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)) encoded += String.fromCharCode(byte);
    else encoded += `=${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return `=?${charset}?Q?${encoded}?=`;
}

/** RFC 2231 extended parameter value: UTF-8 percent-encoded (`name*=UTF-8''...`). */
export function rfc2231Value(value: string): string {
  return `UTF-8''${[...Buffer.from(value, "utf8")].map((byte) => (isAttributeChar(byte) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`)).join("")}`;
}

/**
 * An RFC 2231 parameter split into numbered sections (`name*0*=UTF-8''...; name*1*=...`),
 * folded one section per line.
 */
export function rfc2231Continuations(name: string, value: string, sectionLength = 40): string {
  const encoded = rfc2231Value(value).slice("UTF-8''".length);
  const sections: string[] = [];
  let offset = 0;
  while (offset < encoded.length) {
    let end = Math.min(offset + sectionLength, encoded.length);
    // Never split a %XX escape.
    const percent = encoded.lastIndexOf("%", end - 1);
    if (percent > end - 3 && percent >= offset && end < encoded.length) end = percent;
    sections.push(encoded.slice(offset, end));
    offset = end;
  }
  return sections.map((section, index) => `${name}*${index}*=${index === 0 ? "UTF-8''" : ""}${section}`).join(`;${CRLF} `);
}

function isAttributeChar(byte: number): boolean {
  return (
    (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || "!#$&+-.^_`|~".includes(String.fromCharCode(byte))
  );
}

/** A quoted-string (RFC 5322 3.2.4): backslash and double quote escaped. */
export function quotedString(value: string): string {
  return `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/**
 * Windows-1252 bytes of a string: Latin-1 plus the typographic characters Windows puts in
 * 0x80-0x9F (what Outlook on Windows sends). Node has no encoder for it.
 */
export function windows1252(text: string): Buffer {
  const extras: Record<string, number> = {
    "€": 0x80,
    "‚": 0x82,
    "„": 0x84,
    "…": 0x85,
    "‘": 0x91,
    "’": 0x92,
    "“": 0x93,
    "”": 0x94,
    "–": 0x96,
    "—": 0x97,
    "™": 0x99,
  };
  return Buffer.from(
    [...text].map((char) => {
      const extra = extras[char];
      if (extra !== undefined) return extra;
      const code = char.codePointAt(0) ?? 0x3f;
      if (code > 0xff) throw new Error(`windows-1252 cannot encode ${char}`);
      return code;
    }),
  );
}

/** ISO-8859-1 bytes of a string that only uses Latin-1 characters. */
export function latin1(text: string): Buffer {
  for (const char of text) {
    if ((char.codePointAt(0) ?? 0) > 0xff) throw new Error(`ISO-8859-1 cannot encode ${char}`);
  }
  return Buffer.from(text, "latin1");
}
