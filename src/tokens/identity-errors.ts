/**
 * Maps what the Microsoft identity platform (through MSAL) answers to mailfetchd's error codes,
 * retry decision and the operator's fix. Classify by AADSTS code first (the most specific),
 * then by OAuth error/suberror. Table: shared notes microsoft-identity.md; admin guide steps:
 * "Microsoft 365 Mail Configuration (OAuth User)", section 2.2 (app) and 3 (mailbox).
 */
import { AuthError } from "@azure/msal-node";
import { MailfetchdError, type ErrorCode } from "../errors.js";
import type { QueueState } from "../store/ports.js";
import { IDENTITY_THROTTLED, IDENTITY_UNAVAILABLE, IdentityTransportError } from "./identity-http-client.js";

export interface Rule {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly what: string;
  readonly fix: string;
}

const SIGN_IN_AGAIN =
  "Sign the queue in again: with signIn.passwordFile set mailfetchd does so itself once the password works; otherwise run `mailfetchd login <queue>`.";

const BAD_REQUEST_BUG: Rule = {
  code: "IDENTITY_ERROR",
  retryable: true,
  what: "the identity platform calls mailfetchd's request malformed (AADSTS900144)",
  fix: "This is a bug in mailfetchd: report it with the log line. mailfetchd retries with backoff meanwhile.",
};

