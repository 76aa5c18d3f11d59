/**
 * Reads, validates and freezes the config once at start. Every error names the key, what is
 * wrong and what to write instead; all errors are reported together so an operator fixes the
 * file in one go.
 */
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import path from "node:path";
import { isPair, isScalar, isSeq, parseDocument, visit, type Document } from "yaml";
import type { z } from "zod";
import { ConfigError } from "../errors.js";
import { resolveHandler } from "./resolve-handler.js";
import { readSecretFile } from "./secret-file.js";
import {
  configSchema,
  DEFAULT_AUTHORITY_HOST,
  DEFAULT_IMAP_HOST,
  DEFAULT_GRAPH_HOST,
  DEFAULT_SCOPES,
  GRAPH_MAIL_SCOPE,
  GRAPH_SHARED_MAIL_SCOPE,
  parseByteSize,
  parseInterval,
  type Config,
  type HttpConfig,
  type PostgresConfig,
  type QueueConfig,
  type RawConfig,
} from "./schema.js";
import { DEFAULT_HTTP_LISTEN, isLoopbackHost, parseListenAddress } from "../support/listen-address.js";
import { DEFAULT_DELIVERY_BUDGET } from "../queue/memory-budget.js";

export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(
      `Cannot read the config file ${file} (${(error as NodeJS.ErrnoException).code ?? "error"}). Pass an existing file with --config; config/example.yaml is a commented example.`,
      "CONFIG_NOT_FOUND",
    );
  }
  return parseConfig(text, file);
}

/** Validates config text; `file` is used in messages and to resolve relative paths. */
export function parseConfig(text: string, file: string): Config {
  const document = parseDocument(text, { prettyErrors: true });
  if (document.errors.length > 0) {
    const first = document.errors[0]!;
    throw new ConfigError(`${file}: not valid YAML: ${first.message.split("\n")[0]}`);
  }
  const forbidden = forbiddenKeys(document);
  if (forbidden.length > 0) {
    throw new ConfigError(
      `${file}: the config is not valid:\n${forbidden.map((at) => `  ${at}: the key name '${at.slice(at.lastIndexOf(".") + 1)}' is not allowed (it would be dropped or change how the config is read): rename or remove it`).join("\n")}`,
    );
  }
  let plain: unknown;
  try {
    // The yaml library stops an alias bomb ("billion laughs") here, with a plain error.
    plain = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    throw new ConfigError(`${file}: not valid YAML: ${(error as Error).message}: write the config without nested aliases (*name) that expand to huge sizes`);
  }
  const result = configSchema.safeParse(plain);
  if (!result.success) throw new ConfigError(formatIssues(file, result.error.issues));
  return resolveConfig(result.data, path.dirname(path.resolve(file)));
}

/** Aliases a real config needs are a handful; an alias bomb uses thousands. */
const MAX_ALIAS_COUNT = 100;

/**
 * Keys that are Object.prototype's own names: turned into JavaScript objects they vanish or
 * replace the prototype, so `headers: { __proto__: ... }` would be dropped without a word.
 */
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/** The key paths (e.g. "queues[0].handlers[0].headers.__proto__") of every forbidden key. */
function forbiddenKeys(document: Document): string[] {
  const found: string[] = [];
  visit(document, {
    Pair(_, pair, ancestors) {
      if (!isScalar(pair.key) || !FORBIDDEN_KEYS.has(String(pair.key.value))) return;
      const segments: PropertyKey[] = [];
      for (const [index, node] of ancestors.entries()) {
        const next = ancestors[index + 1] ?? pair;
        if (isPair(node) && isScalar(node.key)) segments.push(String(node.key.value));
        if (isSeq(node)) segments.push(node.items.indexOf(next as never));
      }
      segments.push(String(pair.key.value));
      found.push(keyPath(segments));
    },
  });
  return found;
}

function formatIssues(file: string, issues: readonly z.core.$ZodIssue[]): string {
  const lines = issues.map((issue) => `  ${keyPath(issue.path) || "(top level)"}: ${describeIssue(issue)}`);
  return `${file}: the config is not valid:\n${lines.join("\n")}`;
}

