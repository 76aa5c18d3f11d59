/**
 * 200 queues starting at once must not stampede the identity endpoint: every token request
 * goes through one shared bound, which the stand-in observes from its side of the wire.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { QueueConfig } from "../../src/config/schema.js";
import { ConcurrencyLimiter } from "../../src/tokens/identity-http-client.js";
import { startTokenFixture, type TokenFixture } from "../../tools/testbed/helpers/token-fixture.js";

const QUEUES = 200;
/** What the daemon uses (src/app.ts IDENTITY_CONCURRENCY). */
const BOUND = 4;

let fx: TokenFixture;
let queues: QueueConfig[];

beforeAll(async () => {
  // A slow answer keeps requests in flight long enough to overlap, as they would at Microsoft.
  fx = await startTokenFixture({ tokenResponseDelayMs: 20 });
  const specs = Array.from({ length: QUEUES }, (_, i) => ({ name: `queue-${i}`, address: `user${i}@example.test`, password: `user${i}-Pa55word!` }));
  for (const spec of specs) fx.bed.identity.addUser({ username: spec.address, password: spec.password });
  queues = fx.queues(specs);
});

afterAll(async () => {
  await fx?.close();
});

describe(`${QUEUES} queues starting at once`, () => {
  it(`sign in with at most ${BOUND} token requests in flight, and all get a token`, async () => {
    const limiter = new ConcurrencyLimiter(BOUND);
    const since = fx.bed.identity.tokenRequests.length;

    const tokens = await Promise.all(queues.map((queue) => fx.provider(queue, { limiter }).getAccessToken()));

    expect(tokens).toHaveLength(QUEUES);
    expect(new Set(tokens.map((t) => t.token)).size).toBe(QUEUES);
    const requests = fx.bed.identity.tokenRequests.slice(since);
    expect(requests.filter((r) => r.outcome === 200)).toHaveLength(QUEUES);
    expect(fx.bed.identity.maxConcurrentTokenRequests).toBeLessThanOrEqual(BOUND);
    // The bound was reached, so the assertion above was a real one.
    expect(fx.bed.identity.maxConcurrentTokenRequests).toBe(BOUND);
  });

  it("without the shared bound the same start does stampede (the stand-in would see it)", async () => {
    const unbounded = new ConcurrencyLimiter(QUEUES);
    await Promise.all(queues.slice(0, 50).map((queue) => fx.provider(queue, { limiter: unbounded }).getAccessToken({ forceRefresh: true })));
    expect(fx.bed.identity.maxConcurrentTokenRequests).toBeGreaterThan(BOUND);
  });
});
