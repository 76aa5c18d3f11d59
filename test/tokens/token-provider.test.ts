/**
 * The token provider on the real stand-in and a real SQLite file: what happens to a sign-in
 * over its life. A dead refresh token is replaced by the password where there is one, and
 * waited out (without requests) where there is not; `login` (device code) and `logout` take
 * effect in a provider that is already running; refreshes of one queue never race.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listFiles, scanForSecrets } from "../e2e/secret-scan.js";
import type { QueueConfig } from "../../src/config/schema.js";
import { signInWithDeviceCode } from "../../src/tokens/device-code-sign-in.js";
import { ConcurrencyLimiter } from "../../src/tokens/identity-http-client.js";
import { queueStateOf } from "../../src/tokens/identity-errors.js";
import { failure, startTokenFixture, type TokenFixture } from "./token-fixture.js";

const USER = "agent@example.test";
const PASSWORD = "agent-Pa55word!";

let fx: TokenFixture;
let counter = 0;

beforeAll(async () => {
  // Device code polls every 50 ms instead of 5 s.
  fx = await startTokenFixture({ deviceCodeIntervalSeconds: 0.05 });
  fx.bed.identity.addUser({ username: USER, password: PASSWORD });
});

afterAll(async () => {
  await fx?.close();
});

function queue(options: { password?: boolean; name?: string } = {}): QueueConfig {
  const name = options.name ?? `p${++counter}`;
  return fx.queues([{ name, address: USER, password: options.password ? PASSWORD : undefined }])[0]!;
}

function requestsOf(grantType: string, since: number): number {
  return fx.bed.identity.tokenRequests.slice(since).filter((r) => r.grantType === grantType).length;
}

/** Approves (or declines, or expires) the device code as soon as MSAL shows the prompt. */
function deviceCodeLogin(q: QueueConfig, answer: "approve" | "decline" | "expire", prompts: string[] = []) {
  return signInWithDeviceCode({
    queue: q,
    store: fx.store,
    limiter: new ConcurrencyLimiter(1),
    logger: fx.logger,
    onPrompt: (message) => {
      prompts.push(message);
      const code = /enter the code (\S+)/.exec(message)?.[1] ?? "";
      if (answer === "approve") fx.bed.identity.approveDeviceCode(code, USER);
      else if (answer === "decline") fx.bed.identity.declineDeviceCode(code);
      else fx.bed.identity.expireDeviceCode(code);
    },
  });
}

describe("a dead refresh token", () => {
  it("with a password configured, is replaced by a fresh password sign-in", async () => {
    const q = queue({ password: true });
    const provider = fx.provider(q);
    await provider.getAccessToken();
    fx.bed.identity.revokeRefreshTokens(USER);
    const since = fx.bed.identity.tokenRequests.length;

    const token = await provider.getAccessToken({ forceRefresh: true });

    expect(token.token.length).toBeGreaterThan(1_000);
    const after = fx.bed.identity.tokenRequests.slice(since);
    expect(after.map((r) => `${r.grantType}:${String(r.outcome)}`)).toEqual(["refresh_token:400", "password:200"]);
  });

  it("without a password, leaves the queue in needs-sign-in and asks nothing more of the endpoint", async () => {
    const signedIn = queue({ password: true });
    await fx.provider(signedIn).getAccessToken();
    const q = queue({ name: signedIn.name }); // the same queue, its password file since removed
    const provider = fx.provider(q);
    fx.bed.identity.expireRefreshTokens(USER);

    const error = await failure(provider.getAccessToken({ forceRefresh: true }));
    expect(error.code).toBe("IDENTITY_SIGN_IN_EXPIRED");
    expect(queueStateOf(error.code)).toBe("needs-sign-in");
    expect(error.message).toContain("AADSTS700082");
    expect(error.fix).toContain(`mailfetchd login ${q.name}`);

    const since = fx.bed.identity.tokenRequests.length;
    for (let i = 0; i < 5; i++) await failure(provider.getAccessToken({ forceRefresh: i % 2 === 0 }));
    expect(fx.bed.identity.tokenRequests.length).toBe(since);
  });

  it("a queue that never signed in and has no password says to run login, without a request", async () => {
    const q = queue();
    const since = fx.bed.identity.tokenRequests.length;
    const error = await failure(fx.provider(q).getAccessToken());
    expect(error).toMatchObject({ code: "IDENTITY_NEEDS_SIGN_IN", retryable: false });
    expect(error.fix).toContain(`mailfetchd login ${q.name}`);
    expect(fx.bed.identity.tokenRequests.length).toBe(since);
  });
});

