/**
 * The whole offline test bed in one call: throw-away certificates, the identity stand-in
 * (HTTPS), the Graph stand-in (HTTPS) and a Dovecot speaking only XOAUTH2 (TLS), plus a writer for a daemon config
 * pointing at them. Used by the end-to-end tests, the demo and the benchmarks.
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { stringify } from "yaml";
import { writeNewKeyFile } from "../../src/state/secret-box.js";
import { createTestCertificates, type TestCertificates } from "./certs.js";
import { startDovecot, type Dovecot } from "./dovecot.js";
import { startGraphStandIn, type GraphStandIn } from "./graph-standin.js";
import { startIdentityStandIn, type IdentityStandIn, type IdentityStandInOptions } from "./identity-standin.js";

const run = promisify(execFile);

/** A fixed client id for the bed's app registration (any GUID-shaped value works). */
export const TEST_CLIENT_ID = "00000000-0000-4000-8000-00000000c11e";

export interface DaemonConfigInput {
  readonly stateDir: string;
  readonly logLevel?: string;
  readonly poll?: string;
  /** The daemon's HTTP surface, e.g. { listen: "127.0.0.1:9464" }. */
  readonly http?: Readonly<Record<string, unknown>>;
  /** State in PostgreSQL (src/testbed/postgres.ts): the URL is written to a 0600 file beside the config. */
  readonly postgres?: { readonly url: string; readonly lease?: string; readonly replicaId?: string };
  readonly queues: ReadonlyArray<{
    readonly name: string;
    readonly address: string;
    /** Written to a file beside the config; omit for a queue signed in by device code. */
    readonly password?: string;
    readonly signInUser?: string;
    readonly folder?: string;
    /** Any other queue keys (afterSpool, maxMessageSize, idle, ...), written as given. */
    readonly options?: Readonly<Record<string, unknown>>;
    readonly handlers: ReadonlyArray<Record<string, unknown>>;
  }>;
}

export interface TestBed {
  readonly dir: string;
  readonly certs: TestCertificates;
  readonly identity: IdentityStandIn;
  /** Microsoft Graph's mail API, checking tokens with the identity stand-in; add mailboxes with addMailbox. */
  readonly graph: GraphStandIn;
  readonly dovecot: Dovecot & {
    countMessages(user: string, folder?: string): Promise<number>;
    /** Runs doveadm against this Dovecot, e.g. ["fetch", "-u", user, "uid flags", "mailbox", "INBOX"]. */
    doveadm(args: string[]): Promise<string>;
  };
  /** Writes config.yaml (and password and key files, 0600) into the bed's dir; returns its path. */
  writeDaemonConfig(input: DaemonConfigInput, file?: string): string;
  close(): Promise<void>;
}

/** Options passed through to the identity stand-in (see IdentityStandInOptions). */
export type TestBedIdentityOptions = Pick<
  IdentityStandInOptions,
  "accessTokenLifetimeSeconds" | "deviceCodeIntervalSeconds" | "deviceCodeLifetimeSeconds" | "tokenResponseDelayMs" | "refreshTokenReuse"
>;

export async function startTestBed(options: { dir?: string; dovecotConfig?: string } & TestBedIdentityOptions = {}): Promise<TestBed> {
  const dir = options.dir ?? (await mkdtemp(path.join(tmpdir(), "mailfetchd-bed-")));
  const certs = await createTestCertificates(path.join(dir, "certs"));
  const identity = await startIdentityStandIn({
    certFile: certs.certFile,
    keyFile: certs.keyFile,
    clientId: TEST_CLIENT_ID,
    accessTokenLifetimeSeconds: options.accessTokenLifetimeSeconds,
    deviceCodeIntervalSeconds: options.deviceCodeIntervalSeconds,
    deviceCodeLifetimeSeconds: options.deviceCodeLifetimeSeconds,
    tokenResponseDelayMs: options.tokenResponseDelayMs,
    refreshTokenReuse: options.refreshTokenReuse,
  });
  let dovecot: Dovecot;
  let graph: GraphStandIn;
  try {
    graph = await startGraphStandIn({ certFile: certs.certFile, keyFile: certs.keyFile, tokens: (token) => identity.accessTokenInfo(token) });
  } catch (error) {
    await identity.close();
    throw error;
  }
  try {
    dovecot = await startDovecot({
      dir: path.join(dir, "dovecot"),
      introspectionUrl: identity.introspectionUrl,
      certFile: certs.certFile,
      keyFile: certs.keyFile,
      extraConfig: options.dovecotConfig,
    });
  } catch (error) {
    await Promise.allSettled([identity.close(), graph.close()]);
    throw error;
  }
  const configFile = path.join(dir, "dovecot", "dovecot.conf");
  const doveadm = async (args: string[]) => (await run("doveadm", ["-c", configFile, ...args])).stdout;
  const countMessages = async (user: string, folder = "INBOX") => {
    const stdout = await doveadm(["-f", "flow", "mailbox", "status", "-u", user, "messages", folder]);
    return Number(/messages=(\d+)/.exec(stdout)?.[1] ?? NaN);
  };

  return {
    dir,
    certs,
    identity,
    graph,
    dovecot: Object.assign(dovecot, { countMessages, doveadm }),
    writeDaemonConfig(input, file = path.join(dir, "config.yaml")) {
      const keyFile = path.join(dir, "token.key");
      try {
        writeNewKeyFile(keyFile);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      let postgres: Record<string, string> | undefined;
      if (input.postgres) {
        const urlFile = `${file}.postgres-url`;
        writeFileSync(urlFile, `${input.postgres.url}\n`, { mode: 0o600 });
        postgres = {
          urlFile,
          ...(input.postgres.lease ? { lease: input.postgres.lease } : {}),
          ...(input.postgres.replicaId ? { replicaId: input.postgres.replicaId } : {}),
        };
      }
      const config = {
        state: { dir: input.stateDir, keyFile, ...(postgres ? { postgres } : {}) },
        log: { level: input.logLevel ?? "info" },
        identity: { tenantId: identity.tenantId, clientId: TEST_CLIENT_ID, authority: identity.authority, caFile: certs.caFile },
        imap: { host: dovecot.host, port: dovecot.port, tls: true, caFile: certs.caFile },
        graph: { host: graph.origin, caFile: certs.caFile },
        poll: input.poll ?? "2s",
        http: input.http,
        queues: input.queues.map((q) => {
          let signIn: Record<string, string> | undefined;
          if (q.password !== undefined) {
            const passwordFile = path.join(dir, `${q.name}.password`);
            writeFileSync(passwordFile, `${q.password}\n`, { mode: 0o600 });
            signIn = { passwordFile };
          }
          if (q.signInUser) signIn = { ...signIn, user: q.signInUser };
          return { name: q.name, address: q.address, signIn, folder: q.folder, ...q.options, handlers: q.handlers };
        }),
      };
      writeFileSync(file, stringify(config), { mode: 0o600 });
      return file;
    },
    async close() {
      await Promise.allSettled([dovecot.close(), identity.close(), graph.close()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
