/**
 * Maps what imapflow and the IMAP server report to mailfetchd's codes and the operator's fix.
 * Exchange's answers: shared notes microsoft-identity.md ("IMAP-side errors").
 */
import { MailfetchdError } from "../errors.js";

interface ImapFlowErrorShape {
  code?: string;
  authenticationFailed?: boolean;
  serverResponseCode?: string;
  responseText?: string;
  response?: string;
  throttleReset?: number;
  message?: string;
}

export function classifyImapError(raw: unknown, queue: string, context: { folder: string; host: string }): MailfetchdError {
  if (raw instanceof MailfetchdError) return raw;
  const error = (raw ?? {}) as ImapFlowErrorShape;
  const text = `${error.responseText ?? ""} ${error.response ?? ""} ${error.message ?? ""}`;

  if (/authenticated but not connected/i.test(text)) {
    return new MailfetchdError(`Queue ${queue}: Exchange accepted the sign-in but will not open the mailbox ("User is authenticated but not connected").`, {
      code: "IMAP_NOT_CONNECTED",
      retryable: true,
      fix: "The sign-in user needs Full Access to the queue mailbox (shared mailboxes), or Exchange is briefly blocking after many reconnects; mailfetchd retries with backoff.",
      cause: raw,
    });
  }
  if (error.authenticationFailed && error.serverResponseCode === "UNAVAILABLE") {
    return new MailfetchdError(`Queue ${queue}: the IMAP server could not check the token right now (temporary authentication failure).`, {
      code: "IMAP_AUTH_UNAVAILABLE",
      retryable: true,
      fix: "None needed: mailfetchd retries with backoff.",
      cause: raw,
    });
  }
  if (error.authenticationFailed) {
    return new MailfetchdError(`Queue ${queue}: ${context.host} rejected the access token (AUTHENTICATE failed).`, {
      code: "IMAP_AUTH_REJECTED",
      retryable: false,
      fix: "Check that identity.scopes is https://outlook.office.com/IMAP.AccessAsUser.All (not a Graph scope), that the app has the delegated permission IMAP.AccessAsUser.All of Office 365 Exchange Online with admin consent (admin guide section 2.2 step 10: the guide's Graph permissions alone do not allow IMAP), that IMAP is enabled for the mailbox (Microsoft 365 admin center: Mail apps), and that the queue address is right (admin guide section 3).",
      cause: raw,
    });
  }
  if (error.code === "ETHROTTLE") {
    return new MailfetchdError(`Queue ${queue}: Exchange is throttling this mailbox.`, {
      code: "IMAP_THROTTLED",
      retryable: true,
      fix: "None needed: mailfetchd waits the time Exchange suggests. Fewer connections to the mailbox (other clients) help.",
      retryAfterMs: error.throttleReset,
      cause: raw,
    });
  }
  if (error.serverResponseCode === "NONEXISTENT" || /doesn't exist|does not exist|not found|unknown mailbox/i.test(text)) {
    return new MailfetchdError(`Queue ${queue}: the folder '${context.folder}' does not exist in the mailbox.`, {
      code: "IMAP_FOLDER_NOT_FOUND",
      retryable: false,
      fix: "Correct the queue's `folder` (default INBOX); folder names are as IMAP shows them, with '/' between levels.",
      cause: raw,
    });
  }
  return new MailfetchdError(`Queue ${queue}: IMAP ${context.host} failed: ${error.code ?? error.message ?? "unknown error"}.`, {
    code: "IMAP_UNAVAILABLE",
    retryable: true,
    fix: "mailfetchd retries with backoff. If it lasts, check the network path to the IMAP host and imap.host/imap.port.",
    cause: raw,
  });
}
