/**
 * Error answers of the Microsoft identity platform (Entra ID v2 token endpoint), as the
 * identity stand-in gives them.
 *
 * The shape is Microsoft's: `{error, error_description: "AADSTS<code>: <text>\r\nTrace ID: ..
 * \r\nCorrelation ID: ..\r\nTimestamp: ..", error_codes: [code], timestamp, trace_id,
 * correlation_id, error_uri, suberror?}`. What a client acts on is `error` and `suberror`
 * (MSAL turns interaction_required/consent_required/bad_token/basic_action/... into an
 * InteractionRequiredAuthError, everything else into a ServerError) and the code second.
 *
 * Sources: entra-docs reference-error-codes.md for meanings; bodies seen in public issue
 * trackers for `error`/`suberror` (e.g. 50076 -> invalid_grant + basic_action, azure-docs
 * graph#6306; 70043 -> invalid_grant + token_expired, vscode-mssql#22364; 700082 -> suberror
 * bad_token, foundry-dev-tools#707). Rows marked "unverified" are our best reading of the docs.
 */
import { randomUUID } from "node:crypto";

export interface AadstsAnswer {
  readonly status: number;
  readonly error: string;
  readonly suberror?: string;
  /** The text after "AADSTS<code>: ". Placeholders: {client}, {tenant}, {date}, {param}. */
  readonly text: string;
}

const EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"; // Office 365 Exchange Online

export const AADSTS_ANSWERS: Readonly<Record<number, AadstsAnswer>> = {
  // Sign-in (password grant)
  50126: grant("Error validating credentials due to invalid username or password."),
  50034: grant(
    "The user account {EmailHidden} does not exist in the '{tenant}' directory. To sign into this application, the account must be added to the directory.",
  ),
  50057: grant("The user account is disabled."),
  50055: grant("The password is expired.", "user_password_expired"),
  50053: grant("The account is locked, you've tried to sign in too many times with an incorrect user ID or password."),
  50076: grant(
    `Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '${EXCHANGE_APP_ID}'.`,
    "basic_action",
  ),
  50079: grant(
    `Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access '${EXCHANGE_APP_ID}'.`,
    "basic_action",
  ),
  53003: grant("Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.", "message_only"),
  530035: grant(
    "Access has been blocked by security defaults. This is due to the request using legacy auth or being deemed unsafe by security defaults policies.",
    "message_only",
  ), // suberror unverified
  65001: grant(
    "The user or administrator has not consented to use the application with ID '{client}' named 'mailfetchd'. Send an interactive authorization request for this user and resource.",
    "consent_required",
  ),

  // The app registration and the tenant
  700016: {
    status: 400,
    error: "unauthorized_client",
    text: "Application with identifier '{client}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
  },
  90002: {
    status: 400,
    error: "invalid_request",
    text: "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.",
  },
  7000218: { status: 401, error: "invalid_client", text: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'." },
  700025: { status: 401, error: "invalid_client", text: "Client is public so neither 'client_assertion' nor 'client_secret' should be presented." },
  9001023: {
    status: 400,
    error: "invalid_request",
    text: "The grant type is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
  }, // error unverified

  // Refresh tokens
  700082: grant("The refresh token has expired due to inactivity. The token was issued on {date} and was inactive for 90.00:00:00.", "bad_token"),
  50173: grant(
    "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{date}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{date}'.",
  ),
  70043: grant(
    "The refresh token has expired or is invalid due to sign-in frequency checks by conditional access. The token was issued on {date} and the maximum allowed lifetime for this request is 86400.",
    "token_expired",
  ),
  70000: grant("Provided grant is invalid or malformed."),
  70008: grant(
    "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
  ),
  9002313: grant("Invalid request. Request is malformed or invalid."),

  // Client behaviour and capacity
  50196: grant("The server terminated an operation because it encountered a loop while processing a request."),
  90055: { status: 429, error: "temporarily_unavailable", text: "There are too many incoming requests. This exception is thrown for blocked tenants." }, // status and error unverified
  28000: {
    status: 400,
    error: "invalid_scope",
    text: "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope {param} is not valid.",
  }, // error unverified
  700022: {
    status: 400,
    error: "invalid_scope",
    text: "The provided value for the input parameter scope is not valid because it contains more than one resource. Scope {param} is not valid.",
  }, // error unverified
  70003: { status: 400, error: "unsupported_grant_type", text: "The app requested an unsupported grant type '{param}'." },
  900144: { status: 400, error: "invalid_request", text: "The request body must contain the following parameter: '{param}'." },
  90014: {
    status: 400,
    error: "invalid_request",
    text: "The required field '{param}' is missing from the credential. Ensure that you have all the necessary parameters for the login request.",
  },

  // Device code polling (`error` values from v2-oauth2-device-code.md; the codes are unverified)
  70016: { status: 400, error: "authorization_pending", text: "OAuth 2.0 device flow error. Authorization is pending. Continue polling." },
  65004: { status: 400, error: "authorization_declined", text: "User declined to consent to access the app." },
  70019: { status: 400, error: "expired_token", text: "Verification code expired." },
  70018: { status: 400, error: "bad_verification_code", text: "Invalid verification code due to User typing in wrong user code for device code flow." },

  // Failures of Microsoft's own service
  50000: { status: 500, error: "server_error", text: "There was an error issuing a token or an issue with our sign-in service." },
  90006: { status: 503, error: "temporarily_unavailable", text: "The service is temporarily unavailable." },
};

function grant(text: string, suberror?: string): AadstsAnswer {
  return suberror === undefined ? { status: 400, error: "invalid_grant", text } : { status: 400, error: "invalid_grant", suberror, text };
}

export interface AadstsContext {
  readonly clientId?: string;
  readonly tenant?: string;
  /** The parameter or scope an error names ({param}). */
  readonly param?: string;
  /** The client's correlation id (MSAL sends `client-request-id`); Microsoft echoes it. */
  readonly correlationId?: string;
}

export interface AadstsErrorResponse {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly traceId: string;
  readonly correlationId: string;
}

export function isKnownAadsts(code: number): boolean {
  return Object.hasOwn(AADSTS_ANSWERS, code);
}

export function aadstsError(code: number, context: AadstsContext = {}): AadstsErrorResponse {
  const answer = AADSTS_ANSWERS[code];
  if (!answer) throw new Error(`the identity stand-in has no answer for AADSTS${code}; add it to AADSTS_ANSWERS`);
  const traceId = randomUUID();
  const correlationId = context.correlationId ?? randomUUID();
  const timestamp = microsoftTimestamp(new Date());
  const text = answer.text
    .replaceAll("{client}", context.clientId ?? "")
    .replaceAll("{tenant}", context.tenant ?? "")
    .replaceAll("{param}", context.param ?? "")
    .replaceAll("{date}", new Date(Date.now() - 86_400_000).toISOString().replace("Z", "0000Z"));
  const body: Record<string, unknown> = {
    error: answer.error,
    error_description: `AADSTS${code}: ${text}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
    error_codes: [code],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `https://login.microsoftonline.com/error?code=${code}`,
  };
  if (answer.suberror !== undefined) body.suberror = answer.suberror;
  return { status: answer.status, body, traceId, correlationId };
}

/** "2024-05-01 10:00:00Z", the format Microsoft uses in error bodies. */
function microsoftTimestamp(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace("T", " ")}Z`;
}
