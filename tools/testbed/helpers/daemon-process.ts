/**
 * Runs the built daemon (dist/cli.js) as its own process, the way an operator does, and
 * collects its JSON log lines for assertions.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { REPO_ROOT } from "../../repo-root.js";

export const CLI = path.join(REPO_ROOT, "dist", "cli.js");

export interface LogLine {
  level: number;
  msg: string;
  queue?: string;
  messageId?: string;
  handler?: string;
  code?: string;
  [key: string]: unknown;
}

export class DaemonProcess {
  readonly lines: LogLine[] = [];
  readonly rawOutput: string[] = [];
  private child?: ChildProcess;
  private exited?: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    private readonly configFile: string,
    private readonly env: NodeJS.ProcessEnv = {},
  ) {}

  start(): void {
    const child = spawn(process.execPath, [CLI, "run", "--config", this.configFile], {
      env: { ...process.env, ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    let buffered = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      this.rawOutput.push(chunk);
      buffered += chunk;
      const parts = buffered.split("\n");
      buffered = parts.pop() ?? "";
      for (const part of parts) if (part.trim()) this.lines.push(JSON.parse(part) as LogLine);
    });
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => this.rawOutput.push(chunk));
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    // A graceful signal before the daemon has set up its handling would kill it outright: wait
    // for its start line (logged at info and below) unless it has already ended.
    if (signal !== "SIGKILL") {
      let ended = false;
      void this.exited!.then(() => (ended = true));
      await this.waitFor("the daemon to have started", () => ended || this.lines.some((l) => l.msg === "mailfetchd started"), 30_000);
    }
    this.child?.kill(signal);
    return this.exited!;
  }

  /** Sends a signal without waiting for the exit. */
  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  /** Polls `condition` until true; fails with the last log lines when it never is. */
  async waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await condition()) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(
      `timed out waiting for ${what} (daemon pid ${this.child?.pid}, exit ${this.child?.exitCode}, signal ${this.child?.signalCode}, ${this.lines.length} lines); last log lines:\n${this.lines
        .slice(-15)
        .map((l) => JSON.stringify(l))
        .join("\n")}\n${this.rawOutput.slice(-3).join("")}`,
    );
  }
}
