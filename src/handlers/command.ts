/**
 * Runs a program per message, the way an MDA is run: the raw message on stdin, metadata in
 * MAILFETCHD_* environment variables (command-environment.ts), and the parsed message
 * document in a temp file named by MAILFETCHD_DOCUMENT, removed afterwards.
 *
 *   exit 0                          delivered
 *   exit 75 (EX_TEMPFAIL)           retried with backoff
 *   any other exit, death by signal final: the message is parked as a dead letter
 *   timeout                         the process group is killed (SIGTERM, SIGKILL after a
 *                                   grace), and the message is retried
 *
 * No shell: argv is passed as configured, so nothing in a message can become a command.
 * The program runs in its own process group, and the group is ended (SIGKILL) as soon as the
 * program exits, whatever its exit code, or when it times out: nothing it started in the
 * background outlives it. A program must finish its work before it exits.
 *
 * What the program can see (README "Command handler"): the message (stdin, the document),
 * its environment (command-environment.ts, never the daemon's), and whatever its user may
 * read. Running as the daemon's user, that includes the daemon's files (config, key file,
 * password files, state) and /proc/<daemon pid>/environ; with `uid`/`gid` (daemon as root)
 * it runs as another user and can read none of them.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chown, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { MailfetchdError, PermanentError } from "../errors.js";
import type { DeliverableMessage, DeliveryContext, Handler } from "../interfaces.js";
import { commandEnvironment } from "./command-environment.js";
import { toMessageDocument } from "./message-document.js";
import { OutputTail } from "./output-tail.js";

export interface CommandHandlerOptions {
  /** The handler's name in logs and status; default "command". */
  readonly name?: string;
  /** argv: the program, then its arguments. A program without "/" is looked up in PATH. */
  readonly command: readonly string[];
  readonly timeoutMs?: number;
  /** Extra environment for the program (on top of PATH, LANG, TZ, HOME and the MAILFETCHD_* metadata). */
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** Values never shown in an error reason, even if the program prints them (env values read from files). */
  readonly secretValues?: readonly string[];
  /** Time between SIGTERM and SIGKILL on a timeout. */
  readonly killGraceMs?: number;
  /** Where the per-message document is written; default the OS temp dir. */
  readonly tempDir?: string;
  /** Run the program as this user and group (both or neither; the daemon must run as root). */
  readonly uid?: number;
  readonly gid?: number;
}

export const COMMAND_DEFAULT_TIMEOUT_MS = 60_000;
export const EX_TEMPFAIL = 75;
const DEFAULT_KILL_GRACE_MS = 5_000;
/** How much of stderr goes into an error reason: enough for the last few lines. */
const STDERR_TAIL_BYTES = 1024;
/**
 * After the program exits, a process it left running can hold stderr open for ever; wait
 * this long for the pipe to drain, then stop listening.
 */
const STDIO_DRAIN_MS = 1_000;

type Ending =
  | { readonly kind: "exited"; readonly code: number | null; readonly signal: NodeJS.Signals | null }
  | { readonly kind: "spawn-failed"; readonly error: NodeJS.ErrnoException };

export function createCommandHandler(options: CommandHandlerOptions): Handler {
  const [program, ...args] = options.command;
  if (program === undefined) throw new Error("command handler: `command` needs at least the program");
  const timeoutMs = options.timeoutMs ?? COMMAND_DEFAULT_TIMEOUT_MS;
  const graceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  const secrets = options.secretValues ?? [];
  const runAs = options.uid !== undefined && options.gid !== undefined ? { uid: options.uid, gid: options.gid } : undefined;

  return {
    name: options.name ?? "command",

    async deliver(message: DeliverableMessage, context: DeliveryContext): Promise<void> {
      context.signal.throwIfAborted();
      // Read whole before the program starts: a read failing halfway through a stream would
      // hand it a truncated message, which it might accept (exit 0) and so lose the rest.
      const raw = await message.raw.read();
      // mkdtemp makes the directory 0700: the document holds customer mail.
      const workDir = await mkdtemp(join(options.tempDir ?? tmpdir(), "mailfetchd-command-"));
      try {
        const documentPath = join(workDir, "message.json");
        const document = toMessageDocument(message, [], { rawPath: null });
        await writeFile(documentPath, `${JSON.stringify(document, null, 2)}\n`, { mode: 0o600, flag: "wx" });
        if (runAs) {
          // The program's user, and only it, reads the document.
          await chown(workDir, runAs.uid, runAs.gid);
          await chown(documentPath, runAs.uid, runAs.gid);
        }

        const env = commandEnvironment(process.env, message, { attempt: context.attempt, documentPath }, options.env);
        const stderr = new OutputTail(STDERR_TAIL_BYTES);
        const child = spawn(program, args, { cwd: options.cwd, env, stdio: ["pipe", "ignore", "pipe"], detached: true, ...runAs });
        child.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk));
        // A program may exit without reading its input (a filter that rejects on headers alone).
        child.stdin!.on("error", () => undefined);
        child.stdin!.end(raw);

        const killer = new GroupKiller(child, graceMs);
        const timer = setTimeout(() => killer.kill("timeout"), timeoutMs);
        const onAbort = () => killer.kill("shutdown");
        context.signal.addEventListener("abort", onAbort, { once: true });
        if (context.signal.aborted) onAbort();
        let ending: Ending;
        try {
          // The moment the program exits, what it left running goes too (before stderr drains).
          ending = await endOf(child, () => killer.endGroup());
        } finally {
          clearTimeout(timer);
          context.signal.removeEventListener("abort", onAbort);
          killer.finish();
        }

        const output = () => {
          const tail = stderr.text(secrets);
          return tail ? ` stderr: ${tail}` : "";
        };
        if (ending.kind === "spawn-failed") throw spawnError(program, ending.error, options.cwd);
        if (killer.reason === "shutdown") throw context.signal.reason;
        if (killer.reason === "timeout") {
          throw new MailfetchdError(
            `Command ${program} did not finish within ${timeoutMs / 1000}s; its process group was killed and the message is retried.${output()}`,
            {
              code: "HANDLER_FAILED",
              retryable: true,
              fix: "Find out why it hangs (does it wait for input or a network?), or raise the handler's timeout.",
            },
          );
        }
        if (ending.code === 0) {
          context.logger.debug({ program }, "command accepted the message");
          return;
        }
        if (ending.code === EX_TEMPFAIL) {
          throw new MailfetchdError(`Command ${program} exited 75 (EX_TEMPFAIL): a temporary failure; the message is retried.${output()}`, {
            code: "HANDLER_FAILED",
            retryable: true,
          });
        }
        const how = ending.signal ? `was killed by ${ending.signal}` : `exited ${ending.code}`;
        throw new PermanentError(
          `Command ${program} ${how}: a final refusal (only exit 75 means "try again"), so the message is parked as a dead letter.${output()}`,
        );
      } finally {
        await rm(workDir, { recursive: true, force: true });
      }
    },
  };
}

