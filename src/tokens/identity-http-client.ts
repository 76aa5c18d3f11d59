/**
 * MSAL's network module: node:https with the operator's extra CA (TLS-inspecting proxies,
 * the test bed), a timeout on every request, and one bound on concurrent requests shared by
 * every queue, so hundreds of queues starting together do not stampede the identity endpoint.
 *
 * Transport failures, throttling (429) and server errors (5xx) are thrown as AuthErrors with
 * our own codes: MSAL passes AuthErrors through unchanged, where it would flatten any other
 * error into a bare "network_error".
 */
import { AuthError, type INetworkModule, type NetworkRequestOptions, type NetworkResponse } from "@azure/msal-node";
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
    super(code, message);
    this.name = "IdentityTransportError";
  }
}

export interface IdentityHttpClientOptions {
  /** Extra trusted CA certificates (PEM), added to Node's bundled roots. */
  readonly ca?: string;
  readonly timeoutMs?: number;
  readonly limiter: ConcurrencyLimiter;
}

export class IdentityHttpClient implements INetworkModule {
  private readonly agent: https.Agent;
  private readonly timeoutMs: number;

  constructor(private readonly options: IdentityHttpClientOptions) {
    this.agent = new https.Agent({
      keepAlive: true,
      maxSockets: 8,
      ca: options.ca ? [...tls.rootCertificates, options.ca] : undefined,
    });
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  sendGetRequestAsync<T>(url: string, options?: NetworkRequestOptions, timeout?: number): Promise<NetworkResponse<T>> {
    return this.send<T>("GET", url, options, timeout);
  }

  sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    return this.send<T>("POST", url, options);
  }

  private async send<T>(method: string, url: string, options?: NetworkRequestOptions, timeout?: number): Promise<NetworkResponse<T>> {
    return this.options.limiter.run(() => this.request<T>(method, url, options, timeout ?? this.timeoutMs));
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
