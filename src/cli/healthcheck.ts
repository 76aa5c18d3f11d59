/**
 * `mailfetchd healthcheck`: asks the running daemon's HTTP surface whether it is ready
 * (/readyz) or merely alive (--live, /livez). What the Dockerfile's HEALTHCHECK runs: in
 * Node, so the image needs no curl. Exit 0 healthy; 1 for anything else, including a config
 * without an `http` block (container engines read every other non-zero code as unhealthy
 * too, and 2 is reserved by Docker).
 */
import type { Command } from "commander";
import { request } from "node:http";
import { loadConfig } from "../config/load.js";
import type { HttpConfig } from "../config/schema.js";
import { describeError, MailfetchdError } from "../errors.js";
import { connectHostFor, urlAuthority } from "../http/listen-address.js";
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

function probe(http: HttpConfig, path: string, timeoutMs: number): Promise<string> {
  const host = connectHostFor(http.host);
  const where = `http://${urlAuthority({ host, port: http.port })}${path}`;
  return new Promise((resolve, reject) => {
    const req = request(
      { host, port: http.port, path, method: "GET", headers: http.bearerToken ? { authorization: `Bearer ${http.bearerToken}` } : {}, timeout: timeoutMs },
      (response) => {
        let body = "";
        response.setEncoding("utf8").on("data", (chunk: string) => (body += chunk.slice(0, 500)));
        response.on("end", () => {
          const text = body.trim().slice(0, 300);
          if (response.statusCode === 200) resolve(text);
          else reject(unhealthy(`GET ${where} answered ${response.statusCode}: ${text}`, response.statusCode === 401 ? "The bearer token does not match: the daemon and this command must read the same http.bearerTokenFile." : undefined));
        });
      },
    );
    req.on("timeout", () => req.destroy(unhealthy(`GET ${where} did not answer within ${timeoutMs / 1000} s`)));
    req.on("error", (error: NodeJS.ErrnoException) =>
      reject(
        error instanceof MailfetchdError
          ? error
          : unhealthy(`GET ${where} failed: ${error.code ?? error.message}`, error.code === "ECONNREFUSED" ? "Is the daemon running, with this config's http.listen?" : undefined),
      ),
    );
    req.end();
  });
}

function unhealthy(message: string, fix?: string): MailfetchdError {
  return new MailfetchdError(message, { code: "UNHEALTHY", retryable: true, fix });
}
