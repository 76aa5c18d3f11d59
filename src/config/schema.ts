/**
 * The shape of mailfetchd's YAML config, validated once at start (src/config/load.ts).
 *
 * Top-level `identity` and `imap` blocks are defaults for every queue; a queue may override
 * any key. Secrets are never inline: they are named by file (systemd credentials, Docker
 * secrets), read once at start.
 */
import { z } from "zod";
import cron from "node-cron";
import { parseListenAddress } from "../support/listen-address.js";
import { envEntryProblem, headerEntryProblem } from "./handler-rules.js";

export const DEFAULT_SCOPES = ["https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"];
export const DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com";
export const DEFAULT_IMAP_HOST = "outlook.office365.com";
export const DEFAULT_GRAPH_HOST = "https://graph.microsoft.com";
/** The delegated Graph permission a `source: graph` queue needs for the sign-in user's own mailbox. */
export const GRAPH_MAIL_SCOPE = "https://graph.microsoft.com/Mail.ReadWrite";
/** ... and for another mailbox (a shared mailbox the sign-in user has Full Access to). */
export const GRAPH_SHARED_MAIL_SCOPE = "https://graph.microsoft.com/Mail.ReadWrite.Shared";

const INTERVAL = /^(\d+)\s*(ms|s|m|h|d)$/;

/** "30s", "5m", "1h", "7d" -> milliseconds; undefined when not an interval. */
export function parseInterval(text: string): number | undefined {
  const match = INTERVAL.exec(text.trim());
  if (!match) return undefined;
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as "ms" | "s" | "m" | "h" | "d"];
  return Number(match[1]) * unit;
}

const BYTE_SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?$/i;

/** "25MB", "512KB", 1048576 -> bytes (1 KB = 1024 B); undefined when not a size. */
export function parseByteSize(value: string | number): number | undefined {
  if (typeof value === "number") return Number.isInteger(value) && value > 0 ? value : undefined;
  const match = BYTE_SIZE.exec(value.trim());
  if (!match) return undefined;
  const unit = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[(match[2] ?? "B").toUpperCase() as "B" | "KB" | "MB" | "GB"];
  return Math.round(Number(match[1]) * unit);
}

const byteSize = z.union([z.number(), z.string()]).refine((v) => parseByteSize(v) !== undefined, "write a size such as 25MB, 512KB or a number of bytes");

const queueName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "use 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit (it names files and metrics)");

const email = z.string().regex(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, "write a full e-mail address, e.g. support@contoso.com");

const guid = z
  .string()
  .regex(
    /^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[a-z0-9.-]+\.[a-z]{2,})$/,
    "write the GUID shown on the app's Overview page (admin guide, section 2.2 steps 7-8), e.g. 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
  );

const duration = z.string().refine((text) => parseInterval(text) !== undefined, "write a duration such as '7d', '12h' or '30m'");

const schedule = z.string().refine((text) => {
  const ms = parseInterval(text);
  if (ms !== undefined) return ms >= 1_000;
  return cron.validate(text);
}, "write an interval of at least 1s such as '60s' or '5m', or a cron expression such as '*/2 * * * *'");

