/**
 * Runs one mailfetchd command (dist/cli.js) as its own process, as an operator would, and
 * collects what it printed. `onOutput` sees stdout as it arrives, so a test can act on the
 * device code prompt while `login` waits.
 */
import { spawn } from "node:child_process";
import { CLI } from "./daemon-process.js";

export interface CommandResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runCli(args: string[], options: { onOutput?: (stdoutSoFar: string) => void; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`mailfetchd ${args.join(" ")} did not finish within ${options.timeoutMs ?? 30_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 30_000);
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      options.onOutput?.(stdout);
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The user code in Microsoft's device code message ("... enter the code ABCD12345 to authenticate."). */
export function userCodeIn(output: string): string | undefined {
  return /enter the code ([A-Z0-9]+) to authenticate/.exec(output)?.[1];
}
