/**
 * The composition root: builds every subsystem once and wires one pipeline per queue
 *   token provider -> mail source (IMAP) -> spool -> deliverer -> handlers
 * start()/stop() are idempotent; stop() tears down in order, each step on its own, within a
 * deadline, because anything unfinished is safe to abandon: the spool holds it. reload()
 * applies a new config without a restart: queues added, removed or changed are started or
 * stopped one by one; the state (cursors, spool, token caches) stays where it is.
 * The state store is opened here (src/store/open-store.ts chooses the adapter) and its ports
 * are handed down; nothing below sees which store it is.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { QueueFence } from "./cluster/ports.js";
import { QueueOwnership } from "./cluster/queue-ownership.js";
import { cleartextUses } from "./config/cleartext.js";
import { describeError } from "./errors.js";
import type { Config, HandlerConfig, QueueConfig } from "./config/schema.js";
import { createCommandHandler } from "./handlers/command.js";
import { createDirectoryHandler } from "./handlers/directory.js";
import { createWebhookHandler } from "./handlers/webhook.js";
import { ImapMailbox } from "./imap/imap-mailbox.js";
import { GraphSource } from "./graph/graph-source.js";
import { ImapSource } from "./imap/imap-source.js";
import type { Handler, Logger, TokenProvider } from "./interfaces.js";
import type { MailSource, SourceWatch } from "./source/mail-source.js";
import type { SecretRegistry } from "./log.js";
import { ParserPool } from "./parse/parser-pool.js";
import { Deliverer } from "./queue/deliverer.js";
import { DEFAULT_FETCH_BUDGET, MemoryBudget } from "./queue/memory-budget.js";
import { DaemonEvents } from "./events.js";
import { OperatingSurface } from "./http/operating-surface.js";
import { handlerName, Poller } from "./queue/poller.js";
import { QueueActivity } from "./state/queue-activity.js";
import { SpoolRetention } from "./spool/retention.js";
import { Spool } from "./spool/spool.js";
import { openStateStore } from "./store/open-store.js";
import type { QueueStatusStore, StateStore } from "./store/ports.js";
import { SecretBox } from "./state/secret-box.js";
import { ConcurrencyLimiter } from "./tokens/identity-http-client.js";
import { MsalTokenProvider } from "./tokens/msal-token-provider.js";
import { SignInWatcher } from "./tokens/sign-in-watcher.js";
import { TokenCacheStore } from "./tokens/token-cache-store.js";
import { TokenRefresher } from "./tokens/token-refresher.js";

/** Token requests in flight at once across all queues: 200 queues starting do not stampede. */
const IDENTITY_CONCURRENCY = 4;

interface QueuePipeline {
  readonly config: QueueConfig;
  readonly poller: Poller;
  readonly deliverer: Deliverer;
  /** The source's push session (IMAP IDLE), when the queue has `idle` on and the source can push. */
  readonly idle?: SourceWatch;
  /** Refreshes ahead of expiry and at least daily, so no refresh token dies unused. */
  readonly refresher: TokenRefresher;
}

/** What every queue pipeline shares; built once per daemon. */
interface SharedParts {
  readonly store: TokenCacheStore;
  readonly spool: Spool;
  readonly status: QueueStatusStore;
  readonly events: DaemonEvents;
  readonly parser: ParserPool;
  readonly limiter: ConcurrencyLimiter;
  readonly secrets: SecretRegistry;
  /** Messages in flight and their bytes, across all queues: N busy queues stay inside one bound. */
  /** What every queue's deliveries hold at once (src/queue/memory-budget.ts). */
  readonly deliveryBudget: MemoryBudget;
  /** What every queue's fetching holds at once. */
  readonly fetchBudget: MemoryBudget;
}

/** Config keys that only a restart applies: they shape what the daemon opened at start. */
const RESTART_ONLY = ["stateDir", "keyFile", "postgres", "http", "delivery"] as const;

