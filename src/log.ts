/**
 * Structured logs (pino, JSON on stdout), quiet at info. Secrets are kept out twice: by path
 * (any field named like a credential is censored) and by value (every line is scrubbed of the
 * passwords and tokens the daemon holds, in case one hides in an error message).
 */
import pino, { type Logger } from "pino";

const REDACT_PATHS = [
  "password",
  "*.password",
  "accessToken",
  "*.accessToken",
  "refreshToken",
  "*.refreshToken",
  "token",
  "*.token",
  "auth",
  "*.auth",
  "authorization",
  "*.authorization",
  "*.headers.authorization",
];

/**
 * The secrets currently held, by name, so a log line can be scrubbed of their values. A log
 * line is JSON: a password holding `"` or `\` appears there escaped (`\"`, `\\`), and an
 * error that quotes a JSON body escaped twice, so each secret is looked for in all three forms.
 */
export class SecretRegistry {
  private readonly values = new Map<string, readonly string[]>();

  set(name: string, value: string | undefined): void {
    // Short values would scrub innocent text; every real secret here is longer.
    if (value && value.length >= 8) this.values.set(name, formsOf(value));
    else this.values.delete(name);
  }

  scrub(text: string): string {
    let out = text;
    for (const forms of this.values.values()) {
      for (const form of forms) {
        if (out.includes(form)) out = out.split(form).join("[redacted]");
      }
    }
    return out;
  }
}

/** The value as written, as inside a JSON string, and as inside a JSON string inside a JSON string: longest first. */
function formsOf(value: string): string[] {
  const escaped = JSON.stringify(value).slice(1, -1);
  const twice = JSON.stringify(escaped).slice(1, -1);
  return [...new Set([twice, escaped, value])];
}

export function createLogger(options: { level: string; secrets: SecretRegistry; destination?: pino.DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      base: { service: "mailfetchd" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      hooks: { streamWrite: (line) => options.secrets.scrub(line) },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

export type { Logger };