/** state.postgres: the URL is a secret (file mode checked, never logged); TLS when asked for. */
function postgresOf(
  raw: NonNullable<RawConfig["state"]["postgres"]>,
  readSecret: (key: string, file: string) => string | undefined,
  readPublic: (key: string, file: string) => string | undefined,
  problems: string[],
): PostgresConfig {
  const url = raw.urlFile === undefined ? undefined : readSecret("state.postgres.urlFile", raw.urlFile)?.trim();
  // The text itself is never shown: it holds the password.
  if (url !== undefined && !/^postgres(ql)?:\/\/[^/]+/.test(url)) {
    problems.push(`  state.postgres.urlFile: ${raw.urlFile} does not hold a PostgreSQL URL: write one line, postgres://user:password@host:5432/database`);
  }
  const ca = raw.caFile === undefined ? undefined : readPublic("state.postgres.caFile", raw.caFile);
  const tls = raw.tls === true || ca !== undefined || raw.rejectUnauthorized !== undefined;
  return {
    ...(url === undefined ? {} : { url }),
    ...(tls ? { tls: { ...(ca === undefined ? {} : { ca }), rejectUnauthorized: raw.rejectUnauthorized ?? true } } : {}),
    leaseMs: parseInterval(raw.lease ?? "15s")!,
    ...(raw.replicaId === undefined ? {} : { replicaId: raw.replicaId }),
    ...(raw.maxConnections === undefined ? {} : { maxConnections: raw.maxConnections }),
  };
}

function keyPath(segments: readonly PropertyKey[]): string {
  return segments.reduce<string>(
    (out, segment) => (typeof segment === "number" ? `${out}[${segment}]` : out ? `${out}.${String(segment)}` : String(segment)),
    "",
  );
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "unrecognized_keys":
      return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `'${k}'`).join(", ")}: remove or correct ${issue.keys.length > 1 ? "them" : "it"} (see config/example.yaml)`;
    case "invalid_type":
      return issue.input === undefined ? `missing: add this key (${issue.expected})` : `expected ${issue.expected}, not ${typeof issue.input}`;
    default:
      return issue.message;
  }
}

function resolveConfig(raw: RawConfig, baseDir: string): Config {
  const problems: string[] = [];
  const resolvePath = (p: string) => path.resolve(baseDir, p);
  const readSecret = (key: string, file: string): string | undefined => {
    const read = readSecretFile(resolvePath(file), file);
    if ("problem" in read) {
      problems.push(`  ${key}: ${read.problem}`);
      return undefined;
    }
    // A trailing newline is what editors and `echo` add; it is never part of a password.
    return read.text.replace(/\r?\n$/, "");
  };
  /** A CA certificate is public: any mode will do. */
  const readPublic = (key: string, file: string): string | undefined => {
    try {
      return readFileSync(resolvePath(file), "utf8");
    } catch (error) {
      problems.push(
        `  ${key}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? "error"}): check the path and that the daemon's user may read it`,
      );
      return undefined;
    }
  };

  const names = new Set<string>();
  const queues = raw.queues.map((q, index): QueueConfig => {
    const at = `queues[${index}]`;
    if (names.has(q.name)) problems.push(`  ${at}.name: '${q.name}' is used twice: give every queue its own name`);
    names.add(q.name);

    const handlerNames = q.handlers.map((h) => h.name ?? h.type);
    for (const [i, handler] of handlerNames.entries()) {
      if (handlerNames.indexOf(handler) !== i)
        problems.push(`  ${at}.handlers[${i}].name: '${handler}' is used twice in this queue: give each handler its own name`);
    }

    const identity = { ...raw.identity, ...q.identity };
    const imap = { ...raw.imap, ...q.imap };
    const graph = { ...raw.graph, ...q.graph };
    const source = q.source ?? "imap";
    const signInUser = (q.signIn?.user ?? q.address).toLowerCase();
    if (!identity.tenantId)
      problems.push(
        `  ${at}.identity.tenantId: missing: write the Directory (tenant) ID (admin guide, section 2.2 step 8) here or in the top-level identity block`,
      );
    if (!identity.clientId)
      problems.push(
        `  ${at}.identity.clientId: missing: write the Application (client) ID (admin guide, section 2.2 step 7) here or in the top-level identity block`,
      );

    const scopes = identity.scopes ?? defaultScopes(source, q.address.toLowerCase(), signInUser);
    const scopeProblem = source === "graph" ? checkGraphScopes(scopes, q.address.toLowerCase() !== signInUser) : checkScopes(scopes);
    if (scopeProblem) problems.push(`  ${at}.identity.scopes: ${scopeProblem}`);

    const pollText = q.poll ?? raw.poll ?? "60s";
    const intervalMs = parseInterval(pollText);
    if (imap.tls === false && !isLoopbackHost(imap.host ?? DEFAULT_IMAP_HOST) && imap.allowCleartext !== true) {
      problems.push(
        `  ${at}.imap.tls: false to ${imap.host ?? DEFAULT_IMAP_HOST} sends the access token and every message across the network in clear text: remove it (TLS is the default), or, if the network between is trusted, set imap.allowCleartext: true`,
      );
    }
    const password = q.signIn?.passwordFile ? readSecret(`${at}.signIn.passwordFile`, q.signIn.passwordFile) : undefined;
    const readCa = (key: string, file?: string) => (file ? readPublic(key, file) : undefined);

    return {
      name: q.name,
      address: q.address.toLowerCase(),
      signIn: { user: signInUser, password },
      identity: {
        tenantId: identity.tenantId ?? "",
        clientId: identity.clientId ?? "",
        authority: (identity.authority ?? `${DEFAULT_AUTHORITY_HOST}/${identity.tenantId ?? ""}`).replace(/\/+$/, ""),
        ca: readCa(`${at}.identity.caFile`, identity.caFile),
        scopes,
      },
      source,
      graph: { host: new URL(graph.host ?? DEFAULT_GRAPH_HOST).origin, ca: readCa(`${at}.graph.caFile`, graph.caFile) },
      imap: {
        host: imap.host ?? DEFAULT_IMAP_HOST,
        port: imap.port ?? 993,
        tls: imap.tls ?? true,
        ca: readCa(`${at}.imap.caFile`, imap.caFile),
        allowCleartext: imap.allowCleartext,
      },
      folder: q.folder ?? "INBOX",
      afterSpool: afterSpoolOf(q, at, problems),
      maxMessageSize: parseByteSize(q.maxMessageSize ?? "25MB")!,
      idle: q.idle ?? true,
      poll: intervalMs !== undefined ? { intervalMs } : { cron: pollText },
      handlers: q.handlers.map((h, i) => resolveHandler(h, { at: `${at}.handlers[${i}]`, resolvePath, readSecret, problems })),
    };
  });

  const http = raw.http ? httpOf(raw.http, readSecret, readPublic, problems) : undefined;
  const keepDelivered = parseInterval(raw.retention?.keepDelivered ?? "7d")!;
  const forgetAfter = parseInterval(raw.retention?.forgetAfter ?? "180d")!;
  if (forgetAfter < keepDelivered) problems.push("  retention.forgetAfter: must be at least retention.keepDelivered (rows outlive files)");

  const postgres = raw.state.postgres ? postgresOf(raw.state.postgres, readSecret, readPublic, problems) : undefined;

  if (problems.length > 0) throw new ConfigError(`the config is not valid:\n${problems.join("\n")}`);
  return deepFreeze({
    stateDir: resolvePath(raw.state.dir),
    keyFile: resolvePath(raw.state.keyFile),
    ...(postgres ? { postgres } : {}),
    logLevel: raw.log?.level ?? "info",
    retention: {
      keepDeliveredMs: keepDelivered,
      forgetAfterMs: forgetAfter,
      schedule: raw.retention?.schedule ?? "17 3 * * *",
    },
    delivery: {
      messagesInFlight: raw.delivery?.messagesInFlight ?? DEFAULT_DELIVERY_BUDGET.messages,
      bytesInFlight: raw.delivery?.bytesInFlight === undefined ? DEFAULT_DELIVERY_BUDGET.bytes : parseByteSize(raw.delivery.bytesInFlight)!,
    },
    queues,
    http,
  });
}