/** Every AADSTS code mailfetchd knows (docs/troubleshooting.md lists each one). */
export const BY_AADSTS: Readonly<Record<number, Rule>> = {
  50126: {
    code: "IDENTITY_BAD_PASSWORD",
    retryable: false,
    what: "the user name or password was refused (AADSTS50126)",
    fix: "Put the mailbox user's current password in the file named by signIn.passwordFile. Federated (AD FS) users cannot sign in with a password: use `mailfetchd login` (device code).",
  },
  50034: {
    code: "IDENTITY_USER_NOT_FOUND",
    retryable: false,
    what: "the sign-in user does not exist in this tenant (AADSTS50034)",
    fix: "Check signIn.user (default: the queue address; admin guide section 3 step 5) and identity.tenantId (section 2.2 step 8).",
  },
  50057: {
    code: "IDENTITY_ACCOUNT_DISABLED",
    retryable: false,
    what: "the sign-in account is disabled (AADSTS50057)",
    fix: "A shared mailbox's own account stays disabled: set signIn.user to a user with Full Access to the mailbox, or enable the account in the Microsoft 365 admin center (admin guide section 3).",
  },
  50055: {
    code: "IDENTITY_PASSWORD_EXPIRED",
    retryable: false,
    what: "the sign-in user's password has expired (AADSTS50055)",
    fix: "Set a new password for the user and put it in signIn.passwordFile; an existing refresh token keeps working meanwhile.",
  },
  50053: {
    code: "IDENTITY_ACCOUNT_LOCKED",
    retryable: false,
    what: "the account is locked after too many bad passwords (AADSTS50053)",
    fix: "Wait for the lock to expire, fix signIn.passwordFile, and check nothing else uses a wrong password for this user.",
  },
  50076: {
    code: "IDENTITY_MFA_REQUIRED",
    retryable: false,
    what: "multi-factor authentication is required (AADSTS50076)",
    fix: "Password sign-in cannot do MFA: run `mailfetchd login <queue>` (device code) once, or exclude the account from MFA.",
  },
  50079: {
    code: "IDENTITY_MFA_REQUIRED",
    retryable: false,
    what: "the user must register for multi-factor authentication (AADSTS50079)",
    fix: "Run `mailfetchd login <queue>` (device code) once, or exclude the account from MFA registration.",
  },
  53003: {
    code: "IDENTITY_CONDITIONAL_ACCESS",
    retryable: false,
    what: "sign-in is blocked by a Conditional Access policy (AADSTS53003)",
    fix: "Ask the tenant admin to allow this app and user in Conditional Access (policies can block password sign-in and the device code flow separately).",
  },
  530035: {
    code: "IDENTITY_CONDITIONAL_ACCESS",
    retryable: false,
    what: "sign-in is blocked by security defaults (AADSTS530035)",
    fix: "Ask the tenant admin to allow this sign-in (security defaults / Conditional Access), or use `mailfetchd login <queue>`.",
  },
  65001: {
    code: "IDENTITY_NO_CONSENT",
    retryable: false,
    what: "admin consent for the app's permissions is missing (AADSTS65001)",
    fix: "Grant admin consent (admin guide section 2.2 step 10.5), for the delegated permission IMAP.AccessAsUser.All of Office 365 Exchange Online.",
  },
  700016: {
    code: "IDENTITY_APP_NOT_FOUND",
    retryable: false,
    what: "the app registration is not found in this tenant (AADSTS700016)",
    fix: "Check identity.clientId (admin guide section 2.2 step 7) and identity.tenantId (step 8).",
  },
  90002: {
    code: "IDENTITY_TENANT_NOT_FOUND",
    retryable: false,
    what: "the tenant is not found (AADSTS90002)",
    fix: "Check identity.tenantId: the Directory (tenant) ID of admin guide section 2.2 step 8.",
  },
  9001023: {
    code: "CONFIG_INVALID",
    retryable: false,
    what: "password and device code sign-in need a tenant-specific authority, not /common or /consumers (AADSTS9001023)",
    fix: "Remove identity.authority or end it with the Directory (tenant) ID of admin guide section 2.2 step 8.",
  },
  7000218: {
    code: "IDENTITY_NOT_PUBLIC_CLIENT",
    retryable: false,
    what: "the app is not a public client, so password and device-code sign-in are refused (AADSTS7000218)",
    fix: "Set 'Treat application as a public client' to Yes (admin guide section 2.2 step 9) and save.",
  },
  700025: {
    code: "IDENTITY_SECRET_SENT",
    retryable: false,
    what: "a client secret was sent for a public client (AADSTS700025)",
    fix: "Remove the client secret from the request: mailfetchd uses a public client and needs none.",
  },
  700082: { code: "IDENTITY_SIGN_IN_EXPIRED", retryable: false, what: "the refresh token expired after 90 days unused (AADSTS700082)", fix: SIGN_IN_AGAIN },
  50173: {
    code: "IDENTITY_SIGN_IN_EXPIRED",
    retryable: false,
    what: "the sign-in was revoked, e.g. by a password change or an admin (AADSTS50173)",
    fix: SIGN_IN_AGAIN,
  },
  70043: {
    code: "IDENTITY_SIGN_IN_EXPIRED",
    retryable: false,
    what: "the refresh token expired or a sign-in frequency policy applies (AADSTS70043)",
    fix: SIGN_IN_AGAIN,
  },
  70000: { code: "IDENTITY_SIGN_IN_EXPIRED", retryable: false, what: "the refresh grant is invalid (AADSTS70000)", fix: SIGN_IN_AGAIN },
  70008: { code: "IDENTITY_SIGN_IN_EXPIRED", retryable: false, what: "the refresh grant has expired (AADSTS70008)", fix: SIGN_IN_AGAIN },
  9002313: { code: "IDENTITY_SIGN_IN_EXPIRED", retryable: false, what: "the stored refresh token is not accepted (AADSTS9002313)", fix: SIGN_IN_AGAIN },
  50196: {
    code: "IDENTITY_THROTTLED",
    retryable: true,
    what: "Microsoft saw too many identical requests (AADSTS50196)",
    fix: "mailfetchd backs off by itself; if this repeats, report it as a bug.",
  },
  90055: {
    code: "IDENTITY_THROTTLED",
    retryable: true,
    what: "the tenant is throttled (AADSTS90055)",
    fix: "mailfetchd backs off by itself; fewer queues per app registration helps.",
  },
  28000: {
    code: "IDENTITY_SCOPE_MIXED",
    retryable: false,
    what: "the requested scopes span two resources (AADSTS28000)",
    fix: "Request only Exchange scopes: identity.scopes = [https://outlook.office.com/IMAP.AccessAsUser.All, offline_access].",
  },
  700022: {
    code: "IDENTITY_SCOPE_MIXED",
    retryable: false,
    what: "the requested scopes span two resources (AADSTS700022)",
    fix: "Request only Exchange scopes: identity.scopes = [https://outlook.office.com/IMAP.AccessAsUser.All, offline_access].",
  },
  900144: BAD_REQUEST_BUG,
  50000: {
    code: "IDENTITY_UNAVAILABLE",
    retryable: true,
    what: "the identity platform had an internal error (AADSTS50000)",
    fix: "None needed: mailfetchd retries with backoff.",
  },
  90006: {
    code: "IDENTITY_UNAVAILABLE",
    retryable: true,
    what: "the identity platform is temporarily unavailable (AADSTS90006)",
    fix: "None needed: mailfetchd retries with backoff.",
  },
  // Device code sign-in (`mailfetchd login`)
  65004: {
    code: "IDENTITY_NEEDS_SIGN_IN",
    retryable: false,
    what: "the sign-in was declined on the device login page (AADSTS65004)",
    fix: "Run `mailfetchd login <queue>` again and accept the request, signed in as the queue's sign-in user.",
  },
  70019: {
    code: "IDENTITY_NEEDS_SIGN_IN",
    retryable: false,
    what: "the device code expired before the sign-in was completed (AADSTS70019)",
    fix: "Run `mailfetchd login <queue>` again and complete the sign-in within 15 minutes.",
  },
  70018: {
    code: "IDENTITY_NEEDS_SIGN_IN",
    retryable: false,
    what: "the code entered on the device login page was wrong (AADSTS70018)",
    fix: "Run `mailfetchd login <queue>` again and enter the code exactly as printed.",
  },
};

