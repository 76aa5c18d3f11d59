/**
 * Signing the Standard Webhooks way (https://www.standardwebhooks.com, spec 1.0.0):
 *
 *   webhook-id:        the message's stable id (the receiver's idempotency key)
 *   webhook-timestamp: unix seconds of this attempt (a retry is signed afresh)
 *   webhook-signature: "v1," + base64(HMAC-SHA256(key, `${id}.${timestamp}.${body}`)),
 *                      one per key, space-separated, so a receiver can rotate keys
 *
 * The spec serialises a symmetric key as "whsec_" + base64 of 24 to 64 random bytes; that is
 * the only form accepted. Libraries disagree on what a bare string means (some base64-decode
 * it, some use its bytes), so guessing would give signatures one receiver accepts and
 * another rejects.
 */
import { createHmac } from "node:crypto";

export const SECRET_PREFIX = "whsec_";
const MIN_KEY_BYTES = 24;
const MAX_KEY_BYTES = 64;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** How an operator makes a key the spec's way. */
export const SECRET_RECIPE = `printf 'whsec_%s\\n' "$(openssl rand -base64 32)" > FILE`;

export interface StandardWebhookHeaders {
  readonly "webhook-id": string;
  readonly "webhook-timestamp": string;
  readonly "webhook-signature"?: string;
}

/**
 * The HMAC keys in a secret file's text: one "whsec_..." per non-empty line (the first signs
 * alone in steady state; two during a rotation). Throws an Error whose message never contains
 * the secret, only what is wrong with its shape.
 */
export function parseSigningSecrets(text: string): Buffer[] {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "");
  if (lines.length === 0) throw new Error(`the file is empty: write a key made with ${SECRET_RECIPE}`);
  return lines.map((line, index) => decodeSecret(line, lines.length > 1 ? `line ${index + 1}` : "the key"));
}

function decodeSecret(line: string, where: string): Buffer {
  if (!line.startsWith(SECRET_PREFIX)) {
    return fail(`${where} does not start with "${SECRET_PREFIX}" (Standard Webhooks keys are "${SECRET_PREFIX}" + base64)`);
  }
  const encoded = line.slice(SECRET_PREFIX.length);
  if (!BASE64.test(encoded)) return fail(`${where} is not valid base64 after "${SECRET_PREFIX}"`);
  const key = Buffer.from(encoded, "base64");
  if (key.length < MIN_KEY_BYTES || key.length > MAX_KEY_BYTES) {
    return fail(`${where} decodes to ${key.length} bytes; the spec wants ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES}`);
  }
  return key;
}

function fail(problem: string): never {
  throw new Error(`${problem}: write a key made with ${SECRET_RECIPE}`);
}

/** The three headers for one attempt. Without keys the request is unsigned (id and timestamp still sent). */
export function signWebhook(keys: readonly Buffer[], id: string, timestampSeconds: number, body: Buffer): StandardWebhookHeaders {
  // The spec forbids a "." in the id (it would let one signed content pass for another).
  if (id.includes(".")) throw new Error("a Standard Webhooks id must not contain '.'");
  const timestamp = String(Math.floor(timestampSeconds));
  const headers = { "webhook-id": id, "webhook-timestamp": timestamp };
  if (keys.length === 0) return headers;
  const prefix = Buffer.from(`${id}.${timestamp}.`, "utf8");
  const signatures = keys.map((key) => `v1,${createHmac("sha256", key).update(prefix).update(body).digest("base64")}`);
  return { ...headers, "webhook-signature": signatures.join(" ") };
}
