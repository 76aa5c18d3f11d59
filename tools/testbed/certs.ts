/**
 * A throw-away certificate authority and one server certificate for 127.0.0.1 and localhost.
 *
 * Dovecot and the identity stand-in both serve the server certificate; clients trust the CA
 * explicitly (a `ca` option), never by turning verification off, so the tests exercise the same
 * TLS checks production does. Made with the openssl CLI because Node cannot issue certificates.
 */
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TestCertificates {
  /** PEM of the CA: what clients put in their trust list. */
  readonly caFile: string;
  /** PEM of the server certificate (subjectAltName IP:127.0.0.1, DNS:localhost). */
  readonly certFile: string;
  /** PEM of the server's private key, unencrypted. */
  readonly keyFile: string;
}

// Long enough for a debugging session on a kept test directory; the bed makes new ones per run.
const VALIDITY_DAYS = 30;
// P-256 keys take milliseconds to make; RSA-2048 takes up to a second on a slow CI machine.
const KEY_ALGORITHM = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

const SERVER_EXTENSIONS = [
  "basicConstraints = critical, CA:FALSE",
  "keyUsage = critical, digitalSignature, keyEncipherment",
  "extendedKeyUsage = serverAuth",
  "subjectAltName = IP:127.0.0.1, DNS:localhost",
  "",
].join("\n");

export async function createTestCertificates(dir: string): Promise<TestCertificates> {
  await mkdir(dir, { recursive: true });
  const caFile = join(dir, "ca.pem");
  const caKeyFile = join(dir, "ca-key.pem");
  const requestFile = join(dir, "server.csr");
  const extensionsFile = join(dir, "server-extensions.cnf");
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");

  await openssl([
    "req",
    "-x509",
    ...KEY_ALGORITHM,
    "-nodes",
    "-keyout",
    caKeyFile,
    "-out",
    caFile,
    "-days",
    String(VALIDITY_DAYS),
    "-subj",
    "/CN=mailfetchd test bed CA",
    "-addext",
    "basicConstraints = critical, CA:TRUE",
    "-addext",
    "keyUsage = critical, keyCertSign, cRLSign",
  ]);
  await openssl(["req", "-new", ...KEY_ALGORITHM, "-nodes", "-keyout", keyFile, "-out", requestFile, "-subj", "/CN=localhost"]);
  await writeFile(extensionsFile, SERVER_EXTENSIONS);
  await openssl([
    "x509",
    "-req",
    "-in",
    requestFile,
    "-CA",
    caFile,
    "-CAkey",
    caKeyFile,
    "-set_serial",
    randomSerial(),
    "-days",
    String(VALIDITY_DAYS),
    "-extfile",
    extensionsFile,
    "-out",
    certFile,
  ]);
  return { caFile, certFile, keyFile };
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run("openssl", args, { timeout: 30_000 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(error)}`, { cause: error });
  }
}

// A fresh serial per run: a client that cached an earlier run's certificate must not see a clash.
function randomSerial(): string {
  return `0x${Date.now().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`;
}
