/**
 * Where a queue talks across the network in clear text because the operator said so
 * (`allowCleartext: true`): each is logged as a warning at start and on reload, so an
 * opt-out made for a test never goes unnoticed in production.
 */
import { isLoopbackHost } from "../support/listen-address.js";
import type { QueueConfig } from "./schema.js";

export interface CleartextUse {
  /** The config key that allows it, e.g. "queues[support].imap.allowCleartext". */
  readonly key: string;
  /** The remote host the clear text goes to. */
  readonly host: string;
  readonly carries: string;
}

export function cleartextUses(queue: QueueConfig): CleartextUse[] {
  const uses: CleartextUse[] = [];
  if (!queue.imap.tls && !isLoopbackHost(queue.imap.host)) {
    uses.push({ key: `queues[${queue.name}].imap.allowCleartext`, host: queue.imap.host, carries: "the access token and every message" });
  }
  for (const handler of queue.handlers) {
    if (handler.type !== "webhook") continue;
    const url = new URL(handler.url);
    if (url.protocol === "http:" && !isLoopbackHost(url.hostname.replace(/^\[|\]$/g, ""))) {
      uses.push({
        key: `queues[${queue.name}].handlers[${handler.name ?? "webhook"}].allowCleartext`,
        host: url.hostname,
        carries: "every message and the handler's headers",
      });
    }
  }
  return uses;
}
