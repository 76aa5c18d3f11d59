/** What every benchmark scenario is given, and what it gives back. */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import type { TestBed } from "../testbed/test-bed.js";

const run = promisify(execFile);

export interface BenchOptions {
  /** A CI smoke run of the harness: tiny volumes, one repetition, well under a minute. */
  readonly quick: boolean;
  /** Volume factor for shorter full runs (0.1 = a tenth of the corpus, of the queues, ...). */
  readonly scale: number;
  readonly repetitions: number;
  /** Scenario names to run; all when empty. */
  readonly only: readonly string[];
  /** Runs mailfetchd's drain under `node --cpu-prof`, profiles written here. */
  readonly cpuProfileDir?: string;
  /** Where the report goes; BENCHMARKS.md for full runs. */
  readonly out?: string;
}

export interface BenchContext {
  readonly bed: TestBed;
  readonly options: BenchOptions;
  /** Scratch space for outputs; each run's own, removed at the end. */
  readonly workDir: string;
  log(message: string): void;
}

export interface ScenarioReport {
  readonly title: string;
  /** Markdown: tables and notes, printed and written to the report. */
  readonly markdown: string;
}

/** Where Dovecot keeps a user's mail in the test bed. */
export function maildirOf(bed: TestBed, user: string): string {
  return path.join(bed.dovecot.dir, "mail", user.toLowerCase(), "Maildir");
}

/** The uid/gid Dovecot's mail processes run as (nobody when we are root). */
export async function mailOwner(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const [uid, gid] = await Promise.all([run("id", ["-u", "nobody"]), run("id", ["-g", "nobody"])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** Established TCP connections from process `pid` to `port` on loopback: the IMAP sessions it holds. */
export function connectionsTo(pid: number, port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const match = /^socket:\[(\d+)\]$/.exec(target);
      if (match) inodes.add(match[1]!);
    } catch {
      // The descriptor closed meanwhile.
    }
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  let count = 0;
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      const remote = fields[2]!;
      const state = fields[3]!;
      const inode = fields[9]!;
      if (state === "01" && remote.endsWith(`:${hexPort}`) && inodes.has(inode)) count++;
    }
  }
  return count;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
