/**
 * In-process token tests on real components: the test bed (identity stand-in over HTTPS,
 * Dovecot), a real SQLite state file, the real key file and config loader. Only the daemon
 * process is left out, so a case takes milliseconds.
 */
import path from "node:path";
import { loadConfig } from "../../../src/config/load.js";
import type { QueueConfig } from "../../../src/config/schema.js";
import { MailfetchdError } from "../../../src/errors.js";
import type { Logger } from "../../../src/interfaces.js";
import { createLogger, SecretRegistry } from "../../../src/log.js";
import type { StateDatabase } from "../../../src/store/sqlite/database.js";
import { openSqliteStore, type SqliteStateStore } from "../../../src/store/sqlite/sqlite-store.js";
import { SecretBox } from "../../../src/state/secret-box.js";
import { startTestBed, type DaemonConfigInput, type TestBed, type TestBedIdentityOptions } from "../test-bed.js";
import { ConcurrencyLimiter } from "../../../src/tokens/identity-http-client.js";
import { MsalTokenProvider, type MsalTokenProviderOptions } from "../../../src/tokens/msal-token-provider.js";
import { TokenCacheStore } from "../../../src/tokens/token-cache-store.js";

export type QueueSpec = Omit<DaemonConfigInput["queues"][number], "handlers">;

export interface TokenFixture {
  readonly bed: TestBed;
  /** The state store (SQLite), and its database for checks that read rows. */
  readonly state: SqliteStateStore;
  readonly db: StateDatabase;
  readonly store: TokenCacheStore;
  /** Every log line written through `logger`, for leak scans. */
  readonly logLines: string[];
  readonly logger: Logger;
  /** Loads the queues through the real config loader (defaults, password files). */
  queues(specs: readonly QueueSpec[], file?: string): QueueConfig[];
  provider(queue: QueueConfig, options?: Partial<MsalTokenProviderOptions>): MsalTokenProvider;
  close(): Promise<void>;
}

export async function startTokenFixture(options: TestBedIdentityOptions = {}): Promise<TokenFixture> {
  const bed = await startTestBed(options);
  const stateDir = path.join(bed.dir, "state");
  const logLines: string[] = [];
  const secrets = new SecretRegistry();
  const logger = createLogger({ level: "debug", secrets, destination: { write: (line: string) => void logLines.push(line) } });
  let state: SqliteStateStore | undefined;
  let store: TokenCacheStore | undefined;
  const defaultLimiter = new ConcurrencyLimiter(4);

  const fixture: TokenFixture = {
    bed,
    get state() {
      if (!state) throw new Error("call queues() first: it writes the key file");
      return state;
    },
    get db() {
      return fixture.state.db;
    },
    get store() {
      if (!store) throw new Error("call queues() first: it writes the key file");
      return store;
    },
    logLines,
    logger,
    queues(specs, file) {
      const configFile = bed.writeDaemonConfig(
        { stateDir, queues: specs.map((spec) => ({ ...spec, handlers: [{ type: "directory", path: path.join(bed.dir, "out") }] })) },
        file ?? path.join(bed.dir, `config-${Math.random().toString(36).slice(2)}.yaml`),
      );
      const config = loadConfig(configFile);
      if (!state) {
        state = openSqliteStore(config.stateDir);
        store = new TokenCacheStore(state.tokenCaches, SecretBox.fromFile(config.keyFile), (queue, values) =>
          values.forEach((v, i) => secrets.set(`${queue}:${i}`, v)),
        );
      }
      for (const queue of config.queues) secrets.set(`${queue.name}:password`, queue.signIn.password);
      return [...config.queues];
    },
    provider(queue, overrides = {}) {
      return new MsalTokenProvider({ queue, store: fixture.store, limiter: defaultLimiter, logger: logger.child({ queue: queue.name }), ...overrides });
    },
    async close() {
      await state?.close();
      await bed.close();
    },
  };
  return fixture;
}

/** The MailfetchdError a promise rejects with; fails the test when it resolves. */
export async function failure(promise: Promise<unknown>): Promise<MailfetchdError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof MailfetchdError) return error;
    throw new Error(`expected a MailfetchdError, got ${String(error)}`, { cause: error });
  }
  throw new Error("expected a rejection, but it resolved");
}

/** Polls until `condition` holds; fails naming `what` after `timeoutMs` (never a speed assertion). */
export async function waitFor(what: string, condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
