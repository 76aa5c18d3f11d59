/**
 * The HTTP surface (node:http): /livez, /readyz, /metrics, the status page (/ and /status)
 * and /status.json. Off unless the config has an `http` block. When a bearer token is
 * configured (always, off loopback) every path requires it, health probes included: the
 * healthcheck command sends it, and nothing here is public. Off loopback it is HTTPS only (a
 * token in clear text is no token); on loopback only loopback Host names are answered, so a
 * web page cannot read the status by DNS rebinding. Headers must arrive within 10 s, and at
 * most MAX_CONNECTIONS sockets are open at once.
 */
import type { AddressInfo } from "node:net";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from "node:https";
import { MailfetchdError } from "../errors.js";
import type { HttpConfig } from "../config/schema.js";
import type { Logger } from "../interfaces.js";
import type { DaemonMetrics } from "../metrics/daemon-metrics.js";
import { healthToJson, type QueueHealth } from "../metrics/queue-health.js";
import { clusterToJson, type ClusterView } from "../metrics/cluster-view.js";
import { bearerTokenMatches } from "./bearer-auth.js";
import { isLoopbackHost, isLoopbackHostHeader, urlAuthority } from "../support/listen-address.js";
import type { ReadinessTracker } from "./readiness.js";
import type { HourActivity } from "../state/queue-activity.js";
import { renderStatusPage, STATUS_PAGE_CSP } from "./status-page.js";

/** Slow or idle clients must not hold sockets: every answer here is computed in milliseconds. */
const REQUEST_TIMEOUT_MS = 10_000;
/**
 * Sockets open at once. A scraper, a probe and a few browser tabs need a handful; a client
 * opening hundreds (before any authentication) only holds memory and file descriptors.
 */
const MAX_CONNECTIONS = 32;

export interface HttpLimits {
  /** Whole headers must arrive within this long (and the whole request, too). */
  readonly headersTimeoutMs: number;
  readonly maxConnections: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = { headersTimeoutMs: REQUEST_TIMEOUT_MS, maxConnections: MAX_CONNECTIONS };

export interface HttpSurfaceOptions {
  readonly config: HttpConfig;
  readonly metrics: DaemonMetrics;
  readonly readiness: ReadinessTracker;
  /** The configured queues now (a reload may change them). */
  readonly queues: () => readonly string[];
  readonly health: () => Promise<QueueHealth[]>;
  /** Per queue, the last 24 hours' activity for the status page's charts. */
  readonly charts: () => Promise<ReadonlyMap<string, readonly HourActivity[]>>;
  /** Several replicas: who holds which queue (the status page and /status.json show it). */
  readonly cluster?: () => Promise<ClusterView>;
  /** Throws when the state database cannot be read. */
  readonly probeState: () => Promise<void>;
  readonly version: string;
  readonly logger: Logger;
}

const COMMON_HEADERS = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

export class HttpSurface {
  private constructor(
    private readonly server: Server,
    /** Where it listens, e.g. 127.0.0.1:9464. */
    readonly authority: string,
  ) {}