export class Daemon {
  /** Everything kept between runs, behind the store ports (src/store/ports.ts). */
  private readonly state: StateStore;
  private readonly pipelines = new Map<string, QueuePipeline>();
  private readonly shared: SharedParts;
  readonly events = new DaemonEvents();
  readonly status: QueueStatusStore;
  readonly spool: Spool;
  /** /livez, /readyz, /metrics and the status page; only when the config has an `http` block. */
  readonly surface?: OperatingSurface;
  /** Hourly counts for the status page, the oldest undelivered message, sign-in renewals. */
  readonly activity: QueueActivity;
  private started = false;
  private starting?: Promise<void>;
  private stopping?: Promise<void>;
  private reloading: Promise<void> = Promise.resolve();
  private retention: SpoolRetention;
  private readonly parser: ParserPool;
  /** Notices `mailfetchd login`/`logout` run while the daemon runs. */
  private signIns: SignInWatcher;
  /**
   * With a shared store (several replicas): the queues whose leases this replica holds. A queue's
   * pipeline runs only while its lease is held; one node on SQLite owns every queue.
   */
  readonly ownership?: QueueOwnership;
  /** Per queue, its pipeline's start or stop in progress: a lease lost and won back quickly is applied in order. */
  private readonly transitions = new Map<string, Promise<void>>();

  constructor(
    private config: Config,
    private readonly logger: Logger,
    secrets: SecretRegistry,
  ) {
    const box = SecretBox.fromFile(config.keyFile);
    // The store's fence asks the ownership, built just below on the store's own leases.
    let ownership: QueueOwnership | undefined;
    const fence: QueueFence | undefined = config.postgres
      ? { owner: replicaIdOf(config.postgres.replicaId), epochOf: (queue) => ownership?.epochOf(queue), lost: (queue, epoch) => ownership?.lost(queue, epoch) }
      : undefined;
    const state = (this.state = openStateStore(config, {
      ...(fence ? { fence } : {}),
      onConnectionError: (error) => logger.warn({ err: error.message }, "a connection to the state store broke; it is opened again at the next use"),
    }));
    if (fence && state.leases && config.postgres) {
      ownership = this.ownership = new QueueOwnership(
        state.leases,
        fence.owner,
        config.queues.map((q) => q.name),
        config.postgres.leaseMs,
        { acquired: (lease) => this.leaseAcquired(lease.queue), lost: (queue) => this.leaseLost(queue) },
        logger.child({ component: "leases" }),
      );
    }
    const store = new TokenCacheStore(state.tokenCaches, box, (queue, values) => values.forEach((v, i) => secrets.set(`${queue}:token:${i}`, v)));
    const spool = (this.spool = new Spool(state, config.stateDir));
    const status = (this.status = state.queueStatus);
    const events = this.events;
    this.activity = new QueueActivity(state.activity, logger.child({ component: "activity" }));
    this.activity.listen(events);
    this.retention = this.createRetention();
    // Parsing in worker threads: a 50 MB message never stalls the other queues' event loop.
    const parser = (this.parser = new ParserPool({ logger: logger.child({ component: "parser" }) }));
    const deliveryBudget = new MemoryBudget({ messages: config.delivery.messagesInFlight, bytes: config.delivery.bytesInFlight });
    const fetchBudget = new MemoryBudget(DEFAULT_FETCH_BUDGET);
    this.shared = { store, spool, status, events, parser, limiter: new ConcurrencyLimiter(IDENTITY_CONCURRENCY), secrets, deliveryBudget, fetchBudget };
    for (const queue of config.queues) this.pipelines.set(queue.name, this.buildPipeline(queue));
    this.signIns = this.createSignInWatcher();
    events.on("spooled", (event) => this.pipelines.get(event.queue)?.deliverer.wake());
    if (config.http) {
      secrets.set("http:bearerToken", config.http.bearerToken);
      this.surface = new OperatingSurface({
        http: config.http,
        events,
        status,
        retention: state.retention,
        tokenCaches: state.tokenCaches,
        activity: this.activity,
        stateDir: config.stateDir,
        queues: () => this.config.queues.map((q) => ({ name: q.name, handlers: q.handlers.map(handlerName) })),
        ...(this.ownership
          ? {
              fetchingQueues: () => this.ownership!.leases().map((l) => l.queue),
              cluster: () => this.ownership!.figures(),
              ...(state.leases ? { leaseStore: state.leases } : {}),
            }
          : {}),
        probeState: () => state.ping(),
        logger,
      });
    }
  }

