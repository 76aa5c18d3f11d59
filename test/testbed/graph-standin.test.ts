/**
 * The Graph stand-in at the wire (real HTTPS, tokens from the real identity stand-in): what it
 * refuses as Graph does (audience, scp, Full Access, MailboxConcurrency), and the delta, $value
 * and action semantics the Graph source relies on.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCertificates } from "../../tools/testbed/certs.js";
import { startGraphStandIn, type GraphStandIn } from "../../tools/testbed/graph-standin.js";
import { startIdentityStandIn, type IdentityStandIn } from "../../tools/testbed/identity-standin.js";
import { postForm } from "./raw-https.js";

const CLIENT_ID = "9f4c0e1a-0000-4000-8000-000000000002";
const ALICE = "alice@contoso.example";
const SHARED = "support@contoso.example";
const PASSWORD = "correct horse battery staple";
const GRAPH = "https://graph.microsoft.com";

let dir: string;
let ca: string;
let identity: IdentityStandIn;
let graph: GraphStandIn;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "mailfetchd-graph-test-"));
  const certs = await createTestCertificates(dir);
  ca = await readFile(certs.caFile, "utf8");
  identity = await startIdentityStandIn({ certFile: certs.certFile, keyFile: certs.keyFile });
  identity.addUser({ username: ALICE, password: PASSWORD });
  graph = await startGraphStandIn({ certFile: certs.certFile, keyFile: certs.keyFile, tokens: (token) => identity.accessTokenInfo(token) });
  graph.addMailbox(ALICE);
  graph.addMailbox(SHARED, { fullAccess: [ALICE] });
});

afterAll(async () => {
  await Promise.allSettled([graph?.close(), identity?.close()]);
  await rm(dir, { recursive: true, force: true });
});

async function tokenFor(scope: string): Promise<string> {
  const answer = await postForm(
    `${identity.authority}/oauth2/v2.0/token`,
    { grant_type: "password", client_id: CLIENT_ID, username: ALICE, password: PASSWORD, scope },
    { ca },
  );
  expect(answer.status).toBe(200);
  return String(answer.body.access_token);
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  readonly json: Record<string, any>;
}

function call(method: string, url: string, token: string, options: { body?: unknown; prefer?: string } = {}): Promise<Answer> {
  const full = url.startsWith("https:") ? url : `${graph.origin}${url}`;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { Authorization: `Bearer ${token}`, Prefer: options.prefer ?? 'IdType="ImmutableId"' };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const outgoing = request(full, { method, headers, ca }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", reject);
      response.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: Record<string, any> = {};
        try {
          json = JSON.parse(text) as Record<string, any>;
        } catch {
          // $value and 204 answers are not JSON
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text, json });
      });
    });
    outgoing.on("error", reject);
    outgoing.end(options.body === undefined ? undefined : JSON.stringify(options.body));
  });
}

const mime = (n: number) =>
  Buffer.from(`From: a@example.test\r\nTo: ${ALICE}\r\nSubject: message ${n}\r\nMessage-ID: <m${n}@example.test>\r\n\r\nbody ${n}\r\n`);
const deltaPath = (mailbox: string, folder = "inbox") =>
  `/v1.0/users/${mailbox}/mailFolders/${folder}/messages/delta?changeType=created&$select=id&$expand=singleValueExtendedProperties($filter=id eq 'Long 0x0E08')`;

/** Follows nextLinks to the deltaLink; returns the items and the deltaLink. */
async function round(token: string, first: string, pageSize = 2): Promise<{ items: Array<Record<string, any>>; deltaLink: string; pages: number }> {
  const items: Array<Record<string, any>> = [];
  let url = first;
  for (let pages = 1; ; pages++) {
    const answer = await call("GET", url, token, { prefer: `IdType="ImmutableId", odata.maxpagesize=${pageSize}` });
    expect(answer.status).toBe(200);
    items.push(...(answer.json.value as Array<Record<string, any>>));
    if (answer.json["@odata.deltaLink"]) return { items, deltaLink: answer.json["@odata.deltaLink"] as string, pages };
    url = answer.json["@odata.nextLink"] as string;
  }
}