describe("device code sign-in (login) and logout", () => {
  it("an approved sign-in is stored, and a provider already waiting in needs-sign-in picks it up", async () => {
    const q = queue();
    const provider = fx.provider(q);
    expect((await failure(provider.getAccessToken())).code).toBe("IDENTITY_NEEDS_SIGN_IN");

    const prompts: string[] = [];
    const signedIn = await deviceCodeLogin(q, "approve", prompts);

    expect(signedIn.username).toBe(USER);
    expect(prompts).toHaveLength(1);
    expect(prompts[0]).toMatch(/^To sign in, use a web browser to open the page https:\/\/\S+ and enter the code [A-Z2-9]{9} to authenticate\.$/);
    expect(await fx.store.updatedAt(q.name)).toBeDefined();
    const since = fx.bed.identity.tokenRequests.length;
    await expect(provider.getAccessToken({ forceRefresh: true })).resolves.toMatchObject({ token: expect.any(String) });
    expect(fx.bed.identity.tokenRequests.slice(since).map((r) => r.grantType)).toEqual(["refresh_token"]);
  });

  it("a declined sign-in fails with the fix and leaves the stored sign-in as it was", async () => {
    const q = queue();
    await deviceCodeLogin(q, "approve");
    const before = await fx.store.read(q.name);

    const error = await failure(deviceCodeLogin(q, "decline"));

    expect(error.code).toBe("IDENTITY_NEEDS_SIGN_IN");
    expect(error.message).toMatch(/declined/);
    expect(error.fix).toContain(`mailfetchd login ${q.name}`);
    expect(await fx.store.read(q.name)).toBe(before);
  });

  it("an expired device code fails with the fix", async () => {
    const error = await failure(deviceCodeLogin(queue(), "expire"));
    expect(error.code).toBe("IDENTITY_NEEDS_SIGN_IN");
    expect(error.message).toMatch(/expired/);
    expect(error.message).toContain("AADSTS70019");
  });

  it("a device code sign-in blocked by Conditional Access keeps its AADSTS code (MSAL alone would drop it)", async () => {
    const q = queue();
    fx.bed.identity.failNext(53003, { grant: "device_code" });
    const error = await failure(deviceCodeLogin(q, "approve"));
    expect(error.code).toBe("IDENTITY_CONDITIONAL_ACCESS");
    expect(queueStateOf(error.code)).toBe("needs-admin");
    expect(error.message).toContain("AADSTS53003");
    expect(await fx.store.updatedAt(q.name)).toBeUndefined();
  });

  it("public client flows off: the device code sign-in is refused, with the admin guide step", async () => {
    fx.bed.identity.failNext(7000218, { grant: "device_code" });
    const error = await failure(deviceCodeLogin(queue(), "approve"));
    expect(error.code).toBe("IDENTITY_NOT_PUBLIC_CLIENT");
    expect(error.fix).toMatch(/section 2\.2 step 9/);
  });

  it("logout takes effect in a running provider: its in-memory tokens are forgotten too", async () => {
    const q = queue();
    await deviceCodeLogin(q, "approve");
    const provider = fx.provider(q);
    await provider.getAccessToken(); // MSAL now holds the tokens in memory as well

    expect(await fx.store.remove(q.name)).toBe(true);

    const error = await failure(provider.getAccessToken());
    expect(error.code).toBe("IDENTITY_NEEDS_SIGN_IN");
    expect(await fx.store.updatedAt(q.name)).toBeUndefined(); // and nothing wrote the old cache back
  });
});

describe("one queue's requests", () => {
  it("run one at a time: concurrent forced refreshes never present a redeemed refresh token", async () => {
    const q = queue({ password: true });
    const provider = fx.provider(q);
    await provider.getAccessToken();
    const since = fx.bed.identity.tokenRequests.length;

    const tokens = await Promise.all(Array.from({ length: 5 }, () => provider.getAccessToken({ forceRefresh: true })));

    expect(new Set(tokens.map((t) => t.token)).size).toBe(5);
    // The stand-in answers a reused refresh token with 400 (AADSTS70000); every one here was fresh.
    expect(fx.bed.identity.tokenRequests.slice(since).map((r) => `${r.grantType}:${String(r.outcome)}`)).toEqual(Array(5).fill("refresh_token:200"));
    expect(requestsOf("password", since)).toBe(0);
  });
});

describe("after all of the above", () => {
  it("no token, password or device code is in a log line or in the state files", () => {
    const secrets = [...fx.bed.identity.secretsIssued];
    expect(fx.logLines.length).toBeGreaterThan(0);
    const logged = fx.logLines.join("");
    expect(secrets.filter((secret) => logged.includes(secret)).map((s) => s.slice(0, 6))).toEqual([]);
    expect(scanForSecrets(listFiles(path.join(fx.bed.dir, "state")), secrets)).toEqual([]);
  });
});
