/**
 * Maps what Microsoft Graph answers to mailfetchd's codes and the operator's fix, in one place.
 * Graph's error bodies are read for their `error.code` only: the message text and the URL are
 * never put into an error (a Graph body or a link can carry tokens; notes graph-mail.md).
 */
import { MailfetchdError } from "../errors.js";

export interface GraphFailure {
  readonly status: number;
  /** Graph's `error.code`, e.g. "ErrorAccessDenied"; "" when the body had none. */
  readonly code: string;
  /** Milliseconds from Retry-After, when the answer had one. */
  readonly retryAfterMs?: number;
}

export interface GraphErrorContext {
  readonly queue: string;
  readonly mailbox: string;
  readonly folder: string;
  readonly host: string;
  /** What was being done, e.g. "reading the folder". */
  readonly doing: string;
  /** Whether the queue mailbox is another user's (Mail.ReadWrite.Shared and Full Access apply). */
  readonly shared: boolean;
  /** The access token the request carried, to read which permissions it holds (never shown). */
  readonly accessToken?: string;
}

const PERMISSION_STEP = "admin guide section 2.2 step 10 (API permissions, Microsoft Graph, Delegated), then grant admin consent (step 10.5)";

/** An expired or invalid delta link: the round starts over (syncStateNotFound, resyncRequired, 410 Gone). */
export function isExpiredDelta(failure: GraphFailure): boolean {
  return failure.status === 410 || /^(syncStateNotFound|resyncRequired|InvalidSyncStateData|SyncStateInvalid|SyncStateNotFound)$/i.test(failure.code);
}

export function isThrottled(failure: GraphFailure): boolean {
  return failure.status === 429 || failure.status === 503;
}

export function classifyGraphFailure(failure: GraphFailure, context: GraphErrorContext): MailfetchdError {
  const { queue, mailbox, folder, host } = context;
  const what = `Queue ${queue}: Microsoft Graph (${host}) answered HTTP ${failure.status}${failure.code ? ` ${failure.code}` : ""} while ${context.doing}`;
  if (failure.status === 401) {
    return new MailfetchdError(`${what}: it did not accept the access token.`, {
      code: "GRAPH_AUTH_REJECTED",
      retryable: false,
      fix: "The token is for another API or expired: remove identity.scopes from the queue (a source: graph queue asks for https://graph.microsoft.com/Mail.ReadWrite by default), and check that graph.host is Microsoft Graph; `mailfetchd check` shows the token's audience and permissions.",
    });
  }
  if (failure.status === 403) {
    const needed = context.shared ? "Mail.ReadWrite.Shared" : "Mail.ReadWrite";
    const granted = grantedPermissions(context.accessToken);
    const permissionMissing = granted === undefined || !granted.some((p) => p.toLowerCase() === needed.toLowerCase());
    const permissionFix = `Give the app registration the delegated Microsoft Graph permission ${needed}${context.shared ? " (besides Mail.ReadWrite)" : ""}: ${PERMISSION_STEP}.`;
    const rightFix = `Give the sign-in user Full Access to the mailbox ${mailbox} (Exchange admin center: Recipients > Mailboxes > ${mailbox} > Delegation > Read and manage (Full Access)).`;
    const fix = !permissionMissing
      ? rightFix
      : context.shared
        ? `${permissionFix} If it has it, ${rightFix.charAt(0).toLowerCase()}${rightFix.slice(1)}`
        : permissionFix;
    return new MailfetchdError(`${what}: access denied to the mailbox ${mailbox}${granted ? ` (the token grants: ${granted.join(" ") || "nothing"})` : ""}.`, {
      code: "GRAPH_ACCESS_DENIED",
      retryable: false,
      fix,
    });
  }
  if (failure.code === "MailboxNotEnabledForRESTAPI") {
    return new MailfetchdError(`${what}: the mailbox ${mailbox} is not available to Graph (inactive, soft-deleted, or hosted on-premises).`, {
      code: "GRAPH_MAILBOX_NOT_ENABLED",
      retryable: false,
      fix: "Use a mailbox hosted in Exchange Online (an on-premises mailbox needs source: imap against its own server), or check the queue address (admin guide section 3).",
    });
  }
  if (failure.status === 404) {
    const userMissing = /invalid ?user|ResourceNotFound|MailboxNotFound/i.test(failure.code);
    return new MailfetchdError(userMissing ? `${what}: there is no mailbox ${mailbox}.` : `${what}: the folder '${folder}' does not exist in ${mailbox}.`, {
      code: "GRAPH_NOT_FOUND",
      retryable: false,
      fix: userMissing
        ? "Correct the queue's address (the full e-mail address of the mailbox, admin guide section 3)."
        : "Correct the queue's `folder`: a well-known name (inbox, archive, ...) or the display name of a folder at the top of the mailbox.",
    });
  }
  if (isThrottled(failure)) {
    return new MailfetchdError(`${what}: Graph is throttling this mailbox.`, {
      code: "GRAPH_THROTTLED",
      retryable: true,
      retryAfterMs: failure.retryAfterMs,
      fix: "None needed: mailfetchd waits as long as Graph asks (or minutes when it does not say). Other applications using the same mailbox share its limits.",
    });
  }
  return new MailfetchdError(`${what}.`, {
    code: "GRAPH_UNAVAILABLE",
    retryable: true,
    fix: "mailfetchd retries with backoff. If it lasts, check the network path to graph.host.",
  });
}

/** The `scp` of a readable access token, as a list; undefined when the token is not a readable JWT. */
export function grantedPermissions(accessToken: string | undefined): string[] | undefined {
  const payload = accessToken?.split(".")[1];
  if (!payload) return undefined;
  try {
    // Only a hint for the fix: Microsoft may make its tokens opaque at any time.
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { scp?: unknown };
    return typeof claims.scp === "string" ? claims.scp.split(" ").filter((p) => p.length > 0) : undefined;
  } catch {
    return undefined;
  }
}
