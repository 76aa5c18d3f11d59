/**
 * An IMAP access token straight from the identity stand-in (password grant), for the peers and
 * ceilings that do not sign in through MSAL (bare imapflow, getmail6).
 */
import { readFileSync } from "node:fs";
import { request } from "node:https";
import type { TestBed } from "../testbed/test-bed.js";
import { TEST_CLIENT_ID } from "../testbed/test-bed.js";

export function fetchAccessToken(bed: TestBed, username: string, password: string): Promise<string> {
  const body = new URLSearchParams({
    grant_type: "password",
    client_id: TEST_CLIENT_ID,
    scope: "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
    username,
    password,
  }).toString();
  const url = new URL(`${bed.identity.authority}/oauth2/v2.0/token`);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        ca: readFileSync(bed.certs.caFile),
        headers: { "content-type": "application/x-www-form-urlencoded", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
        res.on("end", () => {
          const answer = JSON.parse(text) as { access_token?: string; error?: string };
          if (answer.access_token) resolve(answer.access_token);
          else reject(new Error(`token request for ${username} failed: ${answer.error ?? res.statusCode}`));
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