describe("Graph stand-in: who may do what", () => {
  it("refuses a token for another API (IMAP's) with 401 Invalid audience, and one it never issued", async () => {
    const imapToken = await tokenFor("https://outlook.office.com/IMAP.AccessAsUser.All offline_access");
    const refused = await call("GET", `/v1.0/me/mailFolders/inbox`, imapToken);
    expect(refused.status).toBe(401);
    expect(refused.json.error).toMatchObject({ code: "InvalidAuthenticationToken", message: expect.stringContaining("Invalid audience") });
    expect((await call("GET", `/v1.0/me/mailFolders/inbox`, "eyJ.not.issued")).status).toBe(401);
  });

  it("issues Graph tokens as JWTs with aud and scp, and checks scp: Mail.ReadWrite for the own mailbox, .Shared plus Full Access for another", async () => {
    const own = await tokenFor(`${GRAPH}/Mail.ReadWrite offline_access`);
    const claims = JSON.parse(Buffer.from(own.split(".")[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
    expect(claims).toMatchObject({ aud: GRAPH, scp: "Mail.ReadWrite", upn: ALICE });
    expect((await call("GET", `/v1.0/me/mailFolders/inbox`, own)).status).toBe(200);
    expect((await call("GET", `/v1.0/users/${ALICE}/mailFolders/inbox`, own)).status).toBe(200);
    const denied = await call("GET", `/v1.0/users/${SHARED}/mailFolders/inbox`, own);
    expect(denied.status).toBe(403);
    expect(denied.json.error.code).toBe("ErrorAccessDenied");
    const shared = await tokenFor(`${GRAPH}/Mail.ReadWrite ${GRAPH}/Mail.ReadWrite.Shared offline_access`);
    expect((await call("GET", `/v1.0/users/${SHARED}/mailFolders/inbox`, shared)).status).toBe(200);
    const userRead = await tokenFor("User.Read");
    expect((await call("GET", `/v1.0/me/mailFolders/inbox`, userRead)).status).toBe(403);
  });

  it("answers 404 MailboxNotEnabledForRESTAPI for a mailbox off for REST, ErrorItemNotFound for a missing folder", async () => {
    const token = await tokenFor(`${GRAPH}/Mail.ReadWrite`);
    expect((await call("GET", `/v1.0/me/mailFolders/nosuchfolder`, token)).json.error.code).toBe("ErrorItemNotFound");
    graph.setRestDisabled(ALICE, true);
    try {
      const answer = await call("GET", `/v1.0/me/mailFolders/inbox`, token);
      expect(answer.status).toBe(404);
      expect(answer.json.error.code).toBe("MailboxNotEnabledForRESTAPI");
    } finally {
      graph.setRestDisabled(ALICE, false);
    }
  });

  it("answers 429 MailboxConcurrency above 4 requests in flight for one mailbox, and queued 429s with and without Retry-After", async () => {
    const token = await tokenFor(`${GRAPH}/Mail.ReadWrite`);
    graph.setResponseDelay(150);
    try {
      const answers = await Promise.all(Array.from({ length: 6 }, () => call("GET", `/v1.0/me/mailFolders/inbox`, token)));
      expect(answers.filter((a) => a.status === 429)).toHaveLength(2);
      expect(answers.find((a) => a.status === 429)!.json.error.message).toContain("MailboxConcurrency");
      expect(graph.peakInFlight(ALICE)).toBeGreaterThan(4);
    } finally {
      graph.setResponseDelay(0);
    }
    graph.throttleNext(1, { retryAfterSeconds: 7 });
    graph.throttleNext(1);
    const withHint = await call("GET", `/v1.0/me/mailFolders/inbox`, token);
    const without = await call("GET", `/v1.0/me/mailFolders/inbox`, token);
    expect([withHint.status, withHint.headers["retry-after"]]).toEqual([429, "7"]);
    expect([without.status, without.headers["retry-after"]]).toEqual([429, undefined]);
  });
});

describe("Graph stand-in: delta, $value and actions", () => {
  const box = "delta@contoso.example";

  it("pages delta by odata.maxpagesize to a deltaLink, with sizes and immutable ids; the next round has only what is new", async () => {
    identity.addUser({ username: box, password: PASSWORD });
    graph.addMailbox(box);
    const token = String(
      (
        await postForm(
          `${identity.authority}/oauth2/v2.0/token`,
          { grant_type: "password", client_id: CLIENT_ID, username: box, password: PASSWORD, scope: `${GRAPH}/Mail.ReadWrite` },
          { ca },
        )
      ).body.access_token,
    );
    const ids = [1, 2, 3, 4, 5].map((n) => graph.putMessage(box, "Inbox", mime(n)));
    const first = await round(token, deltaPath(box));
    expect(first.pages).toBe(3);
    expect(first.items.map((i) => i.id)).toEqual(ids);
    expect(first.items[0]!.singleValueExtendedProperties).toEqual([{ id: "Long 0xe08", value: String(mime(1).length) }]);

    const value = await call("GET", `/v1.0/users/${box}/messages/${ids[0]}/$value`, token);
    expect(value.text).toBe(mime(1).toString());

    const sixth = graph.putMessage(box, "inbox", mime(6));
    const late = graph.putMessage(box, "inbox", mime(7), { late: true });
    const second = await round(token, first.deltaLink);
    expect(second.items.map((i) => i.id)).toEqual([sixth]);
    const third = await round(token, second.deltaLink);
    expect(third.items.map((i) => i.id)).toEqual([late]);

    graph.replayInNextDelta(2);
    const replayed = await round(token, third.deltaLink);
    expect(replayed.items.map((i) => i.id)).toEqual([sixth, late]);

    // Without Prefer IdType="ImmutableId", ids change when the message moves.
    const plain = await call("GET", deltaPath(box), token, { prefer: "odata.maxpagesize=50" });
    expect(plain.json.value[0].id).not.toBe(ids[0]);

    // Actions: isRead, move (by well-known name), delete (to Deleted Items).
    expect((await call("PATCH", `/v1.0/users/${box}/messages/${ids[0]}`, token, { body: { isRead: true } })).status).toBe(200);
    expect((await call("POST", `/v1.0/users/${box}/messages/${ids[1]}/move`, token, { body: { destinationId: "archive" } })).status).toBe(201);
    expect((await call("DELETE", `/v1.0/users/${box}/messages/${ids[2]}`, token)).status).toBe(204);
    expect(graph.actions.filter((a) => a.mailbox === box).map((a) => [a.action, a.id, a.to])).toEqual([
      ["read", ids[0], undefined],
      ["move", ids[1], "Archive"],
      ["delete", ids[2], undefined],
    ]);
    expect(graph.messages(box, "archive").map((m) => m.id)).toEqual([ids[1]]);
    expect(graph.messages(box, "deleteditems").map((m) => m.id)).toEqual([ids[2]]);
    // The immutable id survives the move.
    expect((await call("GET", `/v1.0/users/${box}/messages/${ids[1]}/$value`, token)).status).toBe(200);
  });

  it("resumes a skip token after the last item served, even when served items were moved out meanwhile", async () => {
    const mover = "mover@contoso.example";
    identity.addUser({ username: mover, password: PASSWORD });
    graph.addMailbox(mover);
    const token = String(
      (
        await postForm(
          `${identity.authority}/oauth2/v2.0/token`,
          { grant_type: "password", client_id: CLIENT_ID, username: mover, password: PASSWORD, scope: `${GRAPH}/Mail.ReadWrite` },
          { ca },
        )
      ).body.access_token,
    );
    const ids = [1, 2, 3, 4].map((n) => graph.putMessage(mover, "inbox", mime(n)));
    const first = await call("GET", deltaPath(mover), token, { prefer: 'IdType="ImmutableId", odata.maxpagesize=2' });
    expect(first.json.value.map((i: { id: string }) => i.id)).toEqual(ids.slice(0, 2));
    for (const id of ids.slice(0, 2)) await call("POST", `/v1.0/users/${mover}/messages/${id}/move`, token, { body: { destinationId: "archive" } });
    const second = await call("GET", first.json["@odata.nextLink"] as string, token, { prefer: 'IdType="ImmutableId", odata.maxpagesize=2' });
    expect(second.json.value.map((i: { id: string }) => i.id)).toEqual(ids.slice(2));
  });

  it("expires delta tokens three ways: 410 with a Location, syncStateNotFound, resyncRequired", async () => {
    const token = String(
      (
        await postForm(
          `${identity.authority}/oauth2/v2.0/token`,
          { grant_type: "password", client_id: CLIENT_ID, username: box, password: PASSWORD, scope: `${GRAPH}/Mail.ReadWrite` },
          { ca },
        )
      ).body.access_token,
    );
    for (const how of ["gone", "syncStateNotFound", "resyncRequired"] as const) {
      const { deltaLink } = await round(token, deltaPath(box), 50);
      graph.expireDeltaTokens(how);
      const answer = await call("GET", deltaLink, token);
      if (how === "gone") {
        expect(answer.status).toBe(410);
        expect(answer.headers.location).toContain("/messages/delta");
      } else {
        expect(answer.status).toBe(400);
        expect(answer.json.error.code).toBe(how);
      }
    }
  });

  it("makes $value of big messages fail (504, broken transfer) or slow, as configured", async () => {
    const token = String(
      (
        await postForm(
          `${identity.authority}/oauth2/v2.0/token`,
          { grant_type: "password", client_id: CLIENT_ID, username: box, password: PASSWORD, scope: `${GRAPH}/Mail.ReadWrite` },
          { ca },
        )
      ).body.access_token,
    );
    const big = graph.putMessage(box, "inbox", Buffer.concat([mime(8), Buffer.alloc(300_000, "x")]));
    graph.setValueBehaviour({ above: 100_000, fail: "504", times: 1 });
    expect((await call("GET", `/v1.0/users/${box}/messages/${big}/$value`, token)).status).toBe(504);
    expect((await call("GET", `/v1.0/users/${box}/messages/${big}/$value`, token)).status).toBe(200);
    graph.setValueBehaviour({ above: 100_000, fail: "broken", times: 1 });
    await expect(call("GET", `/v1.0/users/${box}/messages/${big}/$value`, token)).rejects.toThrow();
    graph.setValueBehaviour({ above: 100_000, bytesPerSecond: 1_000_000 });
    const started = Date.now();
    expect((await call("GET", `/v1.0/users/${box}/messages/${big}/$value`, token)).text.length).toBeGreaterThan(300_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    graph.setValueBehaviour(undefined);
  });
});
