/**
 * The project's stand-in for the Microsoft identity platform (Entra ID v2 endpoints), for tests,
 * the demo and benchmarks. It speaks HTTPS on loopback so @azure/msal-node runs unmodified
 * against it, and offers Dovecot a token introspection endpoint over plain HTTP.
 *
 * Behaviour a test can rely on (and production has):
 * - password grant with a wrong password answers AADSTS50126, an unknown user AADSTS50034;
 * - refresh tokens rotate on every use (see REFRESH TOKEN REUSE below);
 * - a token for a scope that is not Exchange's (bare "IMAP.AccessAsUser.All", a Graph scope)
 *   is issued, but Dovecot rejects it: introspection answers active:false;
 * - a token for Graph scopes ("https://graph.microsoft.com/Mail.ReadWrite", bare "User.Read") is a
 *   JWT with aud https://graph.microsoft.com and `scp` (the permissions asked for), which the Graph
 *   stand-in (graph-standin.ts) checks on every request through `accessTokenInfo`;
 * - `setConsentedPermissions` limits what the app registration has consent for: asking for
 *   anything else answers AADSTS65001, as Entra ID does;
 * - access tokens really die after their lifetime (setAccessTokenLifetime), while `expires_in`
 *   says lifetime + 300 s, because MSAL treats every token as expired 300 s early. So MSAL
 *   refreshes exactly when the token dies, and a 2-second lifetime makes a 2-second test.
 *   Code that computes its own deadline from MSAL's `expiresOn` must subtract MSAL's 300 s too.
 *   `setAccessTokenLifetime(s, { padded: false })` states the real lifetime instead, as Entra
 *   does: a token under 300 s is then one MSAL counts as expired on arrival.
 *
 * REFRESH TOKEN REUSE: Microsoft does not revoke a refresh token when it is redeemed (only SPA
 * tokens are that strict); the old one keeps working until it expires. The stand-in is stricter
 * by default (`refreshTokenReuse: "reject"`): a redeemed refresh token answers invalid_grant
 * AADSTS70000 ("Provided grant is invalid or malformed"), so a daemon that does not persist the
 * new token every time fails in tests, not 90 days into production. Pass "allow" for
 * Microsoft's leniency.
 */
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { instanceDiscovery, openIdConfiguration } from "./identity-discovery.js";
import { aadstsError, isKnownAadsts, type AadstsContext } from "./identity-errors.js";
import {
  clientInfo,
  mintAccessToken,
  mintDeviceCode,
  mintGraphAccessToken,
  mintIdToken,
  mintRefreshToken,
  mintUserCode,
  objectIdOf,
  permissionName,
  readScopes,
  type Audience,
} from "./identity-tokens.js";

export type TokenGrant = "password" | "refresh_token" | "device_code";

export type HttpFailure = { status: 500 | 503 } | { status: 429; retryAfterSeconds: number } | { hang: true };

export interface TokenRequestRecord {
  /** As sent, except the device code grant's URN form, recorded as "device_code". */
  readonly grantType: string;
  /** The user named (password grant) or owning the grant (refresh token, approved device code). */
  readonly username?: string;
  /** Date.now() when the request arrived. */
  readonly at: number;
  /** The HTTP status answered, or what happened instead. */
  readonly outcome: number | "refused" | "hung";
}

export interface IdentityStandInOptions {
  readonly certFile: string;
  readonly keyFile: string;
  /** Default: a fixed GUID, so logs and snapshots are stable. */
  readonly tenantId?: string;
  /** The real lifetime of access tokens. Default 4500 s: Microsoft's are 60-90 minutes, not 3600 s. */
  readonly accessTokenLifetimeSeconds?: number;
  /** When set, any other client_id gets AADSTS700016 (app not found in the tenant). */
  readonly clientId?: string;
  /** Device code polling interval; fractions (0.05) make device code tests fast. Default 5. */
  readonly deviceCodeIntervalSeconds?: number;
  /** Default 900 (Microsoft: 15 minutes). */
  readonly deviceCodeLifetimeSeconds?: number;
  /** Delay every token answer, so concurrent requests overlap measurably. Default 0. */
  readonly tokenResponseDelayMs?: number;
  /** See REFRESH TOKEN REUSE above. Default "reject". */
  readonly refreshTokenReuse?: "reject" | "allow";
}