  /**
   * Rejects (before fetching anything) when the HTTP surface cannot listen. Idempotent and safe
   * to call concurrently: every call gets the one start's promise.
   */
  start(): Promise<void> {
    this.starting ??= this.startOnce();
    return this.starting;
  }

  private async startOnce(): Promise<void> {
    // Advisory: a store that cannot be reached now (PostgreSQL down) does not keep the daemon from coming up.
    await this.status
      .retain(this.config.queues.map((q) => q.name))
      .catch((error: unknown) => this.logger.warn({ err: describeError(error) }, "could not tidy the queue status rows; trying at the next reload"));
    await this.surface?.listen();
    // With leases, a pipeline starts when its queue's lease is acquired (leaseAcquired).
    if (this.ownership) await this.ownership.start();
    else for (const pipeline of this.pipelines.values()) startPipeline(pipeline);
    await this.signIns.start();
    this.retention.start();
    void this.spool.removeStaleScratch().then((removed) => {
      if (removed > 0) this.logger.info({ removed }, "removed parse scratch directories left by an earlier crash");
    });
    this.started = true;
    this.logger.info({ queues: [...this.pipelines.keys()], ...(this.ownership ? { replica: this.ownership.owner } : {}) }, "mailfetchd started");
  }

  /**
   * Applies a new config: queues added, removed or changed start or stop on their own while the
   * others go on. Keys that shape what was opened at start (state.dir, state.keyFile, http)
   * wait for a restart, and the log says so. Reloads run one at a time.
   */
  reload(next: Config): Promise<void> {
    this.reloading = this.reloading.then(() => this.applyReload(next));
    return this.reloading;
  }

  private async applyReload(next: Config): Promise<void> {
    if (this.stopping) return;
    const previous = this.config;
    const needRestart = RESTART_ONLY.filter((key) => JSON.stringify(previous[key]) !== JSON.stringify(next[key]));
    if (needRestart.length > 0) this.logger.warn({ keys: needRestart }, "these settings change only with a restart; the rest of the new config is applied");
    const applied: Config = {
      ...next,
      stateDir: previous.stateDir,
      keyFile: previous.keyFile,
      postgres: previous.postgres,
      http: previous.http,
      delivery: previous.delivery,
    };
    (this.logger as { level: string }).level = applied.logLevel;

    const wanted = new Map(applied.queues.map((q) => [q.name, q]));
    const removed = [...this.pipelines.keys()].filter((name) => !wanted.has(name));
    const changed = applied.queues.filter((q) => this.pipelines.has(q.name) && JSON.stringify(this.pipelines.get(q.name)!.config) !== JSON.stringify(q));
    const added = applied.queues.filter((q) => !this.pipelines.has(q.name));

    this.signIns.stop();
    await Promise.allSettled([...removed, ...changed.map((q) => q.name)].map((name) => stopPipeline(this.pipelines.get(name)!)));
    for (const name of removed) this.pipelines.delete(name);
    for (const queue of [...changed, ...added]) {
      const pipeline = this.buildPipeline(queue);
      this.pipelines.set(queue.name, pipeline);
      if (this.started && this.fetches(queue.name)) startPipeline(pipeline);
    }
    this.ownership?.setQueues(applied.queues.map((q) => q.name));
    this.config = applied;
    await this.shared.status.retain(applied.queues.map((q) => q.name));
    this.signIns = this.createSignInWatcher();
    if (this.started) await this.signIns.start();
    if (JSON.stringify(previous.retention) !== JSON.stringify(applied.retention)) {
      await this.retention.stop();
      this.retention = this.createRetention();
      if (this.started) this.retention.start();
    }
    this.logger.info({ added: added.map((q) => q.name), removed, changed: changed.map((q) => q.name), queues: [...this.pipelines.keys()] }, "config reloaded");
  }

