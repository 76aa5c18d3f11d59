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

/** The secrets currently held, by name, so a log line can be scrubbed of their values. */
export class SecretRegistry {
  private readonly values = new Map<string, string>();

  set(name: string, value: string | undefined): void {
    // Short values would scrub innocent text; every real secret here is longer.
    if (value && value.length >= 8) this.values.set(name, value);
    else this.values.delete(name);
  }

  scrub(text: string): string {
    let out = text;
    for (const value of this.values.values()) {
      if (out.includes(value)) out = out.split(value).join("[redacted]");
    }
    return out;
  }
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
