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
/**
 * Identity requests of one queue at least this far apart, unless the server rejected the token:
 * at most 3 a minute. Tokens that live less than MSAL's renewal offset would otherwise make every
 * token request a refresh (tens a second; Entra answers loops with throttling and AADSTS50196).
 */
export const MIN_REFRESH_INTERVAL_MS = 20_000;

export interface RefreshPlanInput {
  readonly now: number;
  /** MSAL's expiresOn of the current access token (ms since epoch). */
  readonly expiresOn: number;
  /** When the refresh token was last used (ms since epoch). */
  readonly lastRefreshAt: number;
  readonly maxIdleMs: number;
  /** Default MIN_REFRESH_INTERVAL_MS. */
  readonly minIntervalMs?: number;
  /** In [0, 1): spreads many queues' refreshes apart. */
  readonly random: () => number;
}

/** The time (ms since epoch) of the next forced refresh; never before `now`. */
export function nextRefreshAt(input: RefreshPlanInput): number {
  const { now, random } = input;
  // Up to a tenth of the idle limit early: queues that got tokens together refresh apart.
  const idleLimit = input.lastRefreshAt + input.maxIdleMs - random() * input.maxIdleMs * 0.1;
  const renewAt = input.expiresOn - MSAL_RENEWAL_OFFSET_MS;
  if (renewAt <= now) {
    // A token MSAL counts as expired already (it lives less than the renewal offset): nothing
    // to schedule ahead of. Halfway through its stated life, but never sooner than the minimum
    // interval after the last refresh, or the refreshes would follow each other without pause.
    const halfway = now + Math.max(0, input.expiresOn - now) / 2;
    return Math.max(now, input.lastRefreshAt + (input.minIntervalMs ?? MIN_REFRESH_INTERVAL_MS), Math.min(halfway, idleLimit));
  }
  // Never assume 60 minutes: the lead is a share of the token's real remaining life.
  const lead = Math.min(MAX_LEAD_MS, (renewAt - now) * 0.2);
  // Between one and two leads early: queues that got tokens together refresh apart.
  const aheadOfExpiry = renewAt - lead - random() * lead;
  return Math.max(now, Math.min(aheadOfExpiry, idleLimit));
}
