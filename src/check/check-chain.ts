/**
 * `mailfetchd check`: walks one queue's chain from the identity endpoint to its IMAP folder
 * and reports each link as pass, fail (with the fix) or skip (an earlier link failed, so this
 * one could not be looked at). The first failure is the one to fix; later links are skipped
 * rather than guessed.
 *
 * It signs in the way the daemon does (stored sign-in, else the password) and forces a refresh,
 * so the identity endpoint is really asked: a cached token proves nothing about the app today.
 */
import type { QueueConfig } from "../config/schema.js";
import { MailfetchdError, type ErrorCode } from "../errors.js";
import type { Logger } from "../interfaces.js";
import { classifyIdentityError } from "../tokens/identity-errors.js";
import { IdentityHttpClient, type ConcurrencyLimiter } from "../tokens/identity-http-client.js";
import { MsalTokenProvider, type TokenAcquired } from "../tokens/msal-token-provider.js";
import type { TokenCacheStore } from "../tokens/token-cache-store.js";
import { probeImap } from "./imap-probe.js";
import { GraphSource } from "../graph/graph-source.js";
import { judgeSources, readGrantedPermissions } from "./source-permissions.js";
import { judgeTokenAudience, readJwtClaims } from "./token-audience.js";

export type StepStatus = "pass" | "fail" | "skip";

export interface StepResult {
  readonly step: string;
  readonly status: StepStatus;
  /** What was seen, or what is wrong. Never a token. */
  readonly detail?: string;
  readonly fix?: string;
}

export const STEPS = {
  endpoint: "identity endpoint reachable",
  tenant: "tenant found",
  app: "app registration found",
  publicClient: "public client flows enabled",
  consent: "admin consent granted",
  signIn: "sign-in works",
  audience: "token audience is Exchange",
  imapLogin: "IMAP login works",
  folder: "folder exists",
} as const;

/** A `source: graph` queue's last links: its token is for Graph, its mailbox is reached over Graph. */
export const GRAPH_STEPS = {
  audience: "token audience is Graph",
  mailbox: "Graph mailbox and folder reachable",
} as const;

const IMAP_ORDER: readonly string[] = Object.values(STEPS);
const GRAPH_ORDER: readonly string[] = [...IMAP_ORDER.slice(0, IMAP_ORDER.indexOf(STEPS.audience)), GRAPH_STEPS.audience, GRAPH_STEPS.mailbox];

/** Which step a token request's error is about; the sign-in otherwise. */
const STEP_OF_CODE: Partial<Record<ErrorCode, string>> = {
  IDENTITY_APP_NOT_FOUND: STEPS.app,
  IDENTITY_NOT_PUBLIC_CLIENT: STEPS.publicClient,
  IDENTITY_NO_CONSENT: STEPS.consent,
};

export interface CheckQueueOptions {
  readonly queue: QueueConfig;
  readonly store: TokenCacheStore;
  readonly limiter: ConcurrencyLimiter;
  readonly logger: Logger;
  /** Told of each step as soon as it is known, in order. */
  readonly report: (result: StepResult) => void;
}

/** Runs the chain; true when every step passed. */
export async function checkQueue(options: CheckQueueOptions): Promise<boolean> {
  const { queue } = options;
  const ORDER = queue.source === "graph" ? GRAPH_ORDER : IMAP_ORDER;
  const results: StepResult[] = [];
  const emit = (result: StepResult) => {
    results.push(result);
    options.report(result);
  };
  /** Fails `step`: the steps before it that are not reported yet passed, the ones after it are skipped. */
  const failAt = (step: string, error: MailfetchdError): false => {
    const index = ORDER.indexOf(step);
    for (const earlier of ORDER.slice(results.length, index)) emit({ step: earlier, status: "pass" });
    emit({ step, status: "fail", detail: error.message, fix: error.fix });
    for (const later of ORDER.slice(index + 1)) emit({ step: later, status: "skip", detail: "not checked: an earlier step failed" });
    return false;
  };

  // 1-2: discovery tells an unreachable endpoint from an unknown tenant.
  const discovery = await discover(queue, options.limiter);
  if (discovery.error) return failAt(discovery.step, discovery.error);
  emit({ step: STEPS.endpoint, status: "pass", detail: queue.identity.authority });
  emit({ step: STEPS.tenant, status: "pass", detail: queue.identity.tenantId });

  // 3-6: one real token request answers for the app, public client flows, consent and the sign-in.
  const provider = new MsalTokenProvider({ queue, store: options.store, limiter: options.limiter, logger: options.logger });
  let acquired: TokenAcquired;
  try {
    acquired = await provider.acquireToken({ forceRefresh: true });
  } catch (raw) {
    const error = raw as MailfetchdError;
    const step = STEP_OF_CODE[error.code] ?? STEPS.signIn;
    // A refused sign-in (a password, an expired refresh token) says nothing about consent: skip rather than guess.
    if (step === STEPS.signIn) {
      for (const unknown of [STEPS.app, STEPS.publicClient, STEPS.consent])
        emit({ step: unknown, status: "skip", detail: "not determined: the sign-in failed first" });
    }
    if (step === STEPS.consent) {
      // The queue's permission is not consented: say which source the consented ones allow.
      const sources = judgeSources(queue, await readGrantedPermissions(options));
      if (!sources.ok)
        return failAt(step, new MailfetchdError(`${error.message} ${sources.detail}.`, { code: error.code, retryable: false, fix: sources.fix }));
    }
    return failAt(step, error);
  }
  const how = {
    cache: "cached token",
    refresh: `stored sign-in of ${acquired.result.account?.username ?? queue.signIn.user}, refreshed`,
    password: `password sign-in as ${queue.signIn.user}`,
  }[acquired.method];
  emit({ step: STEPS.app, status: "pass", detail: queue.identity.clientId });
  emit({ step: STEPS.publicClient, status: "pass" });
  emit({ step: STEPS.consent, status: "pass" });
  emit({ step: STEPS.signIn, status: "pass", detail: how });

  if (queue.source === "graph") return checkGraph(queue, acquired.result.accessToken, options, emit, failAt);

  // 7: the audience, from the token's claims when it is a readable JWT.
  const audience = judgeTokenAudience(acquired.result.accessToken, acquired.result.scopes);
  emit({ step: STEPS.audience, status: audience.ok ? "pass" : "fail", detail: audience.detail, fix: audience.fix });

  // 8-9: IMAP, the way the daemon logs in.
  const imap = await probeImap(queue, acquired.result.accessToken);
  if (!imap.login.ok) return failAt(STEPS.imapLogin, imap.login.error);
  emit({ step: STEPS.imapLogin, status: "pass", detail: imap.login.detail });
  const folder = imap.folder!;
  if (!folder.ok) return failAt(STEPS.folder, folder.error);
  emit({ step: STEPS.folder, status: "pass", detail: folder.detail });
  return results.every((r) => r.status === "pass");
}

