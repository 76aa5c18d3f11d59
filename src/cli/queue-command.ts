/** What the per-queue commands (login, logout, check) share: finding the queue, a quiet logger. */
import pino from "pino";
import type { Config, QueueConfig } from "../config/schema.js";
import { createLogger, SecretRegistry } from "../log.js";
import type { Logger } from "../interfaces.js";
import { EXIT } from "./common.js";

/** The named queue, or undefined after telling the operator which names exist (exit 2). */
export function findQueue(config: Config, name: string): QueueConfig | undefined {
  const queue = config.queues.find((q) => q.name === name);
  if (!queue) {
    process.stderr.write(`mailfetchd: the config has no queue named '${name}'. Its queues: ${config.queues.map((q) => q.name).join(", ")}.\n`);
    process.exitCode = EXIT.USAGE;
  }
  return queue;
}

/**
 * Warnings only, as JSON on stderr, so stdout stays the human-readable answer. Scrubbed of the
 * config's passwords like the daemon's log.
 */
export function commandLogger(config: Config): Logger {
  const secrets = new SecretRegistry();
  for (const queue of config.queues) secrets.set(`${queue.name}:password`, queue.signIn.password);
  return createLogger({ level: "warn", secrets, destination: pino.destination({ dest: 2, sync: true }) });
}
