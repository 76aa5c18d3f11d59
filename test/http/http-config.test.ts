import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { createTestCertificates } from "../../tools/testbed/certs.js";

const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-http-config-"));
writeFileSync(path.join(dir, "http.token"), "9f86d081884c7d659a2feaa0c55ad015\n", { mode: 0o600 });
writeFileSync(path.join(dir, "short.token"), "abc\n", { mode: 0o600 });

function config(http: string): string {
  return `
state: { dir: ./state, keyFile: ./key }
identity: { tenantId: 11111111-2222-3333-4444-555555555555, clientId: 66666666-7777-8888-9999-000000000000 }
queues:
  - name: support
    address: support@contoso.com
    handlers: [{ type: directory, path: out }]
${http}`;
}

const parse = (http: string) => parseConfig(config(http), path.join(dir, "config.yaml"));
const errorOf = (http: string) => {
  try {
    parse(http);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected a config error");
};

describe("config: http block", () => {
  it("is off without the block and on 127.0.0.1:9464 with an empty one", () => {
    expect(parse("").http).toBeUndefined();
    expect(parse("http: {}").http).toEqual({ host: "127.0.0.1", port: 9464 });
  });

  it("reads the bearer token from its file", () => {
    expect(parse("http: { listen: '127.0.0.1:9000', bearerTokenFile: http.token }").http).toEqual({
      host: "127.0.0.1",
      port: 9000,
      bearerToken: "9f86d081884c7d659a2feaa0c55ad015",
    });
  });

  it("refuses a non-loopback address without a bearer token, saying what to do", () => {
    const message = errorOf("http: { listen: '0.0.0.0:9464' }");
    expect(message).toContain("http.bearerTokenFile: missing");
    expect(message).toContain("openssl rand -hex 32");
    expect(errorOf("http: { listen: '[::]:9464' }")).toContain("http.bearerTokenFile: missing");
  });

  it("refuses a non-loopback address without TLS, with the command that makes a certificate", () => {
    const message = errorOf("http: { listen: '0.0.0.0:9464', bearerTokenFile: http.token }");
    expect(message).toContain("http.tlsCertFile: missing: http.listen 0.0.0.0:9464 is reachable from other machines");
    expect(message).toContain("openssl req -x509");
    expect(message).toContain("or listen on 127.0.0.1");
    expect(errorOf("http: { listen: '192.0.2.10:9464', bearerTokenFile: http.token }")).toContain("http.tlsCertFile: missing");
  });

  it("serves TLS with a certificate and its key: read, checked to match, the key kept private", async () => {
    const certs = await createTestCertificates(path.join(dir, "certs"));
    const other = await createTestCertificates(path.join(dir, "other-certs"));
    chmodSync(certs.keyFile, 0o600);
    chmodSync(other.keyFile, 0o600);
    const http = parse(`http: { listen: '0.0.0.0:9464', bearerTokenFile: http.token, tlsCertFile: ${certs.certFile}, tlsKeyFile: ${certs.keyFile} }`).http!;
    expect(http.tls?.cert).toContain("BEGIN CERTIFICATE");
    expect(http.tls?.key).toContain("PRIVATE KEY");

    expect(errorOf(`http: { listen: '0.0.0.0:9464', bearerTokenFile: http.token, tlsCertFile: ${certs.certFile} }`)).toContain(
      "http.tlsKeyFile: missing: name both the certificate (tlsCertFile) and its private key (tlsKeyFile), or neither",
    );
    expect(errorOf(`http: { listen: '0.0.0.0:9464', bearerTokenFile: http.token, tlsCertFile: ${certs.certFile}, tlsKeyFile: ${other.keyFile} }`)).toContain(
      "are not a usable PEM certificate and matching private key",
    );
    chmodSync(certs.keyFile, 0o644);
    const open = errorOf(`http: { listen: '0.0.0.0:9464', bearerTokenFile: http.token, tlsCertFile: ${certs.certFile}, tlsKeyFile: ${certs.keyFile} }`);
    expect(open).toContain(`http.tlsKeyFile: ${certs.keyFile} is readable by group and others (mode 0644)`);
    expect(open).not.toContain("PRIVATE KEY");
  });

  it("refuses malformed addresses, short tokens and unreadable token files", () => {
    expect(errorOf("http: { listen: '9464' }")).toContain("http.listen: write HOST:PORT");
    expect(errorOf("http: { listen: '127.0.0.1:9464', bearerTokenFile: short.token }")).toContain("at least 16 printable characters");
    expect(errorOf("http: { bearerTokenFile: missing.token }")).toContain("http.bearerTokenFile: cannot read missing.token (ENOENT)");
    expect(errorOf("http: { port: 9464 }")).toContain("unknown key 'port'");
  });

  it("never puts the token in an error message", () => {
    writeFileSync(path.join(dir, "spaced.token"), "has a space in it 9f86d081884c7d659a2f\n", { mode: 0o600 });
    expect(errorOf("http: { bearerTokenFile: spaced.token }")).not.toContain("9f86d081884c7d659a2f");
  });
});