/** 7-8 of a Graph queue: a Graph token with the mail permission, then the folder looked up over Graph. */
async function checkGraph(
  queue: QueueConfig,
  accessToken: string,
  options: CheckQueueOptions,
  emit: (result: StepResult) => void,
  failAt: (step: string, error: MailfetchdError) => false,
): Promise<boolean> {
  const claims = readJwtClaims(accessToken);
  const aud = typeof claims?.aud === "string" ? claims.aud.replace(/\/+$/, "").toLowerCase() : undefined;
  if (aud !== undefined && aud !== "https://graph.microsoft.com" && aud !== "00000003-0000-0000-c000-000000000000") {
    return failAt(
      GRAPH_STEPS.audience,
      new MailfetchdError(`the token is for ${String(claims!.aud)}, not Microsoft Graph`, {
        code: "GRAPH_AUTH_REJECTED",
        retryable: false,
        fix: "Remove identity.scopes from the queue: a source: graph queue asks for https://graph.microsoft.com/Mail.ReadWrite by default.",
      }),
    );
  }
  const sources = judgeSources(queue, { graph: typeof claims?.scp === "string" ? claims.scp.split(" ") : undefined, exchange: undefined });
  if (claims && !sources.ok) {
    const granted = await readGrantedPermissions(options);
    const judged = judgeSources(queue, granted);
    return failAt(GRAPH_STEPS.audience, new MailfetchdError(judged.detail, { code: "GRAPH_ACCESS_DENIED", retryable: false, fix: judged.fix }));
  }
  emit({
    step: GRAPH_STEPS.audience,
    status: "pass",
    detail: claims ? `aud ${String(claims.aud)}, scp ${String(claims.scp)}` : "the token is opaque (not a readable JWT); Graph will judge it",
  });
  try {
    const folderId = await new GraphSource(
      queue,
      { getAccessToken: async () => ({ token: accessToken, expiresOn: new Date(Date.now() + 60_000) }) },
      options.logger,
    ).lookUpFolder();
    emit({
      step: GRAPH_STEPS.mailbox,
      status: "pass",
      detail: `${queue.address}, folder '${queue.folder}' (${folderId.slice(0, 12)}…) at ${queue.graph.host}`,
    });
    return true;
  } catch (error) {
    return failAt(
      GRAPH_STEPS.mailbox,
      error instanceof MailfetchdError ? error : new MailfetchdError(String(error), { code: "GRAPH_UNAVAILABLE", retryable: true }),
    );
  }
}

async function discover(queue: QueueConfig, limiter: ConcurrencyLimiter): Promise<{ error?: undefined } | { error: MailfetchdError; step: string }> {
  const http = new IdentityHttpClient({ ca: queue.identity.ca, limiter });
  const url = `${queue.identity.authority}/v2.0/.well-known/openid-configuration`;
  try {
    const response = await http.sendGetRequestAsync<Record<string, unknown>>(url);
    if (response.status === 200 && typeof response.body.token_endpoint === "string") return {};
    const error = classifyIdentityError(http.lastDiscoveryFailure ?? new Error(`HTTP ${response.status} from ${url}`), queue.name);
    if (error.code === "IDENTITY_TENANT_NOT_FOUND") return { error, step: STEPS.tenant };
    const fix = "Check identity.authority (default https://login.microsoftonline.com/<tenantId>) and identity.tenantId (admin guide section 2.2 step 8).";
    return {
      error: new MailfetchdError(`Queue ${queue.name}: ${url} answered HTTP ${response.status}, not a discovery document.`, {
        code: error.code,
        retryable: error.retryable,
        fix,
      }),
      step: STEPS.endpoint,
    };
  } catch (raw) {
    return { error: classifyIdentityError(raw, queue.name), step: STEPS.endpoint };
  }
}