export interface IdentityStandIn {
  readonly origin: string;
  readonly tenantId: string;
  readonly authority: string;
  readonly introspectionUrl: string;
  /** Adds (or replaces) a user. `mailboxes` the user may open over IMAP; default [username]. */
  addUser(user: { username: string; password: string; mailboxes?: string[] }): void;
  /** The real lifetime of access tokens issued from now on; `padded: false` states it in expires_in unpadded (see above). */
  setAccessTokenLifetime(seconds: number, options?: { padded?: boolean }): void;
  /** Make the next `times` (default 1) token requests matching `grant` (default any) fail with this AADSTS code, answered exactly as Microsoft does. */
  failNext(aadsts: number, options?: { times?: number; grant?: TokenGrant }): void;
  /** Make the next token and device code requests fail at the HTTP level: 500/503, 429 with Retry-After, or no answer at all. */
  failHttpNext(kind: HttpFailure, times?: number): void;
  /** While down, every HTTPS request has its connection destroyed without an answer. */
  setDown(down: boolean): void;
  /** While down, introspection answers 500 (Dovecot then says NO [UNAVAILABLE]). */
  setIntrospectionDown(down: boolean): void;
  /** Like an admin's "revoke sessions" or a password reset: later refreshes get AADSTS50173. */
  revokeRefreshTokens(username: string): void;
  /** Like 90 days without use: later refreshes get AADSTS700082. */
  expireRefreshTokens(username: string): void;
  /**
   * The permissions the app registration has admin consent for, as scopes
   * ("https://outlook.office.com/IMAP.AccessAsUser.All", "https://graph.microsoft.com/Mail.ReadWrite");
   * undefined (the default): whatever is asked for.
   */
  setConsentedPermissions(scopes: readonly string[] | undefined): void;
  /** What an access token this stand-in issued is for; undefined for one it never issued. */
  accessTokenInfo(token: string): AccessTokenInfo | undefined;
  readonly tokenRequests: ReadonlyArray<TokenRequestRecord>;
  /** The highest number of token requests in flight at once. */
  readonly maxConcurrentTokenRequests: number;
  approveDeviceCode(userCode: string, username: string): void;
  declineDeviceCode(userCode: string): void;
  /** Makes a pending device code expire now (polls get expired_token). */
  expireDeviceCode(userCode: string): void;
  /** Every access token, refresh token, device code and password issued or known: what a secret-leak scan looks for. */
  readonly secretsIssued: ReadonlyArray<string>;
  close(): Promise<void>;
}

export interface AccessTokenInfo {
  readonly username: string;
  readonly audience: Audience;
  /** The permissions granted (scp), without resource prefix: "Mail.ReadWrite". */
  readonly permissions: readonly string[];
  readonly expiresAt: number;
}

/** What `.default` grants when setConsentedPermissions was not called: both sources' permissions. */
const DEFAULT_CONSENT = [
  "https://outlook.office.com/IMAP.AccessAsUser.All",
  "https://graph.microsoft.com/Mail.ReadWrite",
  "https://graph.microsoft.com/Mail.ReadWrite.Shared",
  "https://graph.microsoft.com/User.Read",
];

const DEFAULT_TENANT_ID = "4a1b2c3d-0000-4000-8000-00000000aaaa";
const DEFAULT_ACCESS_TOKEN_LIFETIME_S = 4_500;
/** MSAL considers a token expired this long before `expires_in` says (msal-common: DEFAULT_TOKEN_RENEWAL_OFFSET_SEC). */
const MSAL_RENEWAL_OFFSET_S = 300;
const DEVICE_CODE_GRANT_URN = "urn:ietf:params:oauth:grant-type:device_code";

interface User {
  readonly username: string;
  readonly password: string;
  readonly mailboxes: readonly string[];
  readonly objectId: string;
}

type IssuedAccessToken = AccessTokenInfo;

interface IssuedRefreshToken {
  readonly username: string;
  readonly clientId: string;
  /** Set once redeemed (rotation), revoked or expired: the AADSTS code later uses get. */
  deadWith?: number;
}

interface DeviceCode {
  readonly userCode: string;
  readonly clientId: string;
  readonly scope: string;
  expiresAt: number;
  state: { kind: "pending" } | { kind: "approved"; username: string } | { kind: "declined" };
}

