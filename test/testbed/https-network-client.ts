/**
 * A minimal msal-node network module on node:https that trusts an extra CA.
 *
 * msal-node's default client (fetch) cannot be given a CA per instance, only through
 * NODE_EXTRA_CA_CERTS before the process starts. Tests only; the product has its own.
 */
import { request } from "node:https";
import { rootCertificates } from "node:tls";
import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from "@azure/msal-node";

export function httpsNetworkClient(caPem: string): INetworkModule {
  const ca = [...rootCertificates, caPem];
  const send = <T>(method: "GET" | "POST", url: string, options?: NetworkRequestOptions, timeoutMs?: number) =>
    new Promise<NetworkResponse<T>>((resolve, reject) => {
      const outgoing = request(url, { method, headers: options?.headers, ca, timeout: timeoutMs ?? 10_000 }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(response.headers)) {
            if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
          }
          try {
            const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as T;
            resolve({ headers, body, status: response.statusCode ?? 0 });
          } catch (error) {
            reject(error);
          }
        });
        response.on("error", reject);
      });
      outgoing.on("timeout", () => outgoing.destroy(new Error(`request timed out: ${method} ${url}`)));
      outgoing.on("error", reject);
      outgoing.end(method === "POST" ? (options?.body ?? "") : undefined);
    });
  return {
    sendGetRequestAsync: (url, options, timeout) => send("GET", url, options, timeout),
    sendPostRequestAsync: (url, options) => send("POST", url, options),
  };
}