/** The HTTP surface: a port open beyond this machine must never be open to anyone. */
function httpOf(
  raw: NonNullable<RawConfig["http"]>,
  readSecret: (key: string, file: string) => string | undefined,
  readPublic: (key: string, file: string) => string | undefined,
  problems: string[],
): HttpConfig {
  const listen = parseListenAddress(raw.listen ?? DEFAULT_HTTP_LISTEN)!;
  const tls = httpTlsOf(raw, readSecret, readPublic, problems);
  if (!isLoopbackHost(listen.host) && !tls && !(raw.tlsCertFile || raw.tlsKeyFile)) {
    problems.push(
      `  http.tlsCertFile: missing: http.listen ${raw.listen} is reachable from other machines, so the bearer token and the status must not travel in clear text; name a certificate and its key (tlsCertFile, tlsKeyFile; a self-signed one: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 -subj /CN=mailfetchd -keyout /etc/mailfetchd/http.key -out /etc/mailfetchd/http.crt), or listen on 127.0.0.1 behind a TLS proxy`,
    );
  }
  if (!raw.bearerTokenFile) {
    if (!isLoopbackHost(listen.host)) {
      problems.push(
        `  http.bearerTokenFile: missing: http.listen ${raw.listen} is reachable from other machines, so every request must carry a bearer token; write one (openssl rand -hex 32 > /etc/mailfetchd/http.token) and name that file here, or listen on 127.0.0.1`,
      );
    }
    return { host: listen.host, port: listen.port, tls };
  }
  const token = readSecret("http.bearerTokenFile", raw.bearerTokenFile)?.trim();
  if (token !== undefined && !/^[\x21-\x7e]{16,}$/.test(token)) {
    problems.push("  http.bearerTokenFile: the token must be at least 16 printable characters without spaces; write a new one: openssl rand -hex 32 > FILE");
  }
  return { host: listen.host, port: listen.port, bearerToken: token, tls };
}

