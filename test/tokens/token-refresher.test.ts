/**
 * The refresher on the real stand-in: with nobody asking for a token, it refreshes ahead of
 * expiry and, for an idle queue, at least once per idle limit; it stops for a dead sign-in and
 * retries after a transient failure.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { QueueConfig } from "../../src/config/schema.js";
import type { MsalTokenProvider } from "../../src/tokens/msal-token-provider.js";
import { MIN_REFRESH_INTERVAL_MS } from "../../src/tokens/refresh-schedule.js";
import { TokenRefresher, type TokenRefresherOptions } from "../../src/tokens/token-refresher.js";
import { sleep, startTokenFixture, waitFor, type TokenFixture } from "../../tools/testbed/helpers/token-fixture.js";

const DEFAULT_LIFETIME_S = 4_500;

let fx: TokenFixture;
let counter = 0;
const running: TokenRefresher[] = [];

beforeAll(async () => {
  fx = await startTokenFixture();
});

afterEach(() => {
  for (const refresher of running.splice(0)) refresher.stop();
  fx.bed.identity.setAccessTokenLifetime(DEFAULT_LIFETIME_S);
});

afterAll(async () => {
  await fx?.close();
});

/** A queue with its own user, so the stand-in's request log can be read per queue. */
function newQueue(options: { password?: boolean } = {}): { queue: QueueConfig; user: string } {
  const n = ++counter;
  const user = `refresh${n}@example.test`;
  const password = `refresh${n}-Pa55word!`;
  fx.bed.identity.addUser({ username: user, password });
  const queue = fx.queues([{ name: `r${n}`, address: user, password: options.password === false ? undefined : password }])[0]!;
  return { queue, user };
}

function withRefresher(queue: QueueConfig, options: Partial<TokenRefresherOptions> = {}): MsalTokenProvider {
  let refresher: TokenRefresher | undefined;
  const provider = fx.provider(queue, { onToken: (expiresOn, info) => refresher?.tokenObtained(expiresOn, info) });
  refresher = new TokenRefresher(provider, { logger: fx.logger, ...options });
  running.push(refresher);
  refresher.start();
  return provider;
}

function grantsOf(user: string) {
  return fx.bed.identity.tokenRequests.filter((r) => r.username === user);
}