  stop(deadlineMs = 20_000): Promise<void> {
    this.stopping ??= this.tearDown(deadlineMs);
    return this.stopping;
  }

  private buildPipeline(queue: QueueConfig): QueuePipeline {
    const { store, spool, status, events, parser, limiter, secrets, deliveryBudget, fetchBudget } = this.shared;
    secrets.set(`${queue.name}:password`, queue.signIn.password);
    for (const use of cleartextUses(queue)) {
      this.logger.warn(
        { queue: queue.name, key: use.key, host: use.host },
        `CLEARTEXT: ${use.carries} cross the network to ${use.host} unencrypted because ${use.key} is true; anyone on the path can read them. Use TLS and remove the opt-out.`,
      );
    }
    const log = this.logger.child({ queue: queue.name });
    let refresher: TokenRefresher | undefined;
    const tokens = new MsalTokenProvider({
      queue,
      store,
      limiter,
      logger: log,
      onToken: (expiresOn, info) => {
        // Advisory (status shows it): a failing store must not fail the token that was obtained.
        status.recordTokenExpiry(queue.name, expiresOn).catch((error: unknown) => log.debug({ err: error }, "could not record the token's expiry"));
        events.emit("token-acquired", { queue: queue.name, expiresOn });
        refresher?.tokenObtained(expiresOn, info);
      },
    });
    refresher = new TokenRefresher(tokens, { logger: log });
    const handlers = new Map<string, Handler>(queue.handlers.map((h) => [handlerName(h), createHandler(h, queue.name, secrets)]));
    const deliverer = new Deliverer({ name: queue.name, address: queue.address }, { spool, parser, handlers, events, logger: log, budget: deliveryBudget });
    const source = createSource(queue, tokens, fetchBudget, log);
    // Scheduled polls ask the source's push session first (IMAP: one STATUS) and connect only when something changed.
    const poller = new Poller(queue, { source, spool, status, events, logger: log });
    const signals = {
      newMail: () => {
        events.emit("new-mail-signalled", { queue: queue.name });
        void poller.runCycle();
      },
      sessionOpened: (upToDate: boolean) => {
        events.emit("idle-session-opened", { queue: queue.name });
        poller.sessionOpened(upToDate);
      },
    };
    const idle = queue.idle ? source.watch?.(signals, poller.spoolView) : undefined;
    return { config: queue, poller, deliverer, idle, refresher };
  }

  /** Whether this process runs the queue's pipeline: always on one node, while it holds the lease with several. */
  private fetches(queue: string): boolean {
    return this.ownership === undefined || this.ownership.epochOf(queue) !== undefined;
  }

  /** This replica now holds the queue's lease: its pipeline starts (after a stop still in progress). */
  private leaseAcquired(queue: string): void {
    this.transition(queue, async () => {
      const pipeline = this.pipelines.get(queue);
      if (pipeline && !this.stopping && this.fetches(queue)) startPipeline(pipeline);
    });
  }

  /**
   * The lease is gone (ran out, handed over, or a write was fenced): the pipeline stops at once
   * and a fresh one waits for the lease to come back. What was in flight stays in the shared
   * spool, for the new owner.
   */
  private leaseLost(queue: string): void {
    if (this.stopping) return;
    this.transition(queue, async () => {
      const pipeline = this.pipelines.get(queue);
      if (!pipeline) return;
      await stopPipeline(pipeline);
      if (this.pipelines.get(queue) === pipeline && !this.stopping) this.pipelines.set(queue, this.buildPipeline(pipeline.config));
    });
  }