/** The certificate and key, both or neither, checked to belong together so a mistake stops the start, not the first request. */
function httpTlsOf(
  raw: NonNullable<RawConfig["http"]>,
  readSecret: (key: string, file: string) => string | undefined,
  readPublic: (key: string, file: string) => string | undefined,
  problems: string[],
): HttpConfig["tls"] {
  if (!raw.tlsCertFile && !raw.tlsKeyFile) return undefined;
  if (!raw.tlsCertFile || !raw.tlsKeyFile) {
    problems.push(
      `  http.${raw.tlsCertFile ? "tlsKeyFile" : "tlsCertFile"}: missing: name both the certificate (tlsCertFile) and its private key (tlsKeyFile), or neither`,
    );
    return undefined;
  }
  const cert = readPublic("http.tlsCertFile", raw.tlsCertFile);
  const key = readSecret("http.tlsKeyFile", raw.tlsKeyFile);
  if (cert === undefined || key === undefined) return undefined;
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    problems.push(
      `  http.tlsCertFile: ${raw.tlsCertFile} and ${raw.tlsKeyFile} are not a usable PEM certificate and matching private key (${(error as NodeJS.ErrnoException).code ?? "invalid"}): check both files`,
    );
    return undefined;
  }
  return { cert, key };
}

function afterSpoolOf(q: RawConfig["queues"][number], at: string, problems: string[]): QueueConfig["afterSpool"] {
  const action = q.afterSpool ?? "keep";
  if (action === "move") {
    if (q.moveTo) return { action, to: q.moveTo };
    problems.push(`  ${at}.moveTo: missing: with afterSpool: move, name the folder to move fetched mail to (e.g. moveTo: Processed)`);
    return { action: "keep" };
  }
  if (q.moveTo) problems.push(`  ${at}.moveTo: only used with afterSpool: move; remove it or set afterSpool: move`);
  return { action };
}

/**
 * The most common mistake in the wild: a Graph scope (or a bare permission name, which means
 * Graph) yields a token Exchange rejects with "AUTHENTICATE failed".
 */
export function checkScopes(scopes: readonly string[]): string | undefined {
  const resource = scopes.filter((s) => !["offline_access", "openid", "profile", "email"].includes(s));
  const exchange = resource.filter((s) => /^https:\/\/outlook\.office(365)?\.com\//i.test(s));
  if (exchange.length === 0) {
    return "no Exchange Online IMAP scope: write https://outlook.office.com/IMAP.AccessAsUser.All (a bare IMAP.AccessAsUser.All or a graph.microsoft.com scope gives a Graph token that IMAP rejects)";
  }
  if (exchange.length !== resource.length) {
    return `only Exchange scopes may be requested together (Microsoft refuses a request spanning two resources, AADSTS28000): remove ${resource.filter((s) => !exchange.includes(s)).join(", ")}`;
  }
  if (!scopes.includes("offline_access")) {
    return "add offline_access: without it there is no refresh token and the mailbox signs in with its password every hour";
  }
  return undefined;
}

/**
 * What a queue asks the identity platform for when `identity.scopes` is not set: Exchange's IMAP
 * permission for IMAP; Graph's Mail.ReadWrite for Graph, plus Mail.ReadWrite.Shared when the
 * queue mailbox is not the sign-in user's own. One resource per token request either way.
 */
export function defaultScopes(source: "imap" | "graph", address: string, signInUser: string): string[] {
  if (source === "imap") return DEFAULT_SCOPES;
  return address === signInUser ? [GRAPH_MAIL_SCOPE, "offline_access"] : [GRAPH_MAIL_SCOPE, GRAPH_SHARED_MAIL_SCOPE, "offline_access"];
}

/** The mirror of checkScopes for a `source: graph` queue: Graph scopes only, with the mail permission it needs. */
export function checkGraphScopes(scopes: readonly string[], sharedMailbox: boolean): string | undefined {
  const resource = scopes.filter((s) => !["offline_access", "openid", "profile", "email"].includes(s));
  const graph = resource.filter((s) => /^https:\/\/graph\.microsoft\.com\//i.test(s));
  if (graph.length !== resource.length) {
    return `a source: graph queue requests Microsoft Graph scopes only (one resource per token, AADSTS28000): remove ${resource.filter((s) => !graph.includes(s)).join(", ")}`;
  }
  const needed = sharedMailbox ? GRAPH_SHARED_MAIL_SCOPE : GRAPH_MAIL_SCOPE;
  if (!graph.some((s) => s.toLowerCase() === needed.toLowerCase())) {
    return `add ${needed}${sharedMailbox ? " (the queue mailbox is not the sign-in user's own)" : ""}, or remove identity.scopes to use the default`;
  }
  if (!scopes.includes("offline_access")) {
    return "add offline_access: without it there is no refresh token and the mailbox signs in with its password every hour";
  }
  return undefined;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
