/**
 * Turns a validated handler block into what the daemon runs: relative paths resolved against
 * the config file's directory, `{ file: PATH }` values and secret files read once, defaults
 * applied. Problems are collected (with the key and the fix), never thrown one at a time.
 */
import { accessSync, constants, statSync } from "node:fs";
import { parseSigningSecrets } from "../handlers/standard-webhooks.js";
import { isLoopbackHost } from "../support/listen-address.js";
import { headerValueProblem } from "./handler-rules.js";
import { parseByteSize, parseInterval, type HandlerConfig, type RawHandlerConfig } from "./schema.js";

export interface HandlerResolution {
  /** The handler's key path, e.g. "queues[0].handlers[1]". */
  readonly at: string;
  readonly resolvePath: (file: string) => string;
  /** Reads a secret file (one trailing newline dropped); records a problem and returns undefined when it cannot. */
  readonly readSecret: (key: string, file: string) => string | undefined;
  readonly problems: string[];
}

const DEFAULTS = { webhookTimeout: "30s", commandTimeout: "60s", inlineAttachmentsUpTo: 1024 * 1024 };

type NamedValues = Readonly<Record<string, string | { readonly file: string }>>;

export function resolveHandler(raw: RawHandlerConfig, context: HandlerResolution): HandlerConfig {
  const { at, resolvePath, readSecret, problems } = context;
  switch (raw.type) {
    case "directory":
      return { ...raw, path: resolvePath(raw.path) };

    case "webhook": {
      const secretValues: string[] = [];
      let secret: string | undefined;
      if (raw.secretFile !== undefined) {
        secret = readSecret(`${at}.secretFile`, raw.secretFile);
        if (secret !== undefined) {
          secretValues.push(
            ...secret
              .split(/\r?\n/)
              .map((line) => line.trim())
              .filter(Boolean),
          );
          try {
            parseSigningSecrets(secret);
          } catch (error) {
            problems.push(`  ${at}.secretFile: ${raw.secretFile}: ${(error as Error).message}`);
          }
        }
      }
      const headers = readNamedValues(raw.headers, `${at}.headers`, context, secretValues, headerValueProblem);
      const url = new URL(raw.url);
      if (url.protocol === "http:" && !isLoopbackHost(url.hostname.replace(/^\[|\]$/g, "")) && raw.allowCleartext !== true) {
        problems.push(
          `  ${at}.url: http:// to ${url.hostname} sends every message (and the headers) across the network in clear text: use https://, or, if the network between is trusted, set allowCleartext: true on this handler`,
        );
      }
      return {
        type: "webhook",
        name: raw.name,
        url: raw.url,
        secret,
        format: raw.format ?? "json",
        timeoutMs: parseInterval(raw.timeout ?? DEFAULTS.webhookTimeout)!,
        inlineAttachmentsUpTo: raw.inlineAttachmentsUpTo === undefined ? DEFAULTS.inlineAttachmentsUpTo : (parseByteSize(raw.inlineAttachmentsUpTo) ?? 0),
        headers,
        secretValues,
        allowCleartext: raw.allowCleartext,
      };
    }

    case "command": {
      const secretValues: string[] = [];
      const [program, ...args] = raw.command;
      // "route-mail" is looked up in PATH when run; "./route-mail" or "bin/route-mail" is a file beside the config.
      const resolved = program !== undefined && program.includes("/") ? resolvePath(program) : program;
      if (resolved !== undefined && resolved.includes("/")) {
        const problem = unusable(() => accessSync(resolved, constants.X_OK));
        if (problem)
          problems.push(`  ${at}.command[0]: ${resolved} cannot be run (${problem}): check the path and that the daemon's user may execute it (chmod +x)`);
      }
      const cwd = raw.cwd === undefined ? undefined : resolvePath(raw.cwd);
      if (cwd !== undefined) {
        const problem = unusable(() => {
          if (!statSync(cwd).isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
        });
        if (problem) problems.push(`  ${at}.cwd: ${cwd} is not a usable directory (${problem}): create it or correct the path`);
      }
      const env = readNamedValues(raw.env, `${at}.env`, context, secretValues, (value) =>
        value.includes("\u0000") ? "contains a NUL character, which no environment variable can hold" : undefined,
      );
      runAsProblems(raw, at, problems);
      return {
        type: "command",
        name: raw.name,
        command: resolved === undefined ? [] : [resolved, ...args],
        timeoutMs: parseInterval(raw.timeout ?? DEFAULTS.commandTimeout)!,
        env,
        cwd,
        secretValues,
        ...(raw.uid !== undefined && raw.gid !== undefined ? { uid: raw.uid, gid: raw.gid } : {}),
      };
    }
  }
}

/** Another user for the program: both ids, and a daemon allowed to switch to them (root). */
function runAsProblems(raw: Extract<RawHandlerConfig, { type: "command" }>, at: string, problems: string[]): void {
  if (raw.uid === undefined && raw.gid === undefined) return;
  if (raw.uid === undefined || raw.gid === undefined) {
    problems.push(
      `  ${at}.${raw.uid === undefined ? "uid" : "gid"}: missing: give both uid and gid (numbers, e.g. uid: 65534, gid: 65534 for nobody), or neither`,
    );
    return;
  }
  const daemonUid = process.getuid?.();
  if (daemonUid !== undefined && daemonUid !== 0 && (raw.uid !== daemonUid || raw.gid !== process.getgid?.())) {
    problems.push(
      `  ${at}.uid: the daemon runs as uid ${daemonUid}, not root, so it cannot start programs as uid ${raw.uid}: remove uid and gid, or run the daemon as root (then each program runs as the user named here)`,
    );
  }
}

/** Inline values as written; `{ file }` values read (and remembered as secrets). */
function readNamedValues(
  entries: NamedValues | undefined,
  key: string,
  context: HandlerResolution,
  secretValues: string[],
  valueProblem: (value: string) => string | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(entries ?? {})) {
    if (typeof value === "string") {
      out[name] = value;
      continue;
    }
    const read = context.readSecret(`${key}.${name}.file`, value.file);
    if (read === undefined) continue;
    const problem = valueProblem(read);
    // The problem names the file, never its content.
    if (problem) context.problems.push(`  ${key}.${name}.file: the content of ${value.file} ${problem}`);
    out[name] = read;
    secretValues.push(read);
  }
  return out;
}

function unusable(check: () => void): string | undefined {
  try {
    check();
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? "error";
  }
}
