/**
 * The HTTP surface against hostile clients, over real sockets: DNS rebinding (a foreign Host
 * on the loopback listener), a client that never finishes its headers, a client that opens
 * more connections than the surface serves, and TLS off loopback (also through `mailfetchd
 * healthcheck`, which pins the configured certificate). Built as the daemon builds it
 * (OperatingSurface), with the production limits.
 */
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { HttpConfig } from "../../src/config/schema.js";
import { DaemonEvents } from "../../src/events.js";
import { DEFAULT_HTTP_LIMITS } from "../../src/http/http-server.js";
import { OperatingSurface } from "../../src/http/operating-surface.js";
import { createTestCertificates, type TestCertificates } from "../../tools/testbed/certs.js";
import { runCli } from "../../tools/testbed/helpers/tokens-cli.js";

const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-http-hardening-"));
const TOKEN = "0123456789abcdef0123456789abcdef";
let certs: TestCertificates;
let otherCerts: TestCertificates;
const surfaces: OperatingSurface[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  certs = await createTestCertificates(path.join(dir, "certs"));
  otherCerts = await createTestCertificates(path.join(dir, "other-certs"));
});

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(surfaces.splice(0).map((surface) => surface.close()));
});

afterAll(() => undefined);

async function surface(http: HttpConfig): Promise<number> {
  const events = new DaemonEvents();
  const started = new OperatingSurface({
    http,
    events,
    status: { all: async () => [] },
    retention: { totals: async () => new Map(), oldestUndelivered: async () => new Map() },
    tokenCaches: { versions: async () => new Map() },
    queues: () => [],
    probeState: async () => undefined,
    activity: { lastDay: async () => new Map() },
    stateDir: tmpdir(),
    logger: pino({ level: "silent" }),
  });
  surfaces.push(started);
  await started.listen();
  return Number(started.authority!.split(":").pop());
}

/** GET with a Host header of our choosing (fetch would not let us set it). */
function get(port: number, host: string | undefined, urlPath = "/status.json"): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = host === undefined ? {} : { host };
    const req = httpRequest({ host: "127.0.0.1", port, path: urlPath, headers, setHost: host !== undefined }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port }, () => resolve(socket));
    sockets.push(socket);
    socket.on("error", () => undefined);
    socket.once("error", reject);
  });
}

/** "closed" when the server ends the socket within `ms`, else "open". */
function closedWithin(socket: Socket, ms: number): Promise<"closed" | "open"> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve("open"), ms);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve("closed");
    });
  });
}

describe("HTTP surface on loopback: DNS rebinding", () => {
  it("answers loopback Host names, with or without a port", async () => {
    const port = await surface({ host: "127.0.0.1", port: 0 });
    for (const host of [`127.0.0.1:${port}`, "127.0.0.1", `localhost:${port}`, "LOCALHOST", `127.1.2.3:${port}`, `[::1]:${port}`]) {
      expect((await get(port, host)).status, host).toBe(200);
    }
  });

  it("refuses any other Host (a rebinding web page), before anything is read", async () => {
    const port = await surface({ host: "127.0.0.1", port: 0 });
    for (const host of [
      `evil.example:${port}`,
      "evil.example",
      `127.0.0.1.evil.example:${port}`,
      `localhost.evil.example`,
      `[::2]:${port}`,
      `10.0.0.1:${port}`,
    ]) {
      const answer = await get(port, host);
      expect(answer.status, host).toBe(421);
      expect(answer.body).toContain("answers only to Host localhost, 127.0.0.1 or [::1]");
      expect(answer.body).not.toContain("queues");
    }
    // HTTP/1.0 without any Host.
    const socket = await openSocket(port);
    const answer = new Promise<string>((resolve) => socket.once("data", (chunk: Buffer) => resolve(chunk.toString("latin1"))));
    socket.write("GET /status.json HTTP/1.0\r\n\r\n");
    expect(await answer).toMatch(/^HTTP\/1\.[01] 421 /);
  });
});

