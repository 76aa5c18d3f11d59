/** Times as operators read them at a glance: relative ("in 52m", "3h ago") beside UTC. */

/** "in 52m", "12s ago", "2d ago"; `now` is explicit so tests and a page render agree. */
export function relativeTime(at: Date, now: Date): string {
  const deltaMs = at.getTime() - now.getTime();
  const text = shortDuration(Math.abs(deltaMs));
  return deltaMs >= 0 ? `in ${text}` : `${text} ago`;
}

export function shortDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 === 0 || h >= 10 ? `${h}h` : `${h}h${m % 60}m`;
  return `${Math.floor(h / 24)}d`;
}

/** How long something has waited since `since` ("43m"); never negative when clocks disagree a little. */
export function waitedFor(since: Date, now: Date): string {
  return shortDuration(Math.max(0, now.getTime() - since.getTime()));
}

/** 2026-05-20 10:32:05Z: sortable, unambiguous, short. */
export function utcTime(at: Date): string {
  return at
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d{3}Z$/, "Z");
}

/** A token expiry for a person: an expired access token is normal (it is refreshed on use). */
export function describeTokenExpiry(expiresAt: Date | undefined, now: Date): string {
  if (!expiresAt) return "no token yet";
  return expiresAt.getTime() > now.getTime() ? `${relativeTime(expiresAt, now)}` : `expired ${relativeTime(expiresAt, now)}`;
}

export function describeLastSuccess(at: Date | undefined, now: Date): string {
  return at ? relativeTime(at, now) : "never";
}
