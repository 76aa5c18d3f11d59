/**
 * Dovecot from the test bed, driven by the real imapflow with tokens from the real
 * msal-node: XOAUTH2 over implicit TLS, validated by the identity stand-in's introspection.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PublicClientApplication } from "@azure/msal-node";
import { ImapFlow } from "imapflow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCertificates } from "../../tools/testbed/certs.js";
import { startDovecot, type Dovecot } from "../../tools/testbed/dovecot.js";
import { startIdentityStandIn, type IdentityStandIn } from "../../tools/testbed/identity-standin.js";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { httpsNetworkClient } from "./https-network-client.js";

const ALICE = "alice@contoso.example";
const ALICE_PASSWORD = "alice's password";
const IMAP_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All";

let dir: string;
let caPem: string;
let standIn: IdentityStandIn;
let dovecot: Dovecot;
let app: PublicClientApplication;
let aliceToken: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "mailfetchd-dovecot-test-"));
  const certs = await createTestCertificates(dir);
  caPem = await readFile(certs.caFile, "utf8");
  standIn = await startIdentityStandIn({ certFile: certs.certFile, keyFile: certs.keyFile });
  standIn.addUser({ username: ALICE, password: ALICE_PASSWORD });
  dovecot = await startDovecot({ introspectionUrl: standIn.introspectionUrl, certFile: certs.certFile, keyFile: certs.keyFile });
  app = new PublicClientApplication({
    auth: { clientId: "9f4c0e1a-0000-4000-8000-000000000002", authority: standIn.authority, knownAuthorities: [new URL(standIn.origin).host] },
    system: { networkClient: httpsNetworkClient(caPem) },
  });
  aliceToken = await tokenFor([IMAP_SCOPE]);
});

afterAll(async () => {
  await dovecot?.close();
  await standIn?.close();
  await rm(dir, { recursive: true, force: true });
});

async function tokenFor(scopes: string[]): Promise<string> {
  const result = await app.acquireTokenByUsernamePassword({ scopes, username: ALICE, password: ALICE_PASSWORD });
  if (!result) throw new Error("msal-node returned no result");
  return result.accessToken;
}

function imapClient(user: string, accessToken: string): ImapFlow {
  const client = new ImapFlow({ host: dovecot.host, port: dovecot.port, secure: true, tls: { ca: [caPem] }, auth: { user, accessToken }, logger: false });
  client.on("error", () => undefined); // socket errors after a server kill; the tests assert on promises
  return client;
}

/** The error imapflow rejects connect() with, as the daemon will see it. */
async function loginFailure(user: string, accessToken: string): Promise<Record<string, unknown>> {
  const client = imapClient(user, accessToken);
  try {
    await client.connect();
  } catch (error) {
    return error as Record<string, unknown>;
  }
  await client.logout();
  throw new Error("expected the login to fail");
}

describe("Dovecot test server with imapflow", () => {
  it("logs in with XOAUTH2 over TLS, lists INBOX and fetches a delivered message byte for byte", async () => {
    const [message] = sampleMessages(1, { seed: "dovecot-fetch", to: ALICE });
    await dovecot.deliver(ALICE, message!.raw);

    const client = imapClient(ALICE, aliceToken);
    await client.connect();
    try {
      const folders = await client.list();
      expect(folders.map((folder) => folder.path)).toContain("INBOX");
      expect(folders[0]?.delimiter).toBe("/"); // like Exchange
      const inbox = await client.mailboxOpen("INBOX");
      expect(inbox.exists).toBeGreaterThanOrEqual(1);
      const fetched = await client.fetchOne("*", { source: true, envelope: true, uid: true });
      expect(fetched).not.toBe(false);
      if (fetched === false) return;
      expect(fetched.envelope?.messageId).toBe(message!.messageId);
      expect(fetched.source?.equals(message!.raw)).toBe(true);
    } finally {
      await client.logout();
    }
  });

  it("refuses a garbage token: authenticationFailed with serverResponseCode AUTHENTICATIONFAILED", async () => {
    const failure = await loginFailure(ALICE, "not-a-token");
    expect(failure).toMatchObject({ authenticationFailed: true, serverResponseCode: "AUTHENTICATIONFAILED", responseStatus: "NO" });
  });

  it("refuses a Graph-scope token (bare IMAP.AccessAsUser.All), the most common misconfiguration", async () => {
    const graphToken = await tokenFor(["IMAP.AccessAsUser.All"]);
    const failure = await loginFailure(ALICE, graphToken);
    expect(failure).toMatchObject({ authenticationFailed: true, serverResponseCode: "AUTHENTICATIONFAILED" });
  });

  it("refuses a valid token for another mailbox than its user's", async () => {
    const failure = await loginFailure("bob@contoso.example", aliceToken);
    expect(failure).toMatchObject({ authenticationFailed: true, serverResponseCode: "AUTHENTICATIONFAILED" });
  });

  it("says NO [UNAVAILABLE] while introspection is down, which tells it apart from a bad token", async () => {
    standIn.setIntrospectionDown(true);
    try {
      const failure = await loginFailure(ALICE, aliceToken);
      expect(failure).toMatchObject({ authenticationFailed: true, serverResponseCode: "UNAVAILABLE" });
    } finally {
      standIn.setIntrospectionDown(false);
    }
  });

  it("refuses an access token past its real lifetime", async () => {
    standIn.setAccessTokenLifetime(0);
    try {
      const failure = await loginFailure(ALICE, await tokenFor([IMAP_SCOPE]));
      expect(failure).toMatchObject({ serverResponseCode: "AUTHENTICATIONFAILED" });
    } finally {
      standIn.setAccessTokenLifetime(4_500);
    }
  });

  it("creates and deletes folders with the / separator", async () => {
    await dovecot.createFolder(ALICE, "Support");
    await dovecot.createFolder(ALICE, "Support/Escalations");
    const client = imapClient(ALICE, aliceToken);
    await client.connect();
    try {
      expect((await client.list()).map((folder) => folder.path)).toEqual(expect.arrayContaining(["Support", "Support/Escalations"]));
      await dovecot.deleteFolder(ALICE, "Support/Escalations");
      const paths = (await client.list()).map((folder) => folder.path);
      expect(paths).toContain("Support");
      expect(paths).not.toContain("Support/Escalations");
    } finally {
      await client.logout();
    }
  });

  it("stores every sample message shape unchanged", async () => {
    const samples = sampleMessages(8, { seed: "dovecot-shapes", to: ALICE });
    await dovecot.createFolder(ALICE, "Shapes");
    for (const sample of samples) await dovecot.deliver(ALICE, sample.raw, "Shapes");

    const client = imapClient(ALICE, aliceToken);
    await client.connect();
    try {
      await client.mailboxOpen("Shapes");
      const sources: Buffer[] = [];
      for await (const message of client.fetch("1:*", { source: true })) if (message.source) sources.push(message.source);
      expect(sources).toHaveLength(samples.length);
      sources.forEach((source, index) => expect(source.equals(samples[index]!.raw)).toBe(true));
    } finally {
      await client.logout();
    }
  });

  it("stop() drops connections like a crash; start() serves again on the same port", async () => {
    const client = imapClient(ALICE, aliceToken);
    await client.connect();
    const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
    await dovecot.stop();
    await closed;
    await expect(imapClient(ALICE, aliceToken).connect()).rejects.toThrow();

    await dovecot.start();
    const again = imapClient(ALICE, aliceToken);
    await again.connect();
    expect((await again.mailboxOpen("INBOX")).exists).toBeGreaterThanOrEqual(1);
    await again.logout();
  });
});
