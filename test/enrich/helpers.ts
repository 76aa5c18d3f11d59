import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import type { ParsedMessage } from "../../src/interfaces.js";
import { MailparserParser } from "../../src/parse/mail-parser.js";

export const ENRICH_FIXTURES = fileURLToPath(new URL("../fixtures/enrich/", import.meta.url));

export function fixture(path: string): Buffer {
  return readFileSync(ENRICH_FIXTURES + path);
}

const parser = new MailparserParser();

/** Parses with the real parser, enrichers included: what handlers receive. */
export function parse(raw: Buffer | string): Promise<ParsedMessage> {
  return parser.parse(typeof raw === "string" ? Buffer.from(raw, "utf8") : raw);
}

export function parseFixture(path: string): Promise<ParsedMessage> {
  return parse(fixture(path));
}

/** A message from header lines and a body, CRLF line endings. */
export function mail(headers: readonly string[], body: string | readonly string[] = "Hello"): string {
  const bodyLines = typeof body === "string" ? [body] : body;
  return [...headers, "", ...bodyLines, ""].join("\r\n");
}

export interface CustomerMail {
  readonly from?: string;
  readonly subject?: string;
  readonly messageId?: string | null;
  readonly contentType?: string;
  /** More header lines, after the usual ones. */
  readonly headers?: readonly string[];
  readonly body?: string | readonly string[];
}

let sequence = 0;

/** A plain message from a customer with the usual headers, as a mail client writes it. */
export function customerMail(options: CustomerMail = {}): string {
  const messageId = options.messageId === undefined ? `<msg-${++sequence}@example.net>` : options.messageId;
  return mail(
    [
      `From: ${options.from ?? "Carla Customer <carla@example.net>"}`,
      "To: support@contoso.example",
      `Subject: ${options.subject ?? "My order"}`,
      "Date: Tue, 5 Mar 2024 10:00:00 +0000",
      ...(messageId === null ? [] : [`Message-ID: ${messageId}`]),
      "MIME-Version: 1.0",
      `Content-Type: ${options.contentType ?? "text/plain; charset=utf-8"}`,
      ...(options.headers ?? []),
    ],
    options.body ?? "Hello",
  );
}