  private transition(queue: string, step: () => Promise<void>): void {
    const next = (this.transitions.get(queue) ?? Promise.resolve())
      .then(step)
      .catch((error: unknown) => this.logger.error({ err: error, queue }, "starting or stopping a queue's pipeline failed"));
    this.transitions.set(queue, next);
  }

  private createSignInWatcher(): SignInWatcher {
    // A queue waiting in needs-sign-in fetches within seconds of a `login`, not at its next retry.
    return new SignInWatcher({
      queues: [...this.pipelines.keys()],
      store: this.shared.store,
      logger: this.logger,
      onChange: (queue) => this.pipelines.get(queue)?.poller.wake(),
    });
  }

  private createRetention(): SpoolRetention {
    return new SpoolRetention(this.spool, this.config.retention, this.logger.child({ component: "retention" }));
  }

  private async tearDown(deadlineMs: number): Promise<void> {
    await this.reloading.catch(() => {});
    this.surface?.markStopping();
    this.signIns.stop();
    const steps = [this.retention.stop(), ...[...this.pipelines.values()].map(stopPipeline)];
    // Leases are given back once this replica has stopped fetching, so another takes the queues at once.
    const finished = Promise.allSettled(steps)
      .then(() => this.ownership?.stop())
      .then(() => true);
    const timedOut = new Promise<false>((resolve) => setTimeout(() => resolve(false), deadlineMs).unref());
    if (!(await Promise.race([finished, timedOut]))) {
      this.logger.warn({ deadlineMs }, "stop deadline passed; abandoning in-flight work (it stays in the spool and is redone at the next start)");
    }
    try {
      await this.surface?.close();
    } catch (error) {
      this.logger.error({ err: error }, "closing the HTTP surface failed");
    }
    // After the deliverers: a parse still running past the deadline is abandoned (redone at the next start).
    await this.parser.close().catch((error: unknown) => this.logger.error({ err: error }, "stopping the parser threads failed"));
    await this.activity.close();
    try {
      await this.state.close();
    } catch (error) {
      this.logger.error({ err: error }, "closing the state store failed");
    }
    this.logger.info("mailfetchd stopped");
  }
}

function startPipeline(pipeline: QueuePipeline): void {
  pipeline.deliverer.start();
  pipeline.poller.start();
  pipeline.idle?.start();
  pipeline.refresher.start();
}

/** Stops one queue: fetching first, then delivery; what is in flight stays in the spool. */
async function stopPipeline(pipeline: QueuePipeline): Promise<void> {
  pipeline.refresher.stop();
  await Promise.allSettled([pipeline.idle?.stop(), pipeline.poller.stop()]);
  await pipeline.deliverer.stop();
}

/** Unique per process: two processes given one `replicaId` never share a lease. */
function replicaIdOf(configured: string | undefined): string {
  return `${configured ?? hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
}

/** The queue's mail source, by its `source` key. */
function createSource(queue: QueueConfig, tokens: TokenProvider, fetchBudget: MemoryBudget, logger: Logger): MailSource {
  switch (queue.source) {
    case "imap":
      return new ImapSource(queue, new ImapMailbox(queue, tokens, logger, fetchBudget), logger);
    case "graph":
      // Streams each message into the spool: nothing is held whole, so no fetch budget is taken.
      return new GraphSource(queue, tokens, logger);
  }
}

function createHandler(config: HandlerConfig, queue: string, secrets: SecretRegistry): Handler {
  const name = handlerName(config);
  switch (config.type) {
    case "directory":
      return createDirectoryHandler({ name, path: config.path });
    case "webhook":
      config.secretValues.forEach((value, i) => secrets.set(`${queue}:${name}:secret:${i}`, value));
      return createWebhookHandler({ ...config, name });
    case "command":
      config.secretValues.forEach((value, i) => secrets.set(`${queue}:${name}:secret:${i}`, value));
      return createCommandHandler({ ...config, name });
  }
}
