/**
 * The composition root: builds every subsystem once and wires one pipeline per queue
 *   token provider -> IMAP mailbox -> spool -> deliverer -> handlers
 * start()/stop() are idempotent; stop() tears down in order, each step on its own, within a
 * deadline, because anything unfinished is safe to abandon: the spool holds it.
 */
import type { Config, HandlerConfig, QueueConfig } from "./config/schema.js";
import { createDirectoryHandler } from "./handlers/directory.js";
import { IdleWatcher } from "./imap/idle-watcher.js";
import { ImapMailbox } from "./imap/imap-mailbox.js";
import type { Handler, Logger } from "./interfaces.js";
import type { SecretRegistry } from "./log.js";
import { MailparserParser } from "./parse/mail-parser.js";
import { Deliverer } from "./queue/deliverer.js";
import { DaemonEvents } from "./events.js";
import { handlerName, Poller } from "./queue/poller.js";
import { QueueStatusStore } from "./state/queue-status-store.js";
import { Spool } from "./spool/spool.js";
import { openStateDatabase, type StateDatabase } from "./state/database.js";
import { SecretBox } from "./state/secret-box.js";
import { ConcurrencyLimiter } from "./tokens/identity-http-client.js";
import { MsalTokenProvider } from "./tokens/msal-token-provider.js";
import { TokenCacheStore } from "./tokens/token-cache-store.js";

/** Token requests in flight at once across all queues: 200 queues starting do not stampede. */
const IDENTITY_CONCURRENCY = 4;

interface QueuePipeline {
  readonly config: QueueConfig;
  readonly poller: Poller;
  readonly deliverer: Deliverer;
  readonly idle?: IdleWatcher;
}

export class Daemon {
  private readonly db: StateDatabase;
  private readonly pipelines: QueuePipeline[];
  readonly events = new DaemonEvents();
  readonly status: QueueStatusStore;
  readonly spool: Spool;
  private stopping?: Promise<void>;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    secrets: SecretRegistry,
  ) {
    const box = SecretBox.fromFile(config.keyFile);
    this.db = openStateDatabase(config.stateDir);
    const store = new TokenCacheStore(this.db, box, (queue, values) => values.forEach((v, i) => secrets.set(`${queue}:token:${i}`, v)));
    const spool = (this.spool = new Spool(this.db, config.stateDir));
    const status = (this.status = new QueueStatusStore(this.db));
    status.retain(config.queues.map((q) => q.name));
    const events = this.events;
    const parser = new MailparserParser();
    const limiter = new ConcurrencyLimiter(IDENTITY_CONCURRENCY);

    this.pipelines = config.queues.map((queue) => {
      secrets.set(`${queue.name}:password`, queue.signIn.password);
      const log = logger.child({ queue: queue.name });
      const tokens = new MsalTokenProvider({
        queue,
        store,
        limiter,
        logger: log,
        onToken: (expiresOn) => {
          status.recordTokenExpiry(queue.name, expiresOn);
          events.emit("token-acquired", { queue: queue.name, expiresOn });
        },
      });
      const handlers = new Map<string, Handler>(queue.handlers.map((h) => [handlerName(h), createHandler(h)]));
      const deliverer = new Deliverer({ name: queue.name, address: queue.address }, { spool, parser, handlers, events, logger: log });
      const mailbox = new ImapMailbox(queue, tokens, log);
      const poller = new Poller(queue, { mailbox, spool, status, events, logger: log });
      const idle = queue.idle ? new IdleWatcher(queue, mailbox, () => void poller.runCycle(), log) : undefined;
      return { config: queue, poller, deliverer, idle };
    });
  }

  start(): void {
    const byName = new Map(this.pipelines.map((p) => [p.config.name, p]));
    this.events.on("spooled", (event) => byName.get(event.queue)?.deliverer.wake());
    for (const pipeline of this.pipelines) {
      pipeline.deliverer.start();
      pipeline.poller.start();
      pipeline.idle?.start();
    }
    this.logger.info({ queues: this.pipelines.map((p) => p.config.name) }, "mailfetchd started");
  }

  stop(deadlineMs = 20_000): Promise<void> {
    this.stopping ??= this.tearDown(deadlineMs);
    return this.stopping;
  }

  private async tearDown(deadlineMs: number): Promise<void> {
    const steps = this.pipelines.flatMap((p) => [p.idle?.stop(), p.poller.stop(), p.deliverer.stop()]);
    const finished = Promise.allSettled(steps).then(() => true);
    const timedOut = new Promise<false>((resolve) => setTimeout(() => resolve(false), deadlineMs).unref());
    if (!(await Promise.race([finished, timedOut]))) {
      this.logger.warn({ deadlineMs }, "stop deadline passed; abandoning in-flight work (it stays in the spool and is redone at the next start)");
    }
    try {
      this.db.close();
    } catch (error) {
      this.logger.error({ err: error }, "closing the state database failed");
    }
    this.logger.info("mailfetchd stopped");
  }
}

function createHandler(config: HandlerConfig): Handler {
  switch (config.type) {
    case "directory":
      return createDirectoryHandler({ name: handlerName(config), path: config.path });
  }
}