describe("HTTP surface: slow and greedy clients", () => {
  it("closes a connection whose headers do not arrive within the 10 s limit (not ~30 s)", async () => {
    const port = await surface({ host: "127.0.0.1", port: 0 });
    const socket = await openSocket(port);
    let answer = "";
    socket.on("data", (chunk: Buffer) => (answer += chunk.toString("latin1")));
    socket.write(`GET /status.json HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`);
    // Enforced within its checking interval (a tenth of the limit); node's default checked every 30 s.
    expect(await closedWithin(socket, DEFAULT_HTTP_LIMITS.headersTimeoutMs + 5_000)).toBe("closed");
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  }, 30_000);

  it("serves at most 32 connections at once; one more is closed at once, the others still served", async () => {
    const port = await surface({ host: "127.0.0.1", port: 0 });
    const held: Socket[] = [];
    for (let i = 0; i < DEFAULT_HTTP_LIMITS.maxConnections; i++) held.push(await openSocket(port));
    const extra = await openSocket(port);
    expect(await closedWithin(extra, 3_000)).toBe("closed");
    // One of the held ones still gets an answer.
    const first = held[0]!;
    const answer = new Promise<string>((resolve) => first.once("data", (chunk: Buffer) => resolve(chunk.toString("latin1"))));
    first.write(`GET /livez HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    expect(await answer).toMatch(/^HTTP\/1\.1 200 /);
    // Once they go, new clients are served again.
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await get(port, `127.0.0.1:${port}`, "/livez")).status).toBe(200);
  });
});

describe("HTTP surface off loopback: TLS", () => {
  it("serves HTTPS with the configured certificate; plain HTTP gets no answer; the token is still required", async () => {
    const tls = { cert: await readText(certs.certFile), key: await readText(certs.keyFile) };
    const port = await surface({ host: "0.0.0.0", port: 0, bearerToken: TOKEN, tls });
    const ca = await readText(certs.caFile);
    const secure = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const req = httpsRequest({ host: "127.0.0.1", servername: "localhost", port, path: "/livez", ca, headers }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
    expect(await secure({ authorization: `Bearer ${TOKEN}` })).toBe(200);
    expect(await secure({})).toBe(401);
    // Off loopback the Host is not checked: the token is the guard.
    expect(await secure({ authorization: `Bearer ${TOKEN}`, host: "mailfetchd.contoso.com" })).toBe(200);
    const plain = await get(port, `127.0.0.1:${port}`, "/livez").then(
      (answer) => answer.status,
      (error: NodeJS.ErrnoException) => error.code ?? "error",
    );
    expect(plain).not.toBe(200);
  });

  it("`mailfetchd healthcheck` speaks TLS, pinning the configured certificate before it sends the token", async () => {
    const tls = { cert: await readText(certs.certFile), key: await readText(certs.keyFile) };
    const port = await surface({ host: "0.0.0.0", port: 0, bearerToken: TOKEN, tls });
    const tokenFile = path.join(dir, "http.token");
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const configFor = (certFile: string, keyFile: string) => {
      chmodSync(keyFile, 0o600);
      const file = path.join(dir, `healthcheck-${path.basename(path.dirname(certFile))}.yaml`);
      const config = {
        state: { dir: path.join(dir, "state"), keyFile: path.join(dir, "key") },
        identity: { tenantId: "11111111-2222-3333-4444-555555555555", clientId: "66666666-7777-8888-9999-000000000000" },
        queues: [{ name: "support", address: "support@contoso.com", handlers: [{ type: "directory", path: path.join(dir, "out") }] }],
        http: { listen: `0.0.0.0:${port}`, bearerTokenFile: tokenFile, tlsCertFile: certFile, tlsKeyFile: keyFile },
      };
      writeFileSync(file, stringify(config), { mode: 0o600 });
      return file;
    };
    // As a process, asynchronously: the surface answers from this one.
    const good = await runCli(["healthcheck", "--live", "--config", configFor(certs.certFile, certs.keyFile)]);
    expect(good.stderr).toBe("");
    expect(good.stdout).toBe("healthy: ok\n");
    expect(good.code).toBe(0);

    // A config naming another certificate: whoever answers on that port is not our daemon.
    const wrong = await runCli(["healthcheck", "--live", "--config", configFor(otherCerts.certFile, otherCerts.keyFile)]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("is not the one in http.tlsCertFile");
    expect(wrong.stderr).toMatch(/^unhealthy: GET https:\/\/127\.0\.0\.1:\d+\/livez failed: /);
  });
});

async function readText(file: string): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  return readFile(file, "utf8");
}