interface TokenRequest {
  readonly tenant: string;
  readonly params: URLSearchParams;
  readonly correlationId: string;
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Record<string, string>;
}

export async function startIdentityStandIn(options: IdentityStandInOptions): Promise<IdentityStandIn> {
  const [cert, key] = await Promise.all([readFile(options.certFile), readFile(options.keyFile)]);
  const standIn = new StandIn(options);
  const https = createHttpsServer({ cert, key }, (request, response) => standIn.handleIdentity(request, response));
  const http = createHttpServer((request, response) => standIn.handleIntrospection(request, response));
  const [httpsPort, httpPort] = await Promise.all([listen(https), listen(http)]);
  standIn.attach(`https://127.0.0.1:${httpsPort}`, `http://127.0.0.1:${httpPort}/introspect`, [https, http]);
  return standIn;
}

class StandIn implements IdentityStandIn {
  readonly tenantId: string;
  origin = "";
  introspectionUrl = "";
  maxConcurrentTokenRequests = 0;

  private readonly users = new Map<string, User>();
  private readonly accessTokens = new Map<string, IssuedAccessToken>();
  private readonly refreshTokens = new Map<string, IssuedRefreshToken>();
  private readonly deviceCodes = new Map<string, DeviceCode>();
  private readonly requests: TokenRequestRecord[] = [];
  private readonly secrets: string[] = [];
  private readonly aadstsFailures: Array<{ code: number; remaining: number; grant?: TokenGrant }> = [];
  private readonly httpFailures: Array<{ kind: HttpFailure; remaining: number }> = [];
  private readonly hungResponses = new Set<ServerResponse>();
  private servers: Server[] = [];
  private accessTokenLifetimeS: number;
  private padExpiresIn = true;
  private down = false;
  private introspectionDown = false;
  private consented?: Set<string>;
  private tokenRequestsInFlight = 0;

  constructor(private readonly options: IdentityStandInOptions) {
    this.tenantId = options.tenantId ?? DEFAULT_TENANT_ID;
    this.accessTokenLifetimeS = options.accessTokenLifetimeSeconds ?? DEFAULT_ACCESS_TOKEN_LIFETIME_S;
  }

  get authority(): string {
    return `${this.origin}/${this.tenantId}`;
  }

  get tokenRequests(): ReadonlyArray<TokenRequestRecord> {
    return this.requests;
  }

  get secretsIssued(): ReadonlyArray<string> {
    return this.secrets;
  }

  attach(origin: string, introspectionUrl: string, servers: Server[]): void {
    this.origin = origin;
    this.introspectionUrl = introspectionUrl;
    this.servers = servers;
  }

  // -------------------------------------------------------------------------------------------
  // Test controls

  addUser(user: { username: string; password: string; mailboxes?: string[] }): void {
    this.users.set(user.username.toLowerCase(), {
      username: user.username,
      password: user.password,
      mailboxes: user.mailboxes ?? [user.username],
      objectId: objectIdOf(user.username),
    });
    this.secrets.push(user.password);
  }

  setAccessTokenLifetime(seconds: number, options: { padded?: boolean } = {}): void {
    this.accessTokenLifetimeS = seconds;
    this.padExpiresIn = options.padded ?? true;
  }

  failNext(aadsts: number, options: { times?: number; grant?: TokenGrant } = {}): void {
    if (!isKnownAadsts(aadsts)) throw new Error(`failNext: no answer known for AADSTS${aadsts}`);
    this.aadstsFailures.push({ code: aadsts, remaining: options.times ?? 1, grant: options.grant });
  }

  failHttpNext(kind: HttpFailure, times = 1): void {
    this.httpFailures.push({ kind, remaining: times });
  }

  setDown(down: boolean): void {
    this.down = down;
  }

  setConsentedPermissions(scopes: readonly string[] | undefined): void {
    this.consented = scopes ? new Set(scopes) : undefined;
  }

  accessTokenInfo(token: string): AccessTokenInfo | undefined {
    return this.accessTokens.get(token);
  }

  setIntrospectionDown(down: boolean): void {
    this.introspectionDown = down;
  }

  revokeRefreshTokens(username: string): void {
    this.killRefreshTokensOf(username, 50173);
  }

