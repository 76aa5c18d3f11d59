/**
 * The environment a command handler's program runs with: a few variables a program needs to
 * run at all, the handler's configured `env`, and the message's metadata. Never the daemon's
 * own environment: it may hold credentials (a CI token, a cloud key, a password variable)
 * that a per-message program has no business seeing.
 */
import type { DeliverableMessage } from "../interfaces.js";
import { boundMetadata, METADATA_VALUE_MAX_BYTES } from "./metadata-bounds.js";
import { looksLikeCredential } from "../config/handler-rules.js";
import { oneLine } from "./printable.js";

/** Inherited from the daemon when set: what programs need to find binaries, text encoding, time zone, a home and temp dir. */
export const INHERITED_VARIABLES = ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "USER", "LOGNAME", "TMPDIR"] as const;
const DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin";

export const METADATA_PREFIX = "MAILFETCHD_";

export function commandEnvironment(
  inherited: NodeJS.ProcessEnv,
  message: DeliverableMessage,
  context: { readonly attempt: number; readonly documentPath: string },
  configured: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const env: Record<string, string> = { PATH: DEFAULT_PATH };
  for (const name of INHERITED_VARIABLES) {
    const value = inherited[name];
    if (value !== undefined) env[name] = value;
  }
  Object.assign(env, configured);
  const from = message.parsed.from[0]?.address ?? "";
  // Values above METADATA_VALUE_MAX_BYTES are left out (named in MAILFETCHD_OMITTED): the
  // message document has them whole.
  const { kept, omitted } = boundMetadata({
    MAILFETCHD_MESSAGE_ID: senderText(message.parsed.messageId),
    MAILFETCHD_SUBJECT: senderText(message.parsed.subject),
    MAILFETCHD_FROM: senderText(from),
    MAILFETCHD_SOURCE: message.source.kind,
    MAILFETCHD_FOLDER: senderText(message.source.folder),
    MAILFETCHD_ITEM: senderText(message.source.item),
    MAILFETCHD_QUEUE_ADDRESS: message.queue.address,
  });
  Object.assign(env, {
    MAILFETCHD_ID: message.id,
    MAILFETCHD_QUEUE: message.queue.name,
    ...kept,
    // IMAP queues keep the variables they had before sources were made neutral.
    ...(message.source.uid === undefined ? {} : { MAILFETCHD_UID: String(message.source.uid) }),
    ...(message.source.uidValidity === undefined ? {} : { MAILFETCHD_UIDVALIDITY: message.source.uidValidity }),
    MAILFETCHD_SIZE: String(message.raw.size),
    MAILFETCHD_ATTEMPT: String(context.attempt),
    MAILFETCHD_DOCUMENT: context.documentPath,
  });
  if (omitted.length > 0) env.MAILFETCHD_OMITTED = omitted.join(" ");
  return env;
}

/**
 * One line, no control characters (a NUL would make spawn throw; a newline fools line-based
 * scripts). Cut just above the bound, so a huge subject costs nothing and is still left out.
 */
function senderText(text: string | undefined): string {
  return text === undefined ? "" : oneLine(text, METADATA_VALUE_MAX_BYTES + 1);
}

/**
 * Names of the daemon's own environment variables that look like credentials (CRM_API_TOKEN,
 * DB_PASSWORD...). mailfetchd never reads a secret from its environment, and never passes it
 * on, but a command handler's program running as the daemon's user can read the environment
 * the daemon was started with in /proc/<pid>/environ (removing a variable later does not
 * change that). Names of places (…_FILE, …_DIRECTORY, …_PATH, …_SOCK) are not secrets themselves.
 */
export function credentialLikeVariables(env: NodeJS.ProcessEnv): string[] {
  return Object.keys(env)
    .filter((name) => looksLikeCredential(name) && !/_(FILE|DIR|DIRECTORY|PATH|SOCK|SOCKET)$/i.test(name))
    .sort();
}
