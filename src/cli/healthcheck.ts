/**
 * `mailfetchd healthcheck`: asks the running daemon's HTTP surface whether it is ready
 * (/readyz) or merely alive (--live, /livez). What the Dockerfile's HEALTHCHECK runs: in
 * Node, so the image needs no curl. Exit 0 healthy; 1 for anything else, including a config
 * without an `http` block (container engines read every other non-zero code as unhealthy
 * too, and 2 is reserved by Docker).
 */
import type { Command } from "commander";
import { X509Certificate } from "node:crypto";
import { request } from "node:http";
import { isIP } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { loadConfig } from "../config/load.js";
import type { HttpConfig } from "../config/schema.js";
import { describeError, MailfetchdError } from "../errors.js";
import { connectHostFor, urlAuthority } from "../support/listen-address.js";
import { configPathOf, EXIT, withConfigOption } from "./common.js";

export function registerHealthcheck(program: Command): void {
  withConfigOption(
    program
      .command("healthcheck")
      .description("ask the running daemon's HTTP surface whether it is ready (exit 0) or not (exit 1); needs the config's http block")
      .option("--live", "only check that the process answers (/livez) instead of /readyz")
      .option("--timeout <seconds>", "give up after this long", "5"),
  ).action(async (options: { config?: string; live?: boolean; timeout: string }) => {
    const path = options.live ? "/livez" : "/readyz";
    try {
      const config = loadConfig(configPathOf(options));
      if (!config.http) {
        throw new MailfetchdError("The config has no `http` block, so there is nothing to ask.", {
          code: "UNHEALTHY",
          retryable: false,
          fix: "Add `http:` with `listen: 127.0.0.1:9464` to the config (docs/operator-guide.md, HTTP surface), or drop the HEALTHCHECK.",
        });
      }
      const seconds = Number(options.timeout);
      const answer = await probe(config.http, path, Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 5_000);
      process.stdout.write(`healthy: ${answer}\n`);
      process.exitCode = EXIT.OK;
    } catch (error) {
      process.stderr.write(`unhealthy: ${describeError(error)}\n`);
      process.exitCode = EXIT.FAILURE;
    }
  });
}

async function probe(http: HttpConfig, path: string, timeoutMs: number): Promise<string> {
  const host = connectHostFor(http.host);
  const where = `${http.tls ? "https" : "http"}://${urlAuthority({ host, port: http.port })}${path}`;
  const deadline = Date.now() + timeoutMs;
  const socket = http.tls ? await pinnedConnection(host, http.port, http.tls.cert, timeoutMs, where) : undefined;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: http.port,
        path,
        method: "GET",
        headers: http.bearerToken ? { authorization: `Bearer ${http.bearerToken}` } : {},
        timeout: Math.max(1, deadline - Date.now()),
        ...(socket ? { createConnection: () => socket } : {}),
      },
      (response) => {
        let body = "";
        response.setEncoding("utf8").on("data", (chunk: string) => (body += chunk.slice(0, 500)));
        response.on("end", () => {
          const text = body.trim().slice(0, 300);
          if (response.statusCode === 200) resolve(text);
          else
            reject(
              unhealthy(
                `GET ${where} answered ${response.statusCode}: ${text}`,
                response.statusCode === 401
                  ? "The bearer token does not match: the daemon and this command must read the same http.bearerTokenFile."
                  : undefined,
              ),
            );
        });
      },
    );
    req.on("timeout", () => req.destroy(unhealthy(`GET ${where} did not answer within ${timeoutMs / 1000} s`)));
    req.on("error", (error: NodeJS.ErrnoException) =>
      reject(
        error instanceof MailfetchdError
          ? error
          : unhealthy(
              `GET ${where} failed: ${error.code ?? error.message}`,
              error.code === "ECONNREFUSED" ? "Is the daemon running, with this config's http.listen?" : undefined,
            ),
      ),
    );
    req.end();
  });
}

/**
 * A TLS connection to the daemon, trusted because it presents exactly the certificate in
 * http.tlsCertFile (SHA-256 fingerprint): the daemon is reached as 127.0.0.1, which its
 * certificate need not name, and its issuer may be a private CA. Checked once the handshake
 * is done and before a byte of the request (with the bearer token) is written.
 */
function pinnedConnection(host: string, port: number, certPem: string, timeoutMs: number, where: string): Promise<TLSSocket> {
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(certPem)?.[0] ?? certPem;
  const expected = new X509Certificate(first).fingerprint256;
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host, port, rejectUnauthorized: false, servername: isIP(host) ? undefined : host });
    const timer = setTimeout(() => socket.destroy(unhealthy(`GET ${where} did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      const presented = socket.getPeerCertificate().fingerprint256;
      if (presented === expected) return resolve(socket);
      socket.destroy();
      reject(
        unhealthy(
          `GET ${where} failed: the server's certificate (SHA-256 ${presented}) is not the one in http.tlsCertFile, so the bearer token was not sent`,
          "Check that http.tlsCertFile is the certificate the daemon serves (the same config file), and that nothing else listens on that port.",
        ),
      );
    });
    socket.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        error instanceof MailfetchdError
          ? error
          : unhealthy(
              `GET ${where} failed: ${error.code ?? error.message}`,
              error.code === "ECONNREFUSED" ? "Is the daemon running, with this config's http.listen?" : undefined,
            ),
      );
    });
  });
}

function unhealthy(message: string, fix?: string): MailfetchdError {
  return new MailfetchdError(message, { code: "UNHEALTHY", retryable: true, fix });
}
