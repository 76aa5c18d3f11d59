/**
 * Maps what the Microsoft identity platform (through MSAL) answers to mailfetchd's error codes,
 * retry decision and the operator's fix. Classify by AADSTS code first (the most specific),
 * then by OAuth error/suberror. Table: shared notes microsoft-identity.md; admin guide steps:
 * "Microsoft 365 Mail Configuration (OAuth User)", section 2.2 (app) and 3 (mailbox).
 */
import { AuthError } from "@azure/msal-node";
import { MailfetchdError, type ErrorCode } from "../errors.js";
import type { QueueState } from "../state/queue-status-store.js";
import { IDENTITY_THROTTLED, IDENTITY_UNAVAILABLE, IdentityTransportError } from "./identity-http-client.js";

interface Rule {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly what: string;
  readonly fix: string;
}

const SIGN_IN_AGAIN =
  "Sign the queue in again: with signIn.passwordFile set mailfetchd does so itself once the password works; otherwise run `mailfetchd login <queue>`.";

const BY_AADSTS: Readonly<Record<number, Rule>> = {
  50126: { code: "IDENTITY_BAD_PASSWORD", retryable: false, what: "the user name or password was refused (AADSTS50126)", fix: "Put the mailbox user's current password in the file named by signIn.passwordFile. Federated (AD FS) users cannot sign in with a password: use `mailfetchd login` (device code)." },
  50034: { code: "IDENTITY_USER_NOT_FOUND", retryable: false, what: "the sign-in user does not exist in this tenant (AADSTS50034)", fix: "Check signIn.user (default: the queue address; admin guide section 3 step 5) and identity.tenantId (section 2.2 step 8)." },
  50057: { code: "IDENTITY_ACCOUNT_DISABLED", retryable: false, what: "the sign-in account is disabled (AADSTS50057)", fix: "A shared mailbox's own account stays disabled: set signIn.user to a user with Full Access to the mailbox, or enable the account in the Microsoft 365 admin center (admin guide section 3)." },
  50055: { code: "IDENTITY_PASSWORD_EXPIRED", retryable: false, what: "the sign-in user's password has expired (AADSTS50055)", fix: "Set a new password for the user and put it in signIn.passwordFile; an existing refresh token keeps working meanwhile." },
  50053: { code: "IDENTITY_ACCOUNT_LOCKED", retryable: false, what: "the account is locked after too many bad passwords (AADSTS50053)", fix: "Wait for the lock to expire, fix signIn.passwordFile, and check nothing else uses a wrong password for this user." },
  50076: { code: "IDENTITY_MFA_REQUIRED", retryable: false, what: "multi-factor authentication is required (AADSTS50076)", fix: "Password sign-in cannot do MFA: run `mailfetchd login <queue>` (device code) once, or exclude the account from MFA." },
  50079: { code: "IDENTITY_MFA_REQUIRED", retryable: false, what: "the user must register for multi-factor authentication (AADSTS50079)", fix: "Run `mailfetchd login <queue>` (device code) once, or exclude the account from MFA registration." },
  53003: { code: "IDENTITY_CONDITIONAL_ACCESS", retryable: false, what: "sign-in is blocked by a Conditional Access policy (AADSTS53003)", fix: "Ask the tenant admin to allow this app and user in Conditional Access." },
  530035: { code: "IDENTITY_CONDITIONAL_ACCESS", retryable: false, what: "sign-in is blocked by security defaults (AADSTS530035)", fix: "Ask the tenant admin to allow this sign-in (security defaults / Conditional Access), or use `mailfetchd login <queue>`." },
  65001: { code: "IDENTITY_NO_CONSENT", retryable: false, what: "admin consent for the app's permissions is missing (AADSTS65001)", fix: "Grant admin consent (admin guide section 2.2 step 10.5), for the delegated permission IMAP.AccessAsUser.All of Office 365 Exchange Online." },
  700016: { code: "IDENTITY_APP_NOT_FOUND", retryable: false, what: "the app registration is not found in this tenant (AADSTS700016)", fix: "Check identity.clientId (admin guide section 2.2 step 7) and identity.tenantId (step 8)." },
  90002: { code: "IDENTITY_TENANT_NOT_FOUND", retryable: false, what: "the tenant is not found (AADSTS90002)", fix: "Check identity.tenantId: the Directory (tenant) ID of admin guide section 2.2 step 8." },
  7000218: { code: "IDENTITY_NOT_PUBLIC_CLIENT", retryable: false, what: "the app is not a public client, so password and device-code sign-in are refused (AADSTS7000218)", fix: "Set 'Treat application as a public client' to Yes (admin guide section 2.2 step 9) and save." },
  700025: { code: "IDENTITY_SECRET_SENT", retryable: false, what: "a client secret was sent for a public client (AADSTS700025)", fix: "Remove the client secret from the request: mailfetchd uses a public client and needs none." },
  700082: { code: "IDENTITY_SIGN_IN_EXPIRED", retryable: false, what: "the refresh token expired after 90 days unused (AADSTS700082)", fix: SIGN_IN_AGAIN },
  50173: { code: "IDENTITY_SIGN_IN_EXPIRED", retryable: false, what: "the sign-in was revoked, e.g. by a password change or an admin (AADSTS50173)", fix: SIGN_IN_AGAIN },
  70043: { code: "IDENTITY_SIGN_IN_EXPIRED", retryable: false, what: "the refresh token expired or a sign-in frequency policy applies (AADSTS70043)", fix: SIGN_IN_AGAIN },
  70000: { code: "IDENTITY_SIGN_IN_EXPIRED", retryable: false, what: "the refresh grant is invalid (AADSTS70000)", fix: SIGN_IN_AGAIN },
  70008: { code: "IDENTITY_SIGN_IN_EXPIRED", retryable: false, what: "the refresh grant has expired (AADSTS70008)", fix: SIGN_IN_AGAIN },
  50196: { code: "IDENTITY_THROTTLED", retryable: true, what: "Microsoft saw too many identical requests (AADSTS50196)", fix: "mailfetchd backs off by itself; if this repeats, report it as a bug." },
  90055: { code: "IDENTITY_THROTTLED", retryable: true, what: "the tenant is throttled (AADSTS90055)", fix: "mailfetchd backs off by itself; fewer queues per app registration helps." },
  28000: { code: "IDENTITY_SCOPE_MIXED", retryable: false, what: "the requested scopes span two resources (AADSTS28000)", fix: "Request only Exchange scopes: identity.scopes = [https://outlook.office.com/IMAP.AccessAsUser.All, offline_access]." },
  700022: { code: "IDENTITY_SCOPE_MIXED", retryable: false, what: "the requested scopes span two resources (AADSTS700022)", fix: "Request only Exchange scopes: identity.scopes = [https://outlook.office.com/IMAP.AccessAsUser.All, offline_access]." },
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
      return "needs-admin";
    case "IDENTITY_USER_NOT_FOUND":
    case "IDENTITY_APP_NOT_FOUND":
    case "IDENTITY_TENANT_NOT_FOUND":
    case "IDENTITY_SECRET_SENT":
    case "IDENTITY_SCOPE_MIXED":
    case "IMAP_AUTH_REJECTED":
    case "IMAP_FOLDER_NOT_FOUND":
    case "CONFIG_INVALID":
    case "CONFIG_NOT_FOUND":
    case "SECRET_UNREADABLE":
      return "misconfigured";
    default:
      return "retrying";
  }
}

