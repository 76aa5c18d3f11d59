/**
 * The parent's side of tools/testbed/daemon-probe.ts: starts the daemon as a child process,
 * collects its events, asks for its vitals, stops it.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ProbeEvent, ProbeMessage, ProbeVitals } from "./daemon-probe.js";

const PROBE = fileURLToPath(new URL("./daemon-probe.js", import.meta.url));

export class ProbeProcess {
  readonly events: ProbeEvent[] = [];
  /** Whatever the daemon wrote (its JSON log lines); the last lines explain a failure. */
  readonly output: string[] = [];
  private child?: ChildProcess;
  private exited?: Promise<number | null>;
  private pendingVitals: Array<(vitals: ProbeVitals) => void> = [];
  private readonly listeners = new Set<(event: ProbeEvent) => void>();
  private readonly outputListeners = new Set<(text: string) => void>();

  constructor(
    private readonly configFile: string,
    /** `script`: the compiled probe; tests running from source pass dist-tools/tools/testbed/daemon-probe.js. */
    private readonly options: { execArgv?: string[]; env?: NodeJS.ProcessEnv; script?: string } = {},
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Resolves once the daemon has started (its queues begin fetching then). */
  start(): Promise<void> {
    const child = fork(this.options.script ?? PROBE, [this.configFile], {
      execArgv: this.options.execArgv ?? [],
      env: { ...process.env, ...this.options.env },
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    this.child = child;
    const keep = (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      for (const listener of this.outputListeners) listener(text);
      this.output.push(text);
      if (this.output.length > 200) this.output.splice(0, 100);
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    return new Promise((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`daemon probe exited (code ${code}) before starting:\n${this.tail()}`)));
      child.on("message", (message: ProbeMessage) => {
        if (message.type === "event") {
          this.events.push(message);
          for (const listener of this.listeners) listener(message);
        } else if (message.type === "vitals") {
          this.pendingVitals.shift()?.(message);
        } else if (message.type === "started") {
          resolve();
        } else if (message.type === "failed") {
          reject(new Error(`daemon probe failed: ${message.error}\n${this.tail()}`));
        }
      });
    });
  }

  /** Called for every event from now on; returns the unsubscribe function. */
  onEvent(listener: (event: ProbeEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called with every chunk the daemon writes (its log), from now on. */
  onOutput(listener: (text: string) => void): () => void {
    this.outputListeners.add(listener);
    return () => this.outputListeners.delete(listener);
  }

  count(name: ProbeEvent["name"], queue?: string): number {
    return this.events.filter((e) => e.name === name && (queue === undefined || e.queue === queue)).length;
  }

  vitals(): Promise<ProbeVitals> {
    return new Promise((resolve) => {
      this.pendingVitals.push(resolve);
      this.child?.send({ type: "vitals" });
    });
  }

  /** Event-loop delay and CPU are measured from now on. */
  reset(): void {
    this.child?.send({ type: "reset" });
  }

  /** Polls until `condition` holds; fails with the daemon's last output when it never does. */
  async waitFor(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${this.tail()}`);
      if (this.child?.exitCode !== null) throw new Error(`daemon probe exited while waiting for ${what}:\n${this.tail()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async stop(): Promise<number | null> {
    if (!this.child || this.child.exitCode !== null) return this.child?.exitCode ?? null;
    this.child.send({ type: "stop" });
    const timer = setTimeout(() => this.child?.kill("SIGKILL"), 30_000);
    try {
      return await this.exited!;
    } finally {
      clearTimeout(timer);
    }
  }

  tail(): string {
    return this.output.join("").split("\n").slice(-15).join("\n");
  }
}
