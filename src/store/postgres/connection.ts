/**
 * The connection pool of the PostgreSQL store and the one way its code talks to it: a query, or
 * a transaction, each rejecting with a MailfetchdError (STATE_UNAVAILABLE when PostgreSQL cannot
 * be reached or refuses the work for now). No message names the connection URL's password:
 * errors are built from PostgreSQL's codes and texts, and the password is scrubbed from them
 * besides, in case a driver ever echoes its configuration.
 */
import pg from "pg";
import { MailfetchdError } from "../../errors.js";
import { StreamSourceError } from "../../spool/spool-file-writer.js";

export interface PostgresConnectionOptions {
  /** postgres://user:password@host:port/database; undefined: the standard PG* environment. */
  readonly url?: string;
  readonly tls?: { readonly ca?: string; readonly rejectUnauthorized: boolean };
  /** Connections held at most (each queue's fetch and delivery take one while they write). */
  readonly maxConnections?: number;
}

export type Db = pg.PoolClient | pg.Pool;

const FIX =
  "Check that PostgreSQL is running and reachable from this host, and the `state.postgres` settings (connection URL file or PG* environment, TLS options). " +
  "Nothing is fetched or changed on the mail server meanwhile; work resumes by itself when PostgreSQL answers.";

/** A connect timeout: a PostgreSQL that does not answer is an outage, not a slow query. */
const CONNECT_TIMEOUT_MS = 5_000;
/** Longest any statement of the store may take: a cut network leaves a query hanging otherwise. */
const QUERY_TIMEOUT_MS = 30_000;

/** int8 (seq, times in ms, epochs) as numbers: they stay far below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    if (oid === pg.types.builtins.INT8) return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

export function createPool(options: PostgresConnectionOptions, onIdleError: (error: Error) => void): pg.Pool {
  const pool = new pg.Pool({
    ...(options.url === undefined ? {} : { connectionString: options.url }),
    ...(options.tls === undefined ? {} : { ssl: { ca: options.tls.ca, rejectUnauthorized: options.tls.rejectUnauthorized } }),
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
    keepAlive: true,
    types,
  });
  // An idle connection that breaks (PostgreSQL restarted) must not end the process.
  pool.on("error", (error) => onIdleError(scrubbed(error, options.url)));
  return pool;
}

/** PostgreSQL error classes that say "not now" rather than "never": connection, resources, shutdown, conflicts. */
const TRANSIENT_CLASSES = ["08", "53", "57", "58", "40"];

/** Turns anything a query threw into the store's error (a MailfetchdError passes as it is). */
export function storeError(cause: unknown, url: string | undefined, doing: string): Error {
  // Ours already, or a broken download (the caller tells it from a broken store).
  if (cause instanceof MailfetchdError || cause instanceof StreamSourceError) return cause;
  const error = scrubbed(cause, url);
  const code = (cause as { code?: unknown }).code;
  const sqlState = typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
  const transient = sqlState === undefined || TRANSIENT_CLASSES.includes(sqlState.slice(0, 2));
  const what = sqlState ? `${error.message} (SQLSTATE ${sqlState})` : typeof code === "string" ? `${code}: ${error.message}` : error.message;
  return new MailfetchdError(`PostgreSQL state store: cannot ${doing}: ${what}`, {
    code: "STATE_UNAVAILABLE",
    // A statement PostgreSQL rejects for what it is (a bug, a schema changed by hand) fails again.
    retryable: transient,
    fix: transient ? FIX : "Run `mailfetchd migrate` against this database, and report this error if it persists.",
    cause: error,
  });
}

function scrubbed(cause: unknown, url: string | undefined): Error {
  const password = passwordOf(url);
  const text = cause instanceof Error ? cause.message : String(cause);
  const message = password ? text.split(password).join("***") : text;
  if (cause instanceof Error && message === text) return cause;
  const error = new Error(message);
  (error as { code?: unknown }).code = (cause as { code?: unknown } | undefined)?.code;
  return error;
}

function passwordOf(url: string | undefined): string | undefined {
  if (url === undefined) return process.env.PGPASSWORD || undefined;
  try {
    const password = decodeURIComponent(new URL(url).password);
    return password === "" ? undefined : password;
  } catch {
    return undefined;
  }
}

/** The store's handle on PostgreSQL: queries and transactions with its errors. */
export class Connection {
  private readied?: Promise<void>;

  /** `prepare` runs once before the first statement (the schema's migration), again after it failed. */
  constructor(
    readonly pool: pg.Pool,
    private readonly url: string | undefined,
    private readonly prepare: () => Promise<void> = async () => undefined,
  ) {}

  /** Resolves once `prepare` has succeeded; a failure is retried by the next call (PostgreSQL back). */
  ready(): Promise<void> {
    this.readied ??= this.prepare().catch((error: unknown) => {
      this.readied = undefined;
      throw error;
    });
    return this.readied;
  }

  async query<T extends pg.QueryResultRow>(doing: string, sql: string, values: unknown[] = []): Promise<T[]> {
    await this.ready();
    try {
      return (await this.pool.query<T>(sql, values)).rows;
    } catch (cause) {
      throw storeError(cause, this.url, doing);
    }
  }

  /** Runs `work` in one transaction on one connection; rolls back on any error. */
  async transaction<T>(doing: string, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    await this.ready();
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (cause) {
      throw storeError(cause, this.url, doing);
    }
    let broken: Error | undefined;
    // A connection that breaks between two statements (PostgreSQL gone while a download is
    // streamed into the transaction) emits 'error' on the client; the pool listens only to idle
    // ones, and an unheard 'error' ends the process. The next statement rejects instead.
    const onError = (error: Error) => (broken = error);
    client.on("error", onError);
    try {
      await client.query("BEGIN");
      const result = await work(client);
      await client.query("COMMIT");
      return result;
    } catch (cause) {
      await client.query("ROLLBACK").catch((error: Error) => (broken = error));
      throw storeError(cause, this.url, doing);
    } finally {
      client.off("error", onError);
      // A connection that broke or could not roll back is not given to the next caller.
      client.release(broken);
    }
  }

  end(): Promise<void> {
    return this.pool.end();
  }
}