const identityBlock = z
  .object({
    tenantId: guid.optional(),
    clientId: guid.optional(),
    /** Default https://login.microsoftonline.com/<tenantId>; national clouds and the test bed differ. */
    authority: z.url({ protocol: /^https$/, error: "write an https:// URL such as https://login.microsoftonline.com/<tenant-id>" }).optional(),
    /** Extra CA certificates (PEM) trusted for the identity endpoint, e.g. a TLS-inspecting proxy. */
    caFile: z.string().min(1).optional(),
    scopes: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict();

const imapBlock = z
  .object({
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    /** Implicit TLS (port 993). STARTTLS or plaintext are for test beds only. */
    tls: z.boolean().optional(),
    caFile: z.string().min(1).optional(),
    /** `tls: false` to a server other than loopback sends the token in clear text: refused unless this is true (logged as a warning at start). */
    allowCleartext: z.boolean().optional(),
  })
  .strict();

const graphBlock = z
  .object({
    /** Default https://graph.microsoft.com; national clouds and the test bed differ. Links on any other host are never followed. */
    host: z.url({ protocol: /^https$/, error: "write an https:// URL such as https://graph.microsoft.com" }).optional(),
    /** Extra CA certificates (PEM) trusted for the Graph host, e.g. a TLS-inspecting proxy. */
    caFile: z.string().min(1).optional(),
  })
  .strict();

const directoryHandler = z
  .object({
    type: z.literal("directory"),
    name: queueName.optional(),
    path: z.string().min(1),
  })
  .strict();

const handlerTimeout = z.string().refine((text) => (parseInterval(text) ?? 0) >= 1, "write a duration such as '30s', '2m' or '500ms'");

/** A value written inline, or `{ file: PATH }` read once at start (anything secret must be). */
const inlineOrFile = z.union([z.string(), z.object({ file: z.string().min(1) }).strict()], {
  error: "write a string, or `{ file: PATH }` to read the value from a file",
});

function namedValues(problemOf: (name: string, inline: string | undefined) => string | undefined) {
  return z.record(z.string(), inlineOrFile).superRefine((entries, ctx) => {
    for (const [name, value] of Object.entries(entries)) {
      const problem = problemOf(name, typeof value === "string" ? value : undefined);
      if (problem) ctx.addIssue({ code: "custom", path: [name], message: problem });
    }
  });
}

const webhookHandler = z
  .object({
    type: z.literal("webhook"),
    name: queueName.optional(),
    url: z
      .url({ protocol: /^https?$/, error: "write an https:// (or http://) URL such as https://crm.contoso.com/hooks/mail" })
      .refine(
        (url) => !/^[a-z]+:\/\/[^/?#]*@/i.test(url),
        "remove the user:password@ part: send credentials as a header read from a file (headers: { Authorization: { file: PATH } })",
      ),
    /** Standard Webhooks signing key(s): "whsec_" + base64, one per line (two while rotating). */
    secretFile: z.string().min(1).optional(),
    format: z.enum(["json", "raw"], { error: "write json (the parsed message) or raw (the MIME, as message/rfc822)" }).optional(),
    timeout: handlerTimeout.optional(),
    /** Attachments up to this size are sent inline (base64) in the json format; larger ones by reference. */
    inlineAttachmentsUpTo: z.union([z.literal(0), byteSize]).optional(),
    headers: namedValues(headerEntryProblem).optional(),
    /** An http:// url to a host other than loopback sends messages in clear text: refused unless this is true (logged as a warning at start). */
    allowCleartext: z.boolean().optional(),
  })
  .strict();

const commandHandler = z
  .object({
    type: z.literal("command"),
    name: queueName.optional(),
    /** argv, no shell: the program, then its arguments. */
    command: z.array(z.string().min(1)).min(1, "write the program and its arguments as a list, e.g. [/usr/local/bin/route-mail, --queue, support]"),
    timeout: handlerTimeout.optional(),
    env: namedValues(envEntryProblem).optional(),
    cwd: z.string().min(1).optional(),
    /** Run the program as this numeric user and group (both; the daemon must run as root), so it cannot read the daemon's files. */
    uid: z.number().int().min(0).max(4294967294).optional(),
    gid: z.number().int().min(0).max(4294967294).optional(),
  })
  .strict();

export const handlerSchema = z.discriminatedUnion("type", [directoryHandler, webhookHandler, commandHandler], {
  error: "a handler needs `type: directory`, `type: webhook` or `type: command`",
});

const postgresBlock = z
  .object({
    /** A file (mode 0600) holding the connection URL, postgres://user:password@host:5432/database. Absent: the standard PG* environment variables. */
    urlFile: z.string().min(1).optional(),
    /** Use TLS to PostgreSQL (also on when caFile or rejectUnauthorized is given, or the URL says sslmode). */
    tls: z.boolean().optional(),
    /** CA certificate (PEM) to verify PostgreSQL's certificate against. */
    caFile: z.string().min(1).optional(),
    /** Verify PostgreSQL's certificate (default true). */
    rejectUnauthorized: z.boolean().optional(),
    /** How long a replica holds a queue without renewing: a dead replica's queues move within this (default 15s). */
    lease: z
      .string()
      .refine((text) => (parseInterval(text) ?? 0) >= 1000, "write a duration of at least 1s, such as '15s'")
      .optional(),
    /** This replica's name in leases and `status` (default: host name and process id). */
    replicaId: z.string().min(1).max(200).optional(),
    /** Connections this replica opens at most (default 10). */
    maxConnections: z.number().int().min(2).max(1000).optional(),
  })
  .strict();

const signIn = z
  .object({
    /** The Entra user who signs in. Defaults to the queue address. */
    user: email.optional(),
    /** File holding that user's password (ROPC). Trailing newline ignored. */
    passwordFile: z.string().min(1).optional(),
  })
  .strict();

const queue = z
  .object({
    name: queueName,
    address: email,
    signIn: signIn.optional(),
    identity: identityBlock.optional(),
    /** Where the queue's mail comes from (src/source/mail-source.ts): "imap" (the default) or "graph" (Microsoft Graph). */
    source: z.enum(["imap", "graph"], { error: "write imap (the default) or graph" }).optional(),
    imap: imapBlock.optional(),
    graph: graphBlock.optional(),
    folder: z.string().min(1).optional(),
    /**
     * What happens on the server once a message is durably spooled: keep (default), seen
     * (flag \Seen), move (to `moveTo`), delete (expunge).
     */
    afterSpool: z.enum(["keep", "seen", "move", "delete"], { error: "write keep, seen, move or delete" }).optional(),
    moveTo: z.string().min(1).optional(),
    /** Larger messages are not downloaded: dead-lettered with their headers and an alert. */
    maxMessageSize: byteSize.optional(),
    /** Hold an IMAP IDLE session for new mail within a second; polling stays as a safety net. */
    idle: z.boolean().optional(),
    poll: schedule.optional(),
    handlers: z.array(handlerSchema).min(1, "give each queue at least one handler, e.g. `- type: directory` with a `path`"),
  })
  .strict();

export const configSchema = z
  .object({
    state: z
      .object({
        /** SQLite state and the spool live here. Created 0700. */
        dir: z.string().min(1),
        /** Key file for the token cache's encryption at rest (`mailfetchd keygen` writes one). */
        keyFile: z.string().min(1, "name the key file written by `mailfetchd keygen`"),
        /** Keep the state in PostgreSQL, shared by several replicas, instead of SQLite in `dir`. */
        postgres: postgresBlock.optional(),
      })
      .strict(),
    log: z
      .object({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).optional(),
      })
      .strict()
      .optional(),
    identity: identityBlock.optional(),
    imap: imapBlock.optional(),
    graph: graphBlock.optional(),
    poll: schedule.optional(),
    retention: z
      .object({
        /** Spool files of fully delivered messages are removed this long after spooling. */
        keepDelivered: duration.optional(),
        /** Their small index rows (which recognise a re-fetched message) are kept this long. */
        forgetAfter: duration.optional(),
        /** When the pruning runs (cron). */
        schedule: z
          .string()
          .refine((text) => cron.validate(text), "write a cron expression such as '17 3 * * *'")
          .optional(),
      })
      .strict()
      .optional(),
    /** One budget for all queues' deliveries together: what N busy queues may hold in memory. */
    delivery: z
      .object({
        /** Messages being parsed and handed to handlers at once, across all queues. Default 8. */
        messagesInFlight: z
          .number({ error: "write a whole number of messages, e.g. 8" })
          .int("write a whole number of messages, e.g. 8")
          .min(1, "at least 1")
          .max(1000, "at most 1000")
          .optional(),
        /** Their sizes (RFC822.SIZE) at most; a bigger message goes alone. Default 64MB. */
        bytesInFlight: byteSize.optional(),
      })
      .strict()
      .optional(),
    queues: z.array(queue).min(1, "list at least one queue mailbox under `queues`"),
    /** The HTTP surface (/livez, /readyz, /metrics, the status page): off unless this block exists. */
    http: z
      .object({
        /** HOST:PORT, default 127.0.0.1:9464. Any non-loopback address needs bearerTokenFile, tlsCertFile and tlsKeyFile. */
        listen: z
          .string()
          .refine((text) => parseListenAddress(text) !== undefined, "write HOST:PORT such as 127.0.0.1:9464, 0.0.0.0:9464 or [::1]:9464")
          .optional(),
        /** File holding the bearer token every request must carry (`openssl rand -hex 32`). */
        bearerTokenFile: z.string().min(1).optional(),
        /** PEM certificate (chain) served over TLS; required, with tlsKeyFile, for a non-loopback listen address. */
        tlsCertFile: z.string().min(1).optional(),
        /** PEM private key of tlsCertFile; a secret (mode 0600). */
        tlsKeyFile: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type RawConfig = z.infer<typeof configSchema>;
export type RawHandlerConfig = z.infer<typeof handlerSchema>;

/** A handler as the daemon runs it: paths resolved, files read, defaults applied. */
export type HandlerConfig = DirectoryHandlerConfig | WebhookHandlerConfig | CommandHandlerConfig;

export interface DirectoryHandlerConfig {
  readonly type: "directory";
  readonly name?: string;
  readonly path: string;
}

export interface WebhookHandlerConfig {
  readonly type: "webhook";
  readonly name?: string;
  readonly url: string;
  /** The secretFile's text ("whsec_..." lines, validated). Never log it. */
  readonly secret?: string;
  readonly format: "json" | "raw";
  readonly timeoutMs: number;
  readonly inlineAttachmentsUpTo: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Every value read from a file (key, header values): scrubbed from logs and error reasons. */
  readonly secretValues: readonly string[];
  /** Set when the operator opted out of TLS for a non-loopback http:// url (warned about at start). */
  readonly allowCleartext?: boolean;
}

export interface CommandHandlerConfig {
  readonly type: "command";
  readonly name?: string;
  readonly command: readonly string[];
  readonly timeoutMs: number;
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** Every env value read from a file: scrubbed from logs and error reasons. */
  readonly secretValues: readonly string[];
  /** The user and group the program runs as (both or neither). */
  readonly uid?: number;
  readonly gid?: number;
}

/** One queue, with defaults applied and secrets read: what the daemon runs on. */
export interface QueueConfig {
  readonly name: string;
  readonly address: string;
  readonly signIn: { readonly user: string; readonly password?: string };
  readonly identity: {
    readonly tenantId: string;
    readonly clientId: string;
    readonly authority: string;
    readonly ca?: string;
    readonly scopes: readonly string[];
  };
  /** The mail source adapter the composition root builds for the queue. */
  readonly source: "imap" | "graph";
  /** Used by `source: graph` queues. */
  readonly graph: {
    /** Origin without a trailing slash, e.g. https://graph.microsoft.com. */
    readonly host: string;
    readonly ca?: string;
  };
  readonly imap: {
    readonly host: string;
    readonly port: number;
    readonly tls: boolean;
    readonly ca?: string;
    /** Set when the operator opted out of TLS to a non-loopback server (warned about at start). */
    readonly allowCleartext?: boolean;
  };
  readonly folder: string;
  readonly afterSpool: { readonly action: "keep" | "seen" | "delete" } | { readonly action: "move"; readonly to: string };
  readonly maxMessageSize: number;
  readonly idle: boolean;
  /** Milliseconds between polls, or a cron expression. */
  readonly poll: { readonly intervalMs: number } | { readonly cron: string };
  readonly handlers: readonly HandlerConfig[];
}

export interface Config {
  readonly stateDir: string;
  readonly keyFile: string;
  /** Set when the state lives in PostgreSQL (several replicas); absent: SQLite in stateDir. */
  readonly postgres?: PostgresConfig;
  readonly logLevel: string;
  readonly retention: { readonly keepDeliveredMs: number; readonly forgetAfterMs: number; readonly schedule: string };
  /** Shared by every queue's deliveries (src/queue/memory-budget.ts). */
  readonly delivery: { readonly messagesInFlight: number; readonly bytesInFlight: number };
  readonly queues: readonly QueueConfig[];
  /** Absent when the config has no `http` block: no port is opened. */
  readonly http?: HttpConfig;
}

export interface PostgresConfig {
  /** The connection URL (holds the password: never log it); undefined: the PG* environment. */
  readonly url?: string;
  readonly tls?: { readonly ca?: string; readonly rejectUnauthorized: boolean };
  readonly leaseMs: number;
  readonly replicaId?: string;
  readonly maxConnections?: number;
}

export interface HttpConfig {
  readonly host: string;
  readonly port: number;
  /** Required of every request when set; always set when bound to a non-loopback address. Never log it. */
  readonly bearerToken?: string;
  /** Served over HTTPS when set; always set when bound to a non-loopback address. The key is a secret. */
  readonly tls?: { readonly cert: string; readonly key: string };
}
