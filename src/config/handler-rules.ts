/**
 * Rules for the names and inline values in a webhook's `headers` and a command's `env`.
 * A config file is not a secret store: a value under a credential-like name must be read
 * from a file (`{ file: PATH }`), so it never sits in plaintext beside the rest.
 */

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Set by the HTTP client or by the handler itself; a static value would break the request or the signature. */
const RESERVED_HEADERS = new Set([
  "host",
  "content-type",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "expect",
]);
const RESERVED_HEADER_PREFIXES = ["webhook-", "x-mailfetchd-"];
const RESERVED_ENV_PREFIX = "MAILFETCHD_";
/** Whole words of a name (split at "-" and "_") that say "credential". */
const CREDENTIAL_WORD = /(?:^|[-_])(?:auth|authorization|token|secret|key|apikey|password|passwd|cookie|credential|credentials|signature)(?:$|[-_])/i;

export function looksLikeCredential(name: string): boolean {
  return CREDENTIAL_WORD.test(name);
}

/** What is wrong with one `headers` entry; `inline` is the value when written in the config. */
export function headerEntryProblem(name: string, inline: string | undefined): string | undefined {
  const lower = name.toLowerCase();
  if (!HEADER_NAME.test(name)) return "not a valid HTTP header name: use letters, digits and '-'";
  if (RESERVED_HEADERS.has(lower) || RESERVED_HEADER_PREFIXES.some((prefix) => lower.startsWith(prefix))) {
    return `set by mailfetchd itself (content, signature or metadata): remove it`;
  }
  if (inline === undefined) return undefined;
  if (looksLikeCredential(name)) return credentialInline();
  return headerValueProblem(inline);
}

/** What is wrong with a header value, wherever it came from. */
export function headerValueProblem(value: string): string | undefined {
  // CR or LF would split the header (request smuggling); fetch refuses anything above U+00FF.
  if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value)) return "contains a line break or control character: write the value on one line";
  if (/[^\u0000-\u00ff]/.test(value)) return "contains characters an HTTP header cannot carry: use ASCII (percent-encode the rest)";
  return undefined;
}

/** What is wrong with one `env` entry; `inline` is the value when written in the config. */
export function envEntryProblem(name: string, inline: string | undefined): string | undefined {
  if (!ENV_NAME.test(name)) return "not a valid variable name: use letters, digits and '_', not starting with a digit";
  if (name.toUpperCase().startsWith(RESERVED_ENV_PREFIX)) return `${RESERVED_ENV_PREFIX}* variables carry the message's metadata: choose another name`;
  if (inline === undefined) return undefined;
  if (looksLikeCredential(name)) return credentialInline();
  if (inline.includes("\u0000")) return "contains a NUL character, which no environment variable can hold";
  return undefined;
}

function credentialInline(): string {
  return "looks like a credential, so its value may not be written in the config: write `{ file: PATH }` and put the value in that file (readable only by the daemon's user)";
}