/**
 * OAuth `error` values and MSAL's own error codes, for answers that carry no AADSTS code:
 * device code polls (RFC 8628 names), discovery, and MSAL's local checks.
 */
export const BY_ERROR_CODE: Readonly<Record<string, Rule>> = {
  authorization_declined: { ...BY_AADSTS[65004]!, what: "the sign-in was declined on the device login page (authorization_declined)" },
  expired_token: { ...BY_AADSTS[70019]!, what: "the device code expired before the sign-in was completed (expired_token)" },
  device_code_expired: { ...BY_AADSTS[70019]!, what: "the device code expired before the sign-in was completed" },
  bad_verification_code: { ...BY_AADSTS[70018]!, what: "the code entered on the device login page was wrong (bad_verification_code)" },
  invalid_tenant: { ...BY_AADSTS[90002]!, what: "the tenant is not found (invalid_tenant)" },
  user_timeout_reached: {
    code: "IDENTITY_NEEDS_SIGN_IN",
    retryable: false,
    what: "the sign-in was not completed in time",
    fix: "Run `mailfetchd login <queue>` again and complete the sign-in in the browser.",
  },
  device_code_polling_cancelled: {
    code: "IDENTITY_NEEDS_SIGN_IN",
    retryable: false,
    what: "the sign-in was cancelled",
    fix: "Run `mailfetchd login <queue>` again.",
  },
};

/** What a queue needs, derived from its last error: shown in logs and status. */
export function queueStateOf(code: ErrorCode): Exclude<QueueState, "ok" | "starting"> {
  switch (code) {
    case "IDENTITY_BAD_PASSWORD":
    case "IDENTITY_PASSWORD_EXPIRED":
    case "IDENTITY_ACCOUNT_LOCKED":
      return "needs-password";
    case "IDENTITY_MFA_REQUIRED":
    case "IDENTITY_SIGN_IN_EXPIRED":
    case "IDENTITY_NEEDS_SIGN_IN":
      return "needs-sign-in";
    case "IDENTITY_NO_CONSENT":
    case "IDENTITY_NOT_PUBLIC_CLIENT":
    case "IDENTITY_CONDITIONAL_ACCESS":
    case "IDENTITY_ACCOUNT_DISABLED":
    case "IMAP_NOT_CONNECTED":
    case "GRAPH_ACCESS_DENIED":
    case "GRAPH_MAILBOX_NOT_ENABLED":
      return "needs-admin";
    case "IDENTITY_USER_NOT_FOUND":
    case "IDENTITY_APP_NOT_FOUND":
    case "IDENTITY_TENANT_NOT_FOUND":
    case "IDENTITY_SECRET_SENT":
    case "IDENTITY_SCOPE_MIXED":
    case "IMAP_AUTH_REJECTED":
    case "IMAP_FOLDER_NOT_FOUND":
    case "GRAPH_AUTH_REJECTED":
    case "GRAPH_NOT_FOUND":
    case "GRAPH_BAD_LINK":
    case "CONFIG_INVALID":
    case "CONFIG_NOT_FOUND":
    case "SECRET_UNREADABLE":
      return "misconfigured";
    default:
      return "retrying";
  }
}

const RETRY_NETWORK_FIX = "mailfetchd retries with backoff. If it lasts, check the network path to the authority (proxy, firewall, identity.caFile).";

/** Whether a fresh password sign-in may cure this failure of a silent (refresh) request. */
export function passwordSignInMayHelp(error: MailfetchdError): boolean {
  return error.code === "IDENTITY_SIGN_IN_EXPIRED" || error.code === "IDENTITY_NEEDS_SIGN_IN";
}

