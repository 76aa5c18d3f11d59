/**
 * Errors that steer control flow. A few classes, each with a machine-readable code, whether
 * to retry, and a fix an operator can act on (naming the admin guide step where that is the
 * cause). Messages never contain secrets: build them from codes and names, never from tokens.
 */

export type ErrorCode =
  // configuration
  | "CONFIG_INVALID"
  | "CONFIG_NOT_FOUND"
  | "SECRET_UNREADABLE"
  // identity platform
  | "IDENTITY_BAD_PASSWORD"
  | "IDENTITY_USER_NOT_FOUND"
  | "IDENTITY_ACCOUNT_DISABLED"
  | "IDENTITY_PASSWORD_EXPIRED"
  | "IDENTITY_ACCOUNT_LOCKED"
  | "IDENTITY_MFA_REQUIRED"
  | "IDENTITY_CONDITIONAL_ACCESS"
  | "IDENTITY_NO_CONSENT"
  | "IDENTITY_APP_NOT_FOUND"
  | "IDENTITY_TENANT_NOT_FOUND"
  | "IDENTITY_NOT_PUBLIC_CLIENT"
  | "IDENTITY_SECRET_SENT"
  | "IDENTITY_SIGN_IN_EXPIRED"
  | "IDENTITY_THROTTLED"
  | "IDENTITY_SCOPE_MIXED"
  | "IDENTITY_UNAVAILABLE"
  | "IDENTITY_NEEDS_SIGN_IN"
  | "IDENTITY_ERROR"
  // IMAP
  | "IMAP_AUTH_REJECTED"
  | "IMAP_NOT_CONNECTED"
  | "IMAP_AUTH_UNAVAILABLE"
  | "IMAP_FOLDER_NOT_FOUND"
  | "IMAP_THROTTLED"
  | "IMAP_UNAVAILABLE"
  // Microsoft Graph
  | "GRAPH_AUTH_REJECTED"
  | "GRAPH_ACCESS_DENIED"
  | "GRAPH_NOT_FOUND"
  | "GRAPH_MAILBOX_NOT_ENABLED"
  | "GRAPH_THROTTLED"
  | "GRAPH_UNAVAILABLE"
  | "GRAPH_BAD_LINK"
  // storage and delivery
  | "SPOOL_WRITE_FAILED"
  | "STATE_UNAVAILABLE"
  | "STATE_FENCED"
  | "HANDLER_FAILED"
  | "HANDLER_REJECTED"
  // operating surface (HTTP, status, healthcheck)
  | "HTTP_LISTEN_FAILED"
  | "STATE_NOT_FOUND"
  | "UNHEALTHY"
  // command line
  | "NOT_FOUND";

export interface ErrorDetails {
  code: ErrorCode;
  /** Whether the same operation may succeed later without anyone changing anything. */
  retryable: boolean;
  /** What the operator does about it. */
  fix?: string;
  cause?: unknown;
  /** Earliest sensible retry, when the failing party said so (Retry-After, throttling). */
  retryAfterMs?: number;
}

export class MailfetchdError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly fix?: string;
  readonly retryAfterMs?: number;

  constructor(message: string, details: ErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "MailfetchdError";
    this.code = details.code;
    this.retryable = details.retryable;
    this.fix = details.fix;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** A configuration error: names the key, what is wrong, and what to write instead. */
export class ConfigError extends MailfetchdError {
  constructor(message: string, code: "CONFIG_INVALID" | "CONFIG_NOT_FOUND" | "SECRET_UNREADABLE" = "CONFIG_INVALID") {
    super(message, { code, retryable: false });
    this.name = "ConfigError";
  }
}

/** Thrown by a handler to reject a message for good: it is dead-lettered, not retried. */
export class PermanentError extends MailfetchdError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: "HANDLER_REJECTED", retryable: false, cause });
    this.name = "PermanentError";
  }
}

export function isRetryable(error: unknown): boolean {
  return error instanceof MailfetchdError ? error.retryable : true;
}

/** Whether this failure, or what caused it, is a write refused because another replica holds the queue now. */
export function isFenced(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof MailfetchdError && e.code === "STATE_FENCED") return true;
  }
  return false;
}

/** A one-line description of any thrown value, safe for a log or status line. */
export function describeError(error: unknown): string {
  if (error instanceof MailfetchdError) {
    return error.fix ? `${error.message} Fix: ${error.fix}` : error.message;
  }
  if (error instanceof Error) return error.message;
  return String(error);
}
