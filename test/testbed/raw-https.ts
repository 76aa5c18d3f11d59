/**
 * Plain HTTP(S) form posts for protocol-level assertions on the identity stand-in, where MSAL
 * would hide the wire format (status codes, headers, error bodies).
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Record<string, unknown>;
}

export function postForm(url: string, form: Record<string, string>, options: { ca?: string; timeoutMs?: number } = {}): Promise<RawResponse> {
  const payload = new URLSearchParams(form).toString();
  const request = url.startsWith("https:") ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const outgoing = request(
      url,
      {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        ca: options.ca,
        timeout: options.timeoutMs ?? 5_000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: JSON.parse(text) as Record<string, unknown> });
        });
      },
    );
    outgoing.on("timeout", () => outgoing.destroy(new Error("timeout")));
    outgoing.on("error", reject);
    outgoing.end(payload);
  });
}

export function getJson(url: string, options: { ca?: string } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const outgoing = httpsRequest(url, { method: "GET", ca: options.ca }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>,
        }),
      );
    });
    outgoing.on("error", reject);
    outgoing.end();
  });
}