export interface ClassifyContext {
  /**
   * Why the last discovery request failed: MSAL reports "endpoints_resolution_error" alike for
   * an unknown tenant and an unreachable endpoint, and only this tells them apart.
   */
  readonly discoveryFailure?: AuthError;
}

export function classifyIdentityError(error: unknown, queue: string, context: ClassifyContext = {}): MailfetchdError {
  if (error instanceof MailfetchdError) return error;
  if (error instanceof AuthError && isDiscoveryError(error) && context.discoveryFailure) {
    return classifyIdentityError(context.discoveryFailure, queue);
  }
  if (
    error instanceof IdentityTransportError ||
    (error instanceof AuthError && (error.errorCode === IDENTITY_UNAVAILABLE || error.errorCode === IDENTITY_THROTTLED))
  ) {
    const throttled = error.errorCode === IDENTITY_THROTTLED;
    return new MailfetchdError(
      `Queue ${queue}: ${throttled ? "the identity endpoint is throttling requests" : "the identity endpoint is unavailable"} (${error.errorMessage}).`,
      {
        code: throttled ? "IDENTITY_THROTTLED" : "IDENTITY_UNAVAILABLE",
        retryable: true,
        fix: throttled ? "None needed: mailfetchd waits as asked and retries." : RETRY_NETWORK_FIX,
        retryAfterMs: error instanceof IdentityTransportError ? error.retryAfterMs : undefined,
        cause: error,
      },
    );
  }
  if (error instanceof AuthError) {
    const aadsts = aadstsOf(error);
    const oauthError = error.errorCode === "post_request_failed" ? error.errorMessage : error.errorCode;
    const rule = (aadsts !== undefined ? BY_AADSTS[aadsts] : undefined) ?? BY_ERROR_CODE[oauthError];
    if (rule) {
      return new MailfetchdError(`Queue ${queue}: ${rule.what}.`, {
        code: rule.code,
        retryable: rule.retryable,
        fix: rule.fix.replaceAll("<queue>", queue),
        cause: error,
      });
    }
    const codes = `${oauthError}${aadsts ? `, AADSTS${aadsts}` : ""}`;
    if (oauthError === "invalid_grant" || oauthError === "interaction_required" || oauthError === "no_tokens_found" || error.subError === "consent_required") {
      const consent = error.subError === "consent_required";
      return new MailfetchdError(`Queue ${queue}: the stored sign-in is no longer valid (${codes}).`, {
        code: consent ? "IDENTITY_NO_CONSENT" : "IDENTITY_SIGN_IN_EXPIRED",
        retryable: false,
        fix: consent ? BY_AADSTS[65001]!.fix : SIGN_IN_AGAIN.replaceAll("<queue>", queue),
        cause: error,
      });
    }
    if (
      oauthError === "temporarily_unavailable" ||
      oauthError === "server_error" ||
      oauthError === "network_error" ||
      oauthError === "request_timeout" ||
      isDiscoveryError(error)
    ) {
      return new MailfetchdError(`Queue ${queue}: the identity endpoint is unavailable (${codes}).`, {
        code: "IDENTITY_UNAVAILABLE",
        retryable: true,
        fix: RETRY_NETWORK_FIX,
        cause: error,
      });
    }
    return new MailfetchdError(`Queue ${queue}: the identity platform refused the request (${codes}).`, {
      code: "IDENTITY_ERROR",
      retryable: true,
      fix: "mailfetchd retries with backoff; if it lasts, run `mailfetchd check` and compare with the admin guide section 2.2.",
      cause: error,
    });
  }
  return new MailfetchdError(`Queue ${queue}: token request failed: ${error instanceof Error ? error.message : String(error)}.`, {
    code: "IDENTITY_ERROR",
    retryable: true,
    fix: "mailfetchd retries with backoff; if it lasts, report it as a bug with the log line.",
    cause: error,
  });
}

function isDiscoveryError(error: AuthError): boolean {
  return error.errorCode === "endpoints_resolution_error" || error.errorCode === "openid_config_error";
}

function aadstsOf(error: AuthError): number | undefined {
  // msal-node types errorNo as a string; it carries error_codes[0] as sent, a number.
  const errorNo = (error as AuthError & { errorNo?: string | number }).errorNo;
  if (errorNo !== undefined && errorNo !== "" && !Number.isNaN(Number(errorNo))) return Number(errorNo);
  const match = /AADSTS(\d+)/.exec(error.errorMessage ?? error.message);
  return match ? Number(match[1]) : undefined;
}