/** Whether a fresh password sign-in may cure this failure of a silent (refresh) request. */
export function passwordSignInMayHelp(error: MailfetchdError): boolean {
  return error.code === "IDENTITY_SIGN_IN_EXPIRED" || error.code === "IDENTITY_NEEDS_SIGN_IN";
}

export function classifyIdentityError(error: unknown, queue: string): MailfetchdError {
  if (error instanceof MailfetchdError) return error;
  if (error instanceof IdentityTransportError || (error instanceof AuthError && (error.errorCode === IDENTITY_UNAVAILABLE || error.errorCode === IDENTITY_THROTTLED))) {
    const throttled = error.errorCode === IDENTITY_THROTTLED;
    return new MailfetchdError(`Queue ${queue}: ${throttled ? "the identity endpoint is throttling requests" : error.errorMessage}.`, {
      code: throttled ? "IDENTITY_THROTTLED" : "IDENTITY_UNAVAILABLE",
      retryable: true,
      fix: throttled ? "None needed: mailfetchd waits as asked and retries." : "mailfetchd retries with backoff. If it lasts, check the network path to the authority (proxy, firewall, identity.caFile).",
      retryAfterMs: error instanceof IdentityTransportError ? error.retryAfterMs : undefined,
      cause: error,
    });
  }
  if (error instanceof AuthError) {
    const aadsts = aadstsOf(error);
    const rule = aadsts !== undefined ? BY_AADSTS[aadsts] : undefined;
    if (rule) {
      return new MailfetchdError(`Queue ${queue}: ${rule.what}.`, { code: rule.code, retryable: rule.retryable, fix: rule.fix, cause: error });
    }
    const oauthError = error.errorCode;
    if (oauthError === "invalid_grant" || oauthError === "interaction_required" || oauthError === "no_tokens_found" || error.subError === "consent_required") {
      return new MailfetchdError(`Queue ${queue}: the stored sign-in is no longer valid (${oauthError}${aadsts ? `, AADSTS${aadsts}` : ""}).`, {
        code: error.subError === "consent_required" ? "IDENTITY_NO_CONSENT" : "IDENTITY_SIGN_IN_EXPIRED",
        retryable: false,
        fix: error.subError === "consent_required" ? BY_AADSTS[65001]!.fix : SIGN_IN_AGAIN,
        cause: error,
      });
    }
    if (oauthError === "temporarily_unavailable" || oauthError === "network_error" || oauthError === "request_timeout" || oauthError === "endpoints_resolution_error") {
      return new MailfetchdError(`Queue ${queue}: the identity endpoint is unavailable (${oauthError}).`, {
        code: "IDENTITY_UNAVAILABLE",
        retryable: true,
        fix: "mailfetchd retries with backoff. If it lasts, check the network path to the authority (proxy, firewall, identity.caFile).",
        cause: error,
      });
    }
    return new MailfetchdError(`Queue ${queue}: the identity platform refused the request (${oauthError}${aadsts ? `, AADSTS${aadsts}` : ""}).`, {
      code: "IDENTITY_ERROR",
      retryable: true,
      fix: "mailfetchd retries with backoff; if it lasts, run `mailfetchd check` and compare with the admin guide section 2.2.",
      cause: error,
    });
  }
  return new MailfetchdError(`Queue ${queue}: token request failed: ${error instanceof Error ? error.message : String(error)}.`, {
    code: "IDENTITY_ERROR",
    retryable: true,
    cause: error,
  });
}

function aadstsOf(error: AuthError): number | undefined {
  const errorNo = (error as AuthError & { errorNo?: string | number }).errorNo;
  if (errorNo !== undefined && errorNo !== "" && !Number.isNaN(Number(errorNo))) return Number(errorNo);
  const match = /AADSTS(\d+)/.exec(error.errorMessage ?? error.message);
  return match ? Number(match[1]) : undefined;
}