/** Resolves when the program has exited and its stderr has drained (or STDIO_DRAIN_MS later). */
function endOf(child: ChildProcess, onExit: () => void): Promise<Ending> {
  return new Promise((resolve) => {
    child.on("error", (error: NodeJS.ErrnoException) => {
      // "error" after a successful spawn is a failed kill; only a missing pid means it never ran.
      if (child.pid === undefined) resolve({ kind: "spawn-failed", error });
    });
    child.once("exit", (code, signal) => {
      onExit();
      const ended: Ending = { kind: "exited", code, signal };
      if (child.stderr === null || child.stderr.readableEnded) return resolve(ended);
      const drained = setTimeout(() => {
        child.stderr?.destroy();
        resolve(ended);
      }, STDIO_DRAIN_MS);
      child.stderr.once("close", () => {
        clearTimeout(drained);
        resolve(ended);
      });
    });
  });
}

/** Ends a program and everything it started: SIGTERM to its process group, SIGKILL after a grace. */
class GroupKiller {
  reason?: "timeout" | "shutdown";
  private graceTimer?: NodeJS.Timeout;

  constructor(
    private readonly child: ChildProcess,
    private readonly graceMs: number,
  ) {}

  kill(reason: "timeout" | "shutdown"): void {
    if (this.reason !== undefined || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.reason = reason;
    this.signal("SIGTERM");
    this.graceTimer = setTimeout(() => this.signal("SIGKILL"), this.graceMs);
  }

  /**
   * The program has exited: everything left in its group (background children, even of a
   * program that exited 0) is killed now. The group id stays valid while any member lives, so
   * this reaches exactly what the program started (unless it left the group with setsid).
   */
  endGroup(): void {
    this.signal("SIGKILL");
  }

  /** The delivery is over: the group went at the program's exit (endGroup), so no SIGKILL after a grace. */
  finish(): void {
    clearTimeout(this.graceTimer);
  }

  private signal(signal: NodeJS.Signals): void {
    if (this.child.pid === undefined) return;
    try {
      // detached: the child leads its own group, whose id is its pid; "-pid" is the whole group.
      process.kill(-this.child.pid, signal);
    } catch (error) {
      // ESRCH: nothing left of the group. EPERM: what is left runs as a user we may not signal.
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ESRCH" && code !== "EPERM") throw error;
    }
  }
}

function spawnError(program: string, error: NodeJS.ErrnoException, cwd: string | undefined): MailfetchdError {
  const fix =
    error.code === "ENOENT"
      ? `Check the handler's command: ${program} must exist${program.includes("/") ? "" : " in PATH"}${cwd ? ` and cwd ${cwd} must exist` : ""}.`
      : error.code === "EACCES"
        ? `Make ${program} executable by the user mailfetchd runs as (chmod +x).`
        : undefined;
  return new MailfetchdError(`Command ${program} could not be started (${error.code ?? error.message}); the message is retried.`, {
    code: "HANDLER_FAILED",
    // The program is missing or not executable: a setup problem, fixed outside mailfetchd.
    // Retrying keeps the mail waiting instead of dead-lettering every message meanwhile.
    retryable: true,
    fix,
    cause: error,
  });
}
