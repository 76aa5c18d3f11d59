/**
 * The ceilings mailfetchd is compared with, run as a child process so its RSS and CPU are its
 * own: (a) a bare imapflow FETCH of every message source, no parsing, no writes; (b) the same
 * with each message parsed by plain mailparser on 2 worker threads, no writes.
 *
 *   fork("dist-tools/tools/bench/ceiling.js", [JSON.stringify(CeilingInput)]) -> sends one CeilingResult
 */
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import { Worker } from "node:worker_threads";
import { ImapFlow } from "imapflow";
import { peakRssBytes } from "../testbed/peak-rss.js";

export interface CeilingInput {
  readonly host: string;
  readonly port: number;
  readonly caFile: string;
  readonly user: string;
  readonly token: string;
  readonly mode: "fetch" | "parse";
  readonly workers?: number;
}

export interface CeilingResult {
  readonly messages: number;
  readonly bytes: number;
  readonly ms: number;
  readonly maxRssBytes: number;
  readonly cpuMicros: number;
  readonly cpuSystemMicros: number;
}

/** Messages handed to the workers and not yet parsed, at most: without a bound, the whole mailbox would queue in memory. */
const IN_FLIGHT_PER_WORKER = 2;

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? "{}") as CeilingInput;
  const started = performance.now();
  const cpuFrom = process.cpuUsage();
  const client = new ImapFlow({
    host: input.host,
    port: input.port,
    secure: true,
    tls: { ca: [...rootCertificates, readFileSync(input.caFile, "utf8")] },
    auth: { user: input.user, accessToken: input.token },
    logger: false,
    disableAutoIdle: true,
  });
  await client.connect();
  await client.mailboxOpen("INBOX", { readOnly: true });
  const pool = input.mode === "parse" ? new Pool(input.workers ?? 2) : undefined;
  let messages = 0;
  let bytes = 0;
  for await (const message of client.fetch("1:*", { uid: true, source: true }, { uid: true })) {
    if (!message.source) continue;
    messages++;
    bytes += message.source.length;
    if (pool) await pool.submit(message.source);
  }
  await pool?.drain();
  await client.logout();
  const cpu = process.cpuUsage(cpuFrom);
  const result: CeilingResult = {
    messages,
    bytes,
    ms: performance.now() - started,
    maxRssBytes: peakRssBytes(),
    cpuMicros: cpu.user + cpu.system,
    cpuSystemMicros: cpu.system,
  };
  process.send?.(result);
  await pool?.close();
}

class Pool {
  private readonly idle: Worker[] = [];
  private readonly busy = new Set<Worker>();
  private readonly queue: Uint8Array[] = [];
  private waiters: Array<() => void> = [];

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL("./ceiling-parse-worker.js", import.meta.url));
      worker.on("message", () => {
        this.busy.delete(worker);
        this.idle.push(worker);
        this.pump();
      });
      this.idle.push(worker);
    }
    this.size = size;
  }

  private readonly size: number;

  async submit(raw: Buffer): Promise<void> {
    while (this.queue.length + this.busy.size >= this.size * IN_FLIGHT_PER_WORKER) await new Promise<void>((resolve) => this.waiters.push(resolve));
    const copy = new Uint8Array(raw);
    this.queue.push(copy);
    this.pump();
  }

  async drain(): Promise<void> {
    while (this.queue.length + this.busy.size > 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  close(): Promise<unknown> {
    return Promise.all([...this.idle, ...this.busy].map((worker) => worker.terminate()));
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!;
      const raw = this.queue.shift()!;
      this.busy.add(worker);
      worker.postMessage(raw, [raw.buffer as ArrayBuffer]);
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
