/** Test helpers: an `http` block added to a config written by the test bed, and a token file. */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { parse, stringify } from "yaml";

export function addHttpBlock(configFile: string, http: { listen: string; bearerTokenFile?: string }, into = configFile): string {
  const config = parse(readFileSync(configFile, "utf8")) as Record<string, unknown>;
  writeFileSync(into, stringify({ ...config, http }), { mode: 0o600 });
  return into;
}

export function writeTokenFile(file: string): string {
  const token = randomBytes(32).toString("hex");
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return token;
}

/** Polls until `condition` holds; fails naming `what`. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A message of about `bytes` bytes, for a queue's size cap. */
export function largeMessage(to: string, bytes: number): string {
  const line = "x".repeat(76);
  const body = Array.from({ length: Math.ceil(bytes / 78) }, () => line).join("\r\n");
  return [
    "From: Big Sender <big@example.test>",
    `To: ${to}`,
    "Subject: a large attachment",
    "Message-ID: <large-1@example.test>",
    "Date: Wed, 20 May 2026 10:00:00 +0000",
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=us-ascii",
    "",
    body,
    "",
  ].join("\r\n");
}
