/**
 * Sender-controlled and receiver-controlled text made safe to put on one line: in an error
 * reason, a log field, an environment variable or an HTTP header. A subject can carry any
 * byte (RFC 2047), and a receiver's error page can be megabytes of HTML.
 */

// C0 controls (NUL, CR, LF included), DEL, C1 controls, bidi overrides and isolates, line and
// paragraph separators, the BOM: nothing that breaks a line or reorders what a reader sees.
const CONTROL_OR_INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]+/g;

/** `text` on one line (controls become a space), trimmed, cut to `maxChars` with an ellipsis. */
export function oneLine(text: string, maxChars: number): string {
  const flat = text.replace(CONTROL_OR_INVISIBLE, " ").replace(/ {2,}/g, " ").trim();
  if (flat.length <= maxChars) return flat;
  // Never cut a surrogate pair in half: a lone surrogate is not valid UTF-8 anywhere.
  let cut = maxChars - 1;
  if (/[\ud800-\udbff]/.test(flat.charAt(cut - 1))) cut--;
  return `${flat.slice(0, cut)}…`;
}

/** `text` with every value in `secrets` replaced; for text a receiver or a program echoed back. */
export function withoutSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= 4 && out.includes(secret)) out = out.split(secret).join("[redacted]");
  }
  return out;
}

/**
 * A value for an HTTP header: printable ASCII kept, everything else (and "%") percent-encoded
 * as UTF-8, so `decodeURIComponent` on the receiver gives back exactly the original.
 */
export function headerValue(text: string): string {
  // encodeURIComponent throws on a lone surrogate; a parser can hand us one.
  const wellFormed = text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
  return wellFormed.replace(/[^\x20-\x24\x26-\x7e]/gu, (char) => encodeURIComponent(char));
}
