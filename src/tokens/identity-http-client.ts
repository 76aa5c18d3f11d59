/**
 * MSAL's network module: node:https with the operator's extra CA (TLS-inspecting proxies,
 * the test bed), a timeout on every request, and one bound on concurrent requests shared by
 * every queue, so hundreds of queues starting together do not stampede the identity endpoint.
 *
 * Transport failures, throttling (429) and server errors (5xx) are thrown as AuthErrors with
 * our own codes: MSAL passes AuthErrors through unchanged, where it would flatten any other
 * error into a bare "network_error". That also keeps MSAL's own throttling cache (which it
 * fills from 429/5xx answers it sees) out of play: the waiting is ours, and visible.
 *
 * Two answers MSAL would lose are kept: a refused device code request or poll is thrown as a
 * ServerError with its AADSTS code (MSAL reduces it to "post_request_failed"), and a failed discovery
 * request is remembered (MSAL reports only "endpoints_resolution_error", whether the tenant
 * does not exist or the network is down).
 */
import { AuthError, ServerError, type INetworkModule, type NetworkRequestOptions, type NetworkResponse } from "@azure/msal-node";
import https from "node:https";
import tls from "node:tls";

export const IDENTITY_UNAVAILABLE = "identity_unavailable";
export const IDENTITY_THROTTLED = "identity_throttled";

/** An AuthError that also says when to try again, when the server said so. */
export class IdentityTransportError extends AuthError {
  constructor(
    code: typeof IDENTITY_UNAVAILABLE | typeof IDENTITY_THROTTLED,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    // msal-common 16: (errorCode, correlationId, errorMessage).
    super(code, "", message);
    // AuthError's constructor pins the prototype to AuthError; without this, instanceof fails.
    Object.setPrototypeOf(this, IdentityTransportError.prototype);
    this.name = "IdentityTransportError";
  }
}

export interface IdentityHttpClientOptions {
  /** Extra trusted CA certificates (PEM), added to Node's bundled roots. */
  readonly ca?: string;
  readonly timeoutMs?: number;
  readonly limiter: ConcurrencyLimiter;
}

/** When a 429 names no Retry-After: Microsoft's guidance is to wait, not to retry at once. */
const DEFAULT_THROTTLE_MS = 60_000;

export class IdentityHttpClient implements INetworkModule {
  private readonly agent: https.Agent;
  private readonly timeoutMs: number;
  /** After a 429, no request leaves before this time (ms since epoch). */
  private notBefore = 0;
  /** Why the last discovery (GET) request failed, if it did; cleared by the next success. */
  lastDiscoveryFailure?: AuthError;

  constructor(private readonly options: IdentityHttpClientOptions) {
    this.agent = sharedAgent(options.ca);
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  async sendGetRequestAsync<T>(url: string, options?: NetworkRequestOptions, timeout?: number): Promise<NetworkResponse<T>> {
    try {
      const response = await this.send<T>("GET", url, options, timeout);
      this.lastDiscoveryFailure = response.status >= 400 ? serverErrorOf(response.body, response.status) : undefined;
      return response;
    } catch (error) {
      this.lastDiscoveryFailure = error instanceof AuthError ? error : undefined;
      throw error;
    }
  }

  async sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    const response = await this.send<T>("POST", url, options);
    // MSAL reads a device code answer without looking for an error, and reduces a refused poll
    // to "post_request_failed": both would hide the AADSTS code the operator needs.
    if (response.status >= 400 && (new URL(url).pathname.endsWith("/devicecode") || isDeviceCodePoll(options?.body))) {
      const refused = serverErrorOf(response.body, response.status);
      if (refused && refused.errorCode !== "authorization_pending") throw refused;
    }
    return response;
  }

