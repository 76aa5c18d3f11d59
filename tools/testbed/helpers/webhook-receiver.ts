/**
 * A real HTTP receiver for webhook tests (node:http on 127.0.0.1, a free port), answering as
 * each test scripts it, and a Standard Webhooks verifier written from the spec with node:crypto
 * only: it shares no code with src/handlers/standard-webhooks.ts, so a signing bug there
 * cannot hide by being mirrored here.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server, type ServerOptions, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface Answer {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** Never answer (until the client gives up or the receiver closes). */
  readonly hang?: boolean;
}

export type Script = (request: ReceivedRequest, index: number) => Answer;

export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  private readonly waiting: Array<{ count: number; resolve: () => void }> = [];
  private readonly hanging = new Set<ServerResponse>();
  private constructor(
    private readonly server: Server,
    private script: Script,
  ) {}

  /** `serverOptions`: e.g. a small maxHeaderSize, so node:http itself answers 431 as a real server would. */
  static async start(script: Script = () => ({ status: 200 }), serverOptions: ServerOptions = {}): Promise<WebhookReceiver> {
    let receiver: WebhookReceiver | undefined;
    const server = createServer(serverOptions, (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => receiver!.answer({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks) }, res));
    });
    receiver = new WebhookReceiver(server, script);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return receiver;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  url(path = "/hook"): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  answerWith(script: Script): void {
    this.script = script;
  }

  /** Resolves once `count` requests have arrived in all. */
  received(count: number): Promise<void> {
    if (this.requests.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push({ count, resolve }));
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private answer(request: ReceivedRequest, res: ServerResponse): void {
    const index = this.requests.push(request) - 1;
    for (const waiter of this.waiting.filter((w) => this.requests.length >= w.count)) {
      this.waiting.splice(this.waiting.indexOf(waiter), 1);
      waiter.resolve();
    }
    const answer = this.script(request, index);
    if (answer.hang) {
      this.hanging.add(res);
      res.on("close", () => this.hanging.delete(res));
      return;
    }
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body ?? "");
  }
}

/**
 * Verifies a request the way a Standard Webhooks receiver does: the key is the base64 after
 * "whsec_", the signed content `${id}.${timestamp}.${body}`, any one "v1," entry may match,
 * and the timestamp must be within five minutes. Returns what is wrong, or undefined.
 */
export function verifyStandardWebhook(request: ReceivedRequest, secret: string, nowSeconds = Date.now() / 1000): string | undefined {
  const id = request.headers["webhook-id"];
  const timestamp = request.headers["webhook-timestamp"];
  const signature = request.headers["webhook-signature"];
  if (typeof id !== "string" || typeof timestamp !== "string" || typeof signature !== "string") return "missing webhook-* headers";
  if (!/^\d+$/.test(timestamp) || Math.abs(Number(timestamp) - nowSeconds) > 300) return `timestamp ${timestamp} outside tolerance`;
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = createHmac("sha256", key)
    .update(Buffer.concat([Buffer.from(`${id}.${timestamp}.`), request.body]))
    .digest();
  for (const entry of signature.split(" ")) {
    const [version, value] = entry.split(",");
    if (version !== "v1" || value === undefined) continue;
    const given = Buffer.from(value, "base64");
    if (given.length === expected.length && timingSafeEqual(given, expected)) return undefined;
  }
  return "no signature matches";
}