  expireRefreshTokens(username: string): void {
    this.killRefreshTokensOf(username, 700082);
  }

  approveDeviceCode(userCode: string, username: string): void {
    const user = this.users.get(username.toLowerCase());
    if (!user) throw new Error(`approveDeviceCode: unknown user ${username}`);
    this.pendingDeviceCode(userCode).state = { kind: "approved", username: user.username };
  }

  declineDeviceCode(userCode: string): void {
    this.pendingDeviceCode(userCode).state = { kind: "declined" };
  }

  expireDeviceCode(userCode: string): void {
    this.pendingDeviceCode(userCode).expiresAt = Date.now() - 1;
  }

  async close(): Promise<void> {
    for (const response of this.hungResponses) response.destroy();
    this.hungResponses.clear();
    await Promise.all(
      this.servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            // MSAL's client keeps connections alive; without this close() waits for their timeout.
            server.closeAllConnections();
          }),
      ),
    );
  }

  // -------------------------------------------------------------------------------------------
  // HTTPS: the identity platform

  async handleIdentity(request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      const url = new URL(request.url ?? "/", this.origin);
      const body = request.method === "POST" ? await readBody(request) : "";
      const [tenant = "", ...rest] = url.pathname.split("/").filter((part) => part.length > 0);
      const route = rest.join("/");
      const correlationId = url.searchParams.get("client-request-id") ?? header(request, "client-request-id") ?? randomUUID();

      if (request.method === "POST" && route === "oauth2/v2.0/token") {
        await this.handleToken({ tenant, params: new URLSearchParams(body), correlationId }, response);
        return;
      }
      if (this.down) {
        response.destroy();
        return;
      }
      if (request.method === "POST" && route === "oauth2/v2.0/devicecode") {
        if (this.applyHttpFailure(response)) return;
        send(response, this.deviceCodeAnswer({ tenant, params: new URLSearchParams(body), correlationId }));
        return;
      }
      if (request.method === "GET" && (route === "v2.0/.well-known/openid-configuration" || route === ".well-known/openid-configuration")) {
        send(response, this.openIdConfiguration(tenant, correlationId));
        return;
      }
      if (request.method === "GET" && tenant === "common" && route === "discovery/instance") {
        send(response, { status: 200, body: instanceDiscovery(this.origin, this.tenantId, url.searchParams.get("api-version")) });
        return;
      }
      if (request.method === "GET" && route === "discovery/v2.0/keys") {
        send(response, { status: 200, body: { keys: [] } });
        return;
      }
      send(response, { status: 404, body: { error: "not_found", error_description: `The identity stand-in has no ${request.method} ${url.pathname}` } });
    } catch (error) {
      send(response, { status: 500, body: { error: "server_error", error_description: `identity stand-in bug: ${String(error)}` } });
    }
  }

  private async handleToken(request: TokenRequest, response: ServerResponse): Promise<void> {
    const grant = normaliseGrant(request.params.get("grant_type") ?? "");
    const record: { grantType: string; username?: string; at: number; outcome: TokenRequestRecord["outcome"] } = {
      grantType: grant,
      username: this.usernameOf(grant, request.params),
      at: Date.now(),
      outcome: "refused",
    };
    this.requests.push(record);
    if (this.down) {
      response.destroy();
      return;
    }

    this.tokenRequestsInFlight += 1;
    this.maxConcurrentTokenRequests = Math.max(this.maxConcurrentTokenRequests, this.tokenRequestsInFlight);
    response.once("close", () => {
      this.tokenRequestsInFlight -= 1;
    });

    if (this.applyHttpFailure(response)) {
      record.outcome = response.headersSent ? response.statusCode : "hung";
      return;
    }
    if (this.options.tokenResponseDelayMs) await sleep(this.options.tokenResponseDelayMs);
    const answer = this.tokenAnswer(grant, request);
    record.outcome = answer.status;
    send(response, answer, request.correlationId);
  }

  private tokenAnswer(grant: string, request: TokenRequest): Answer {
    const { params } = request;
    const clientId = params.get("client_id") ?? "";
    const context: AadstsContext = { clientId, tenant: request.tenant, correlationId: request.correlationId };
    const refuse = (code: number, param?: string): Answer => errorAnswer(code, { ...context, param });

    if (!this.isKnownTenant(request.tenant)) return refuse(90002);
    // ROPC and device code need a tenant; MSAL lets you configure /common anyway.
    if ((request.tenant === "common" || request.tenant === "consumers") && grant !== "refresh_token") return refuse(9001023);
    if (!clientId) return refuse(900144, "client_id");
    if (this.options.clientId !== undefined && clientId !== this.options.clientId) return refuse(700016);
    if (params.has("client_secret") || params.has("client_assertion")) return refuse(700025);

    const injected = this.takeInjectedFailure(grant);
    if (injected !== undefined) return refuse(injected);

    switch (grant) {
      case "password":
        return this.passwordGrant(params, context);
      case "refresh_token":
        return this.refreshTokenGrant(params, context);
      case "device_code":
        return this.deviceCodeGrant(params, context);
      case "":
        return errorAnswer(900144, { ...context, param: "grant_type" });
      default:
        return errorAnswer(70003, { ...context, param: grant });
    }
  }

  private passwordGrant(params: URLSearchParams, context: AadstsContext): Answer {
    for (const name of ["username", "password", "scope"]) {
      if (!params.get(name)) return errorAnswer(900144, { ...context, param: name });
    }
    const user = this.users.get((params.get("username") ?? "").toLowerCase());
    if (!user) return errorAnswer(50034, context);
    if (user.password !== params.get("password")) return errorAnswer(50126, context);
    return this.issueTokens(user, params.get("scope") ?? "", context);
  }

  private refreshTokenGrant(params: URLSearchParams, context: AadstsContext): Answer {
    const presented = params.get("refresh_token");
    if (!presented) return errorAnswer(900144, { ...context, param: "refresh_token" });
    // v2 refreshes must name the scope again (MSAL does); AADSTS900144 otherwise.
    if (!params.get("scope")) return errorAnswer(900144, { ...context, param: "scope" });
    const grant = this.refreshTokens.get(presented);
    if (!grant) return errorAnswer(9002313, context);
    if (grant.deadWith !== undefined) return errorAnswer(grant.deadWith, context);
    const user = this.users.get(grant.username.toLowerCase());
    if (!user) return errorAnswer(50034, context);
    if (this.options.refreshTokenReuse !== "allow") grant.deadWith = 70000;
    return this.issueTokens(user, params.get("scope") ?? "", context);
  }

  private deviceCodeGrant(params: URLSearchParams, context: AadstsContext): Answer {
    const code = params.get("device_code");
    if (!code) return errorAnswer(900144, { ...context, param: "device_code" });
    const entry = this.deviceCodes.get(code);
    if (!entry) return errorAnswer(70018, context);
    if (Date.now() > entry.expiresAt) return errorAnswer(70019, context);
    switch (entry.state.kind) {
      case "pending":
        return errorAnswer(70016, context);
      case "declined":
        return errorAnswer(65004, context);
      case "approved": {
        const user = this.users.get(entry.state.username.toLowerCase());
        if (!user) return errorAnswer(50034, context);
        this.deviceCodes.delete(code); // redeemed once
        return this.issueTokens(user, entry.scope, context);
      }
    }
  }

  private issueTokens(user: User, scope: string, context: AadstsContext): Answer {
    const scopes = readScopes(scope);
    if (scopes.resources.size > 1) return errorAnswer(28000, { ...context, param: scope });
    // A bare permission ("User.Read") is Graph's.
    const fullScope = (scope: string) => (scope.includes("://") ? scope : `https://graph.microsoft.com/${scope}`).toLowerCase();
    const consented = [...(this.consented ?? DEFAULT_CONSENT)];
    // "<resource>/.default" asks for everything the app has consent for at that resource.
    const expanded = scopes.resourceScopes.flatMap((scope) => {
      if (!/\/\.default$/i.test(scope)) return [scope];
      const resource = fullScope(scope).replace(/\.default$/, "");
      const exchange = (text: string) => text.startsWith("https://outlook.office");
      return consented.filter((granted) => granted.toLowerCase().startsWith(resource) || (exchange(resource) && exchange(granted.toLowerCase())));
    });
    if (expanded.length === 0 && scopes.resourceScopes.length > 0) return errorAnswer(65001, context);
    const isConsented = (scope: string) => consented.some((granted) => granted.toLowerCase() === fullScope(scope));
    if (this.consented && expanded.some((scope) => !isConsented(scope))) return errorAnswer(65001, context);
    const clientId = context.clientId ?? "";
    const expiresAt = Date.now() + this.accessTokenLifetimeS * 1000;
    const permissions = expanded.map(permissionName);
    const accessToken =
      scopes.audience === "graph"
        ? mintGraphAccessToken({ username: user.username, objectId: user.objectId, tenantId: this.tenantId, scp: permissions, expiresAt })
        : mintAccessToken();
    this.accessTokens.set(accessToken, { username: user.username, audience: scopes.audience, permissions, expiresAt });
    this.secrets.push(accessToken);
    const expiresIn = this.accessTokenLifetimeS + (this.padExpiresIn ? MSAL_RENEWAL_OFFSET_S : 0);
    const body: Record<string, unknown> = {
      token_type: "Bearer",
      // ".default" is answered with the permissions it stands for, as Entra ID does.
      scope: expanded.join(" "),
      expires_in: expiresIn,
      ext_expires_in: expiresIn,
      access_token: accessToken,
    };
    if (scopes.offlineAccess) {
      const refreshToken = mintRefreshToken();
      this.refreshTokens.set(refreshToken, { username: user.username, clientId });
      this.secrets.push(refreshToken);
      body.refresh_token = refreshToken;
    }
    // MSAL always asks for openid and client_info; both are needed to cache an account.
    if (scopes.openid) {
      body.id_token = mintIdToken({
        issuer: `${this.origin}/${this.tenantId}/v2.0`,
        clientId,
        tenantId: this.tenantId,
        objectId: user.objectId,
        username: user.username,
      });
    }
    body.client_info = clientInfo(user.objectId, this.tenantId);
    return { status: 200, body };
  }

  private deviceCodeAnswer(request: TokenRequest): Answer {
    const { params } = request;
    const clientId = params.get("client_id") ?? "";
    const context: AadstsContext = { clientId, tenant: request.tenant, correlationId: request.correlationId };
    if (!this.isKnownTenant(request.tenant)) return errorAnswer(90002, context);
    if (!clientId) return errorAnswer(900144, { ...context, param: "client_id" });
    if (this.options.clientId !== undefined && clientId !== this.options.clientId) return errorAnswer(700016, context);
    const scope = params.get("scope");
    if (!scope) return errorAnswer(900144, { ...context, param: "scope" });

    const deviceCode = mintDeviceCode();
    const userCode = mintUserCode();
    const lifetimeS = this.options.deviceCodeLifetimeSeconds ?? 900;
    this.deviceCodes.set(deviceCode, { userCode, clientId, scope, expiresAt: Date.now() + lifetimeS * 1000, state: { kind: "pending" } });
    this.secrets.push(deviceCode);
    const verificationUri = `${this.origin}/devicelogin`;
    return {
      status: 200,
      body: {
        user_code: userCode,
        device_code: deviceCode,
        verification_uri: verificationUri,
        expires_in: lifetimeS,
        interval: this.options.deviceCodeIntervalSeconds ?? 5,
        message: `To sign in, use a web browser to open the page ${verificationUri} and enter the code ${userCode} to authenticate.`,
      },
    };
  }

  private openIdConfiguration(tenant: string, correlationId: string): Answer {
    if (!this.isKnownTenant(tenant)) {
      // Microsoft's discovery endpoint names this error differently from the token endpoint.
      const refused = aadstsError(90002, { tenant, correlationId });
      return { status: refused.status, body: { ...refused.body, error: "invalid_tenant" } };
    }
    return { status: 200, body: openIdConfiguration(this.origin, tenant, this.tenantId) };
  }

  // -------------------------------------------------------------------------------------------
  // HTTP: introspection for Dovecot

  /**
   * Dovecot POSTs `token=...` and logs the user in when the answer is active and its username
   * equals the XOAUTH2 `user=`. Dovecot does not tell us which mailbox the client asked for
   * (Dovecot 2.3 expands no variables in introspection_url), so the answer is keyed on the
   * token alone: a user granted exactly one mailbox (`addUser({ mailboxes: [shared] })`) is
   * answered as that mailbox, which is how a shared-mailbox delegate is tested; anyone else is
   * answered as themselves. A delegate of several mailboxes cannot be told apart.
   */
  async handleIntrospection(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let body: string;
    try {
      body = request.method === "POST" ? await readBody(request) : "";
    } catch {
      response.destroy();
      return;
    }
    if (request.method !== "POST" || !request.url?.startsWith("/introspect")) {
      send(response, { status: 404, body: { error: "not_found" } });
      return;
    }
    if (this.introspectionDown) {
      send(response, { status: 500, body: { error: "server_error" } });
      return;
    }
    const token = new URLSearchParams(body).get("token") ?? "";
    const issued = this.accessTokens.get(token);
    const active = issued !== undefined && issued.audience === "exchange" && Date.now() < issued.expiresAt;
    const mailboxes = issued ? this.users.get(issued.username.toLowerCase())?.mailboxes : undefined;
    const mailbox = mailboxes?.length === 1 ? mailboxes[0]! : issued?.username;
    send(response, { status: 200, body: active ? { active: true, username: mailbox } : { active: false } });
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  private isKnownTenant(tenant: string): boolean {
    const name = tenant.toLowerCase();
    return name === this.tenantId.toLowerCase() || name === "organizations" || name === "common" || name === "consumers";
  }

  private usernameOf(grant: string, params: URLSearchParams): string | undefined {
    if (grant === "password") return params.get("username") ?? undefined;
    if (grant === "refresh_token") return this.refreshTokens.get(params.get("refresh_token") ?? "")?.username;
    if (grant === "device_code") {
      const state = this.deviceCodes.get(params.get("device_code") ?? "")?.state;
      return state?.kind === "approved" ? state.username : undefined;
    }
    return undefined;
  }

  private takeInjectedFailure(grant: string): number | undefined {
    const index = this.aadstsFailures.findIndex((failure) => failure.grant === undefined || failure.grant === grant);
    const failure = this.aadstsFailures[index];
    if (!failure) return undefined;
    failure.remaining -= 1;
    if (failure.remaining <= 0) this.aadstsFailures.splice(index, 1);
    return failure.code;
  }

  /** Answers (or hangs) the request when an HTTP failure is queued; true if it did. */
  private applyHttpFailure(response: ServerResponse): boolean {
    const failure = this.httpFailures[0];
    if (!failure) return false;
    failure.remaining -= 1;
    if (failure.remaining <= 0) this.httpFailures.shift();
    const { kind } = failure;
    if ("hang" in kind) {
      this.hungResponses.add(response);
      response.once("close", () => this.hungResponses.delete(response));
      return true;
    }
    if (kind.status === 429) {
      const throttled = aadstsError(90055);
      send(response, { status: 429, body: throttled.body, headers: { "Retry-After": String(kind.retryAfterSeconds) } });
      return true;
    }
    const failed = aadstsError(kind.status === 500 ? 50000 : 90006);
    send(response, { status: kind.status, body: failed.body });
    return true;
  }

  private pendingDeviceCode(userCode: string): DeviceCode {
    for (const entry of this.deviceCodes.values()) {
      if (entry.userCode === userCode && entry.state.kind === "pending") return entry;
    }
    throw new Error(`no pending device code with user code ${userCode}`);
  }

  private killRefreshTokensOf(username: string, code: number): void {
    for (const grant of this.refreshTokens.values()) {
      if (grant.username.toLowerCase() === username.toLowerCase() && grant.deadWith === undefined) grant.deadWith = code;
    }
  }
}

function errorAnswer(code: number, context: AadstsContext): Answer {
  const refused = aadstsError(code, context);
  return { status: refused.status, body: refused.body, headers: { "x-ms-request-id": refused.traceId } };
}

function normaliseGrant(grantType: string): string {
  return grantType === DEVICE_CODE_GRANT_URN ? "device_code" : grantType;
}

function send(response: ServerResponse, answer: Answer, correlationId?: string): void {
  if (response.destroyed) return;
  const payload = JSON.stringify(answer.body);
  response.writeHead(answer.status, {
    "Content-Type": "application/json; charset=utf-8",
    "Cache-Control": "no-store, no-cache",
    Pragma: "no-cache",
    ...(correlationId ? { "client-request-id": correlationId } : {}),
    ...answer.headers,
  });
  response.end(payload);
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    request.on("error", reject);
  });
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