  private async send<T>(method: string, url: string, options?: NetworkRequestOptions, timeout?: number): Promise<NetworkResponse<T>> {
    const waitMs = this.notBefore - Date.now();
    if (waitMs > 0) {
      throw new IdentityTransportError(IDENTITY_THROTTLED, `${new URL(url).host} asked us to wait (HTTP 429); ${Math.ceil(waitMs / 1000)} s left`, waitMs);
    }
    try {
      return await this.options.limiter.run(() => this.request<T>(method, url, options, timeout ?? this.timeoutMs));
    } catch (error) {
      if (error instanceof IdentityTransportError && error.errorCode === IDENTITY_THROTTLED) {
        this.notBefore = Date.now() + (error.retryAfterMs ?? DEFAULT_THROTTLE_MS);
      }
      throw error;
    }
  }

  private request<T>(method: string, url: string, options: NetworkRequestOptions | undefined, timeoutMs: number): Promise<NetworkResponse<T>> {
    const target = new URL(url);
    return new Promise((resolve, reject) => {
      const body = options?.body;
      const request = https.request(
        target,
        {
          method,
          agent: this.agent,
          headers: {
            ...options?.headers,
            ...(body !== undefined ? { "content-length": Buffer.byteLength(body).toString() } : {}),
          },
          timeout: timeoutMs,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("error", (error) => reject(unavailable(target, error.message)));
          response.on("end", () => {
            const status = response.statusCode ?? 0;
            const headers = flattenHeaders(response.headers);
            const text = Buffer.concat(chunks).toString("utf8");
            if (status === 429 || status >= 500) {
              const retryAfterMs = parseRetryAfter(headers["retry-after"]);
              const code = status === 429 ? IDENTITY_THROTTLED : IDENTITY_UNAVAILABLE;
              reject(new IdentityTransportError(code, `${target.host} answered HTTP ${status}`, retryAfterMs));
              return;
            }
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : {};
            } catch {
              reject(unavailable(target, `answered HTTP ${status} with a body that is not JSON`));
              return;
            }
            resolve({ status, headers, body: parsed as T });
          });
        },
      );
      request.on("timeout", () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      request.on("error", (error: NodeJS.ErrnoException) => reject(unavailable(target, error.code ?? error.message)));
      if (body !== undefined) request.write(body);
      request.end();
    });
  }
}

/**
 * One keep-alive agent per trusted CA set, shared by every queue: 200 queues talk to one
 * identity host over a few warm connections instead of 200 TLS handshakes and idle sockets.
 */
const agents = new Map<string, https.Agent>();

function sharedAgent(ca: string | undefined): https.Agent {
  const key = ca ?? "";
  let agent = agents.get(key);
  if (!agent) {
    agent = new https.Agent({ keepAlive: true, maxSockets: 8, ca: ca ? [...tls.rootCertificates, ca] : undefined });
    agents.set(key, agent);
  }
  return agent;
}

function isDeviceCodePoll(body: string | undefined): boolean {
  if (!body) return false;
  const grant = new URLSearchParams(body).get("grant_type");
  return grant === "device_code" || grant === "urn:ietf:params:oauth:grant-type:device_code";
}

/** An OAuth error answer as MSAL would build it for a token request: code, suberror, AADSTS number. */
function serverErrorOf(body: unknown, status: number): ServerError | undefined {
  if (!body || typeof body !== "object") return undefined;
  const answer = body as { error?: unknown; error_description?: unknown; suberror?: unknown; error_codes?: unknown; correlation_id?: unknown };
  if (typeof answer.error !== "string") return undefined;
  const codes = Array.isArray(answer.error_codes) ? answer.error_codes : [];
  return new ServerError(
    answer.error,
    typeof answer.correlation_id === "string" ? answer.correlation_id : "",
    typeof answer.error_description === "string" ? answer.error_description : undefined,
    typeof answer.suberror === "string" ? answer.suberror : undefined,
    codes.length > 0 ? String(codes[0]) : undefined,
    status,
  );
}

function unavailable(target: URL, reason: string): IdentityTransportError {
  return new IdentityTransportError(IDENTITY_UNAVAILABLE, `cannot reach the identity endpoint ${target.host}: ${reason}`);
}

function flattenHeaders(headers: NodeJS.Dict<string | string[]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** A counting semaphore: at most `limit` tasks run at once, the rest wait in order. */
export class ConcurrencyLimiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}