  static async start(options: HttpSurfaceOptions): Promise<HttpSurface> {
    const limits = DEFAULT_HTTP_LIMITS;
    const serverOptions: HttpsServerOptions = {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.headersTimeoutMs,
      // node:http looks for expired headers only this often (default 30 s, which made the 10 s
      // limit ~30 s in practice): check at a tenth of the limit.
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 10))),
      keepAliveTimeout: 5_000,
      // A TLS handshake never finished holds a connection as long as headers never sent.
      ...(options.config.tls
        ? { cert: options.config.tls.cert, key: options.config.tls.key, minVersion: "TLSv1.2" as const, handshakeTimeout: limits.headersTimeoutMs }
        : {}),
    };
    const onRequest = (request: IncomingMessage, response: ServerResponse) => {
      handle(options, request, response).catch((error: unknown) => {
        options.logger.error({ err: error, path: pathOf(request) }, "HTTP request failed");
        if (!response.headersSent) send(response, 500, "text/plain; charset=utf-8", "internal error; see the daemon's log\n");
        else response.destroy();
      });
    };
    const server: Server = options.config.tls ? createHttpsServer(serverOptions, onRequest) : createServer(serverOptions, onRequest);
    server.maxConnections = limits.maxConnections;
    let lastDropWarning = 0;
    server.on("drop", (data?: { remoteAddress?: string }) => {
      // Once a minute at most: a flood must not flood the log too.
      if (Date.now() - lastDropWarning < 60_000) return;
      lastDropWarning = Date.now();
      options.logger.warn({ maxConnections: limits.maxConnections, remote: data?.remoteAddress }, "HTTP connection refused: too many open connections");
    });
    const { host, port } = options.config;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port }, () => {
        server.off("error", reject);
        resolve();
      });
    }).catch((cause: NodeJS.ErrnoException) => {
      throw new MailfetchdError(`Cannot listen for HTTP on ${urlAuthority({ host, port })}: ${cause.code ?? cause.message}.`, {
        code: "HTTP_LISTEN_FAILED",
        retryable: false,
        fix:
          cause.code === "EADDRINUSE"
            ? "Another process uses that port: stop it, or choose another port in http.listen."
            : "Check http.listen: the address must belong to this machine (0.0.0.0 for every interface); ports below 1024 need privileges.",
        cause,
      });
    });
    server.on("error", (error) => options.logger.error({ err: error }, "HTTP server error"));
    // The bound port: the configured one, or the one the system chose for port 0.
    const bound = { host, port: (server.address() as AddressInfo).port };
    options.logger.info(
      {
        listen: urlAuthority(bound),
        scheme: options.config.tls ? "https" : "http",
        authentication: options.config.bearerToken ? "bearer token" : "none (loopback, loopback Host names only)",
      },
      "HTTP surface listening",
    );
    return new HttpSurface(server, urlAuthority(bound));
  }

  /** Stops accepting connections and closes idle and in-flight ones. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}

async function handle(options: HttpSurfaceOptions, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = pathOf(request);
  if (isLoopbackHost(options.config.host) && !isLoopbackHostHeader(request.headers.host)) {
    options.logger.debug({ path, host: request.headers.host?.slice(0, 100) }, "HTTP request refused: Host is not a loopback name");
    send(
      response,
      421,
      "text/plain; charset=utf-8",
      "421 misdirected request: this surface listens on loopback and answers only to Host localhost, 127.0.0.1 or [::1]\n",
    );
    return;
  }
  if (options.config.bearerToken !== undefined && !bearerTokenMatches(request.headers.authorization, options.config.bearerToken)) {
    options.logger.debug({ path, remote: request.socket.remoteAddress }, "HTTP request refused: no valid bearer token");
    response.setHeader("www-authenticate", 'Bearer realm="mailfetchd"');
    send(
      response,
      401,
      "text/plain; charset=utf-8",
      "401 unauthorized: send the header Authorization: Bearer <the token in the file named by http.bearerTokenFile>\n",
    );
    return;
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    response.setHeader("allow", "GET, HEAD");
    send(response, 405, "text/plain; charset=utf-8", "405 method not allowed: use GET\n");
    return;
  }
  switch (path) {
    case "/livez":
      send(response, 200, "text/plain; charset=utf-8", "ok\n");
      return;
    case "/readyz": {
      const readiness = await options.readiness.check(options.queues(), options.probeState);
      send(response, readiness.ready ? 200 : 503, "text/plain; charset=utf-8", readiness.ready ? "ready\n" : `not ready: ${readiness.reason}\n`);
      return;
    }
    case "/metrics":
      send(response, 200, options.metrics.contentType, await options.metrics.render());
      return;
    case "/":
    case "/status": {
      const now = new Date();
      const ready = (await options.readiness.check(options.queues(), options.probeState)).ready;
      response.setHeader("content-security-policy", STATUS_PAGE_CSP);
      response.setHeader("x-frame-options", "DENY");
      send(
        response,
        200,
        "text/html; charset=utf-8",
        renderStatusPage(await options.health(), { now, version: options.version, ready, charts: await options.charts(), cluster: await options.cluster?.() }),
      );
      return;
    }
    case "/status.json": {
      const readiness = await options.readiness.check(options.queues(), options.probeState);
      const cluster = await options.cluster?.();
      const body = {
        generatedAt: new Date().toISOString(),
        version: options.version,
        ready: readiness.ready,
        queues: (await options.health()).map(healthToJson),
        ...(cluster ? clusterToJson(cluster) : {}),
      };
      send(response, 200, "application/json; charset=utf-8", `${JSON.stringify(body, null, 2)}\n`);
      return;
    }
    default:
      send(response, 404, "text/plain; charset=utf-8", "404 not found: try /status, /status.json, /metrics, /livez or /readyz\n");
  }
}

function pathOf(request: IncomingMessage): string {
  const url = request.url ?? "/";
  const end = url.search(/[?#]/);
  return end === -1 ? url : url.slice(0, end);
}

function send(response: ServerResponse, status: number, contentType: string, body: string): void {
  const bytes = Buffer.from(body, "utf8");
  response.writeHead(status, { ...COMMON_HEADERS, "content-type": contentType, "content-length": bytes.length });
  response.end(response.req.method === "HEAD" ? undefined : bytes);
}
