/**
 * For `check`: which mail sources the app registration's consented permissions allow, read
 * from the `scp` of a `<resource>/.default` token per resource (the whole consented set), and
 * what to add for the other source. The judgement is pure; reading the grants asks the identity
 * platform with the queue's stored sign-in (or its password), as the daemon does.
 */
import type { QueueConfig } from "../config/schema.js";
import type { Logger } from "../interfaces.js";
import type { ConcurrencyLimiter } from "../tokens/identity-http-client.js";
import { MsalTokenProvider } from "../tokens/msal-token-provider.js";
import type { TokenCacheStore } from "../tokens/token-cache-store.js";
import { readJwtClaims } from "./token-audience.js";

/** Permissions granted per resource, as `scp` lists them; undefined when none could be read. */
export interface GrantedPermissions {
  readonly exchange?: readonly string[];
  readonly graph?: readonly string[];
}

export interface SourcesJudgement {
  readonly ok: boolean;
  readonly detail: string;
  readonly fix?: string;
}

const STEP_10 = "admin guide section 2.2 step 10 (API permissions > Add a permission), then grant admin consent (step 10.5)";
const ADD_IMAP = `add the delegated permission IMAP.AccessAsUser.All of Office 365 Exchange Online (APIs my organization uses): ${STEP_10}`;
const addGraph = (shared: boolean) =>
  `add the delegated Microsoft Graph permission ${shared ? "Mail.ReadWrite.Shared (the queue mailbox is not the sign-in user's own)" : "Mail.ReadWrite"}: ${STEP_10} (the guide's step 10.3 lists it as "Mail.Mail.ReadWrite", a typo)`;

export function judgeSources(queue: Pick<QueueConfig, "source" | "address" | "signIn">, granted: GrantedPermissions): SourcesJudgement {
  const shared = queue.address !== queue.signIn.user;
  const has = (list: readonly string[] | undefined, permission: string) => (list ?? []).some((p) => p.toLowerCase() === permission.toLowerCase());
  const imap = has(granted.exchange, "IMAP.AccessAsUser.All");
  const graph = has(granted.graph, shared ? "Mail.ReadWrite.Shared" : "Mail.ReadWrite");
  const list = (permissions: readonly string[] | undefined) => (permissions === undefined ? "none" : permissions.join(" ") || "none");
  const detail = `this app registration allows source: imap ${imap ? "yes" : "no"}, source: graph ${graph ? "yes" : "no"} (Exchange Online: ${list(granted.exchange)}; Microsoft Graph: ${list(granted.graph)})`;
  if (queue.source === "imap") {
    if (imap) return { ok: true, detail, fix: graph ? undefined : `To use source: graph instead, ${addGraph(shared)}.` };
    return { ok: false, detail, fix: graph ? `Use source: graph or ${ADD_IMAP}.` : `${ADD_IMAP[0]!.toUpperCase()}${ADD_IMAP.slice(1)}.` };
  }
  if (graph) return { ok: true, detail, fix: imap ? undefined : `To use source: imap instead, ${ADD_IMAP}.` };
  const addIt = addGraph(shared);
  return { ok: false, detail, fix: imap ? `Use source: imap or ${addIt}.` : `${addIt[0]!.toUpperCase()}${addIt.slice(1)}.` };
}

/** Asks for a `.default` token of each resource; a resource without any consent reads as []. */
export async function readGrantedPermissions(options: {
  queue: QueueConfig;
  store: TokenCacheStore;
  limiter: ConcurrencyLimiter;
  logger: Logger;
}): Promise<GrantedPermissions> {
  const read = async (resource: string): Promise<string[] | undefined> => {
    const queue = { ...options.queue, identity: { ...options.queue.identity, scopes: [`${resource}/.default`, "offline_access"] } };
    try {
      const { result } = await new MsalTokenProvider({ ...options, queue }).acquireToken();
      const claims = readJwtClaims(result.accessToken);
      // An opaque token: the scopes the identity platform said it granted.
      const scp = typeof claims?.scp === "string" ? claims.scp.split(" ") : result.scopes.map((s) => s.replace(/^https:\/\/[^/]+\//, ""));
      return scp.filter((s) => s.length > 0 && s !== ".default");
    } catch {
      // Typically AADSTS65001: nothing of this resource is consented.
      return [];
    }
  };
  return { exchange: await read("https://outlook.office.com"), graph: await read("https://graph.microsoft.com") };
}