describe("TokenRefresher", () => {
  it("refreshes ahead of expiry with nobody asking for a token, never letting the token lapse", async () => {
    const lifetimeMs = 3_000;
    fx.bed.identity.setAccessTokenLifetime(lifetimeMs / 1000);
    const { queue, user } = newQueue();
    await withRefresher(queue).getAccessToken(); // the poller's first cycle, in the daemon

    await waitFor("two refreshes nobody asked for", () => grantsOf(user).filter((r) => r.grantType === "refresh_token").length >= 2);

    const grants = grantsOf(user);
    expect(grants.every((r) => r.outcome === 200)).toBe(true);
    expect(grants[0]?.grantType).toBe("password");
    expect(grants.slice(1).every((r) => r.grantType === "refresh_token")).toBe(true);
    // Each refresh came while the token before it was still alive (it dies after lifetimeMs).
    const gaps = grants.slice(1).map((r, i) => r.at - grants[i]!.at);
    for (const gap of gaps) expect(gap).toBeLessThan(lifetimeMs);
  });

  it("asks at most once per 20 s per queue for tokens that live less than MSAL's 5-minute offset, unless the server rejects one", async () => {
    // 60-second tokens stated as such (expires_in 60), as a tenant or proxy could issue them:
    // MSAL counts each as expired on arrival, so every request used to become a refresh.
    fx.bed.identity.setAccessTokenLifetime(60, { padded: false });
    const queues = [newQueue(), newQueue(), newQueue()];
    const providers = queues.map(({ queue }) => withRefresher(queue));
    const watchedMs = 25_000;
    const until = Date.now() + watchedMs;
    let stale = 0;
    // Each queue asks for a token every 100 ms: connects, IDLE renewals and probes of a busy queue.
    await Promise.all(
      providers.map(async (provider) => {
        while (Date.now() < until) {
          const token = await provider.getAccessToken();
          if (token.expiresOn.getTime() <= Date.now()) stale++;
          await sleep(100);
        }
      }),
    );
    expect(stale, "a token handed out after its expiry").toBe(0);
    for (const { user } of queues) {
      const grants = grantsOf(user);
      expect(grants.every((r) => r.outcome === 200)).toBe(true);
      // The sign-in, then at most one refresh per 20 s; and it does refresh (no token lapses).
      expect(grants.length).toBeGreaterThanOrEqual(2);
      expect(grants.length).toBeLessThanOrEqual(1 + Math.ceil(watchedMs / MIN_REFRESH_INTERVAL_MS));
      const gaps = grants.slice(1).map((r, i) => r.at - grants[i]!.at);
      for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(MIN_REFRESH_INTERVAL_MS - 50);
    }
    // One warning per queue says why, and what to check.
    const warnings = fx.logLines.filter((line) => line.includes("live less than the 5 minutes MSAL renews them"));
    expect(warnings.map((line) => (JSON.parse(line) as { queue: string }).queue).sort()).toEqual(queues.map(({ queue }) => queue.name).sort());
    // The stated 60 s, give or take MSAL's rounding to whole seconds and a slow request start.
    const warning = JSON.parse(warnings[0]!) as { level: number; lifetimeSeconds: number };
    expect(warning.level).toBe(40);
    expect(warning.lifetimeSeconds).toBeGreaterThanOrEqual(59);
    expect(warning.lifetimeSeconds).toBeLessThanOrEqual(62);

    // The server rejected the token (IMAP's AUTHENTICATE failed): a fresh one at once.
    const { user } = queues[0]!;
    const before = grantsOf(user).length;
    await providers[0]!.getAccessToken({ forceRefresh: true });
    expect(grantsOf(user)).toHaveLength(before + 1);
  });

  it("holds back nothing for a token MSAL renews itself (stated lifetime above the offset): a dead one is replaced at the next request", async () => {
    // The stand-in's 2-second token states 302 s: MSAL renews it exactly when it dies.
    fx.bed.identity.setAccessTokenLifetime(2);
    const { queue, user } = newQueue();
    const provider = fx.provider(queue);
    const first = await provider.getAccessToken();
    // MSAL rounds the request time to whole seconds: past 2.5 s the token is surely inside the offset.
    await sleep(3_200);
    const second = await provider.getAccessToken();
    expect(second.token).not.toBe(first.token);
    expect(grantsOf(user)).toHaveLength(2);
  });

  it("uses the refresh token of an idle queue at least once per idle limit, though its access token is good for 75 minutes", async () => {
    const { queue, user } = newQueue();
    await withRefresher(queue, { maxIdleMs: 400 }).getAccessToken();

    await waitFor("two idle refreshes", () => grantsOf(user).filter((r) => r.grantType === "refresh_token" && r.outcome === 200).length >= 2);
  });

  it("stops for a sign-in that is dead for good, and asks nothing more until a new sign-in", async () => {
    const { queue, user } = newQueue();
    await fx.provider(queue).getAccessToken(); // signed in once, with the password
    const withoutPassword = fx.queues([{ name: queue.name, address: user }])[0]!;
    const provider = withRefresher(withoutPassword, { maxIdleMs: 200 });
    await provider.getAccessToken(); // from the cache: the refresher now has a plan
    fx.bed.identity.expireRefreshTokens(user);

    await waitFor("the refused refresh", () => grantsOf(user).some((r) => r.outcome === 400));
    const count = grantsOf(user).length;
    await sleep(1_500); // several idle limits
    expect(grantsOf(user)).toHaveLength(count);
  });

  it("retries a refresh that failed for a passing reason (HTTP 503)", async () => {
    const { queue, user } = newQueue();
    const provider = withRefresher(queue, { maxIdleMs: 300, retry: { baseMs: 100, maxMs: 200 } });
    await provider.getAccessToken();
    fx.bed.identity.failHttpNext({ status: 503 });

    await waitFor("a 503 followed by a successful refresh", () => {
      const outcomes = grantsOf(user).map((r) => r.outcome);
      const failed = outcomes.indexOf(503);
      return failed > 0 && outcomes.slice(failed + 1).includes(200);
    });
  });
});
