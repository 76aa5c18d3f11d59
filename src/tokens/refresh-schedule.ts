/**
 * When to refresh a queue's tokens next: ahead of the access token's expiry, and at least once
 * a day so an idle mailbox's refresh token never reaches 90 days unused (AADSTS700082).
 * Pure, so the rule is tested without clocks.
 */

/** MSAL treats a token as expired this long before its expiresOn (msal-common DEFAULT_TOKEN_RENEWAL_OFFSET_SEC). */
export const MSAL_RENEWAL_OFFSET_MS = 300_000;
/** At most this long before MSAL's own renewal point: a typical 60-90 minute token is refreshed at 50-80 minutes. */
const MAX_LEAD_MS = 10 * 60_000;
/** The refresh token is used at least this often, even when nothing else needs a token. */
export const DEFAULT_MAX_IDLE_MS = 24 * 3_600_000;

export interface RefreshPlanInput {
  readonly now: number;
  /** MSAL's expiresOn of the current access token (ms since epoch). */
  readonly expiresOn: number;
  /** When the refresh token was last used (ms since epoch). */
  readonly lastRefreshAt: number;
  readonly maxIdleMs: number;
  /** In [0, 1): spreads many queues' refreshes apart. */
  readonly random: () => number;
}

/** The time (ms since epoch) of the next forced refresh; never before `now`. */
export function nextRefreshAt(input: RefreshPlanInput): number {
  const { now, random } = input;
  // Never assume 60 minutes: the lead is a share of the token's real remaining life.
  const renewAt = input.expiresOn - MSAL_RENEWAL_OFFSET_MS;
  const remaining = renewAt - now;
  const lead = Math.min(MAX_LEAD_MS, Math.max(0, remaining) * 0.2);
  // Between one and two leads early: queues that got tokens together refresh apart.
  const aheadOfExpiry = renewAt - lead - random() * lead;
  // Up to a tenth of the idle limit early, for the same reason.
  const idleLimit = input.lastRefreshAt + input.maxIdleMs - random() * input.maxIdleMs * 0.1;
  return Math.max(now, Math.min(aheadOfExpiry, idleLimit));
}
