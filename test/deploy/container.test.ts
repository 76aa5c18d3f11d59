/**
 * The container image, built from the real Dockerfile (scripts/container-build.sh: a local
 * stand-in for node:22-bookworm-slim, then buildah with chroot isolation; no Docker engine
 * runs on these machines) and run as its non-root user against the test bed: it signs in,
 * fetches a message over XOAUTH2, delivers it into a bind-mounted directory, reports healthy
 * through its own HEALTHCHECK command, and stops cleanly when tini passes it SIGTERM.
 *
 * Not exercised (see README, "Container test"): Docker's runtime, namespaces and cgroups, tini
 * as PID 1, and the HEALTHCHECK scheduler. Slow (minutes): runs only with
 * MAILFETCHD_CONTAINER_TEST=1, which .ci/run sets.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { request as httpsRequest } from "node:https";
import { chmodSync, chownSync, copyFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { writeNewKeyFile } from "../../src/state/secret-box.js";
import { findFreePorts } from "../../tools/testbed/free-port.js";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { startTestBed, TEST_CLIENT_ID, type TestBed } from "../../tools/testbed/test-bed.js";
import { listFiles, scanForSecrets } from "../../tools/testbed/helpers/secret-scan.js";
import { waitFor, writeTokenFile } from "../../tools/testbed/helpers/config-file.js";

const ENABLED = process.env.MAILFETCHD_CONTAINER_TEST === "1";
const TAG = `localhost/mailfetchd:test-${process.pid}`;
const NODE_UID = 1000;
const ARTIFACTS = path.resolve("test-artifacts");
const QUEUE = { name: "alpha", address: "alpha@example.test", password: "alpha-C0ntainer!" };

interface ImageConfig {
  User: string;
  Entrypoint: string[];
  Cmd: string[];
  Env: string[];
  Volumes?: Record<string, unknown>;
}

let bed: TestBed;
let container: string | undefined;
let imageBuilt = false;
let image: ImageConfig;
let healthcheck: string[];
let mounts: string[];
let dirs: { etc: string; secrets: string; state: string; out: string };
let httpToken: string;
let port: number;
let daemon: ChildProcess | undefined;
let daemonExit: Promise<number | null> | undefined;
const daemonOutput: string[] = [];

function run(command: string, args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Every process below `pid` (chroot isolation has no PID namespace: they are ours on the host). */
function descendants(pid: number): Array<{ pid: number; comm: string; uid: number }> {
  const table = readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .flatMap((name) => {
      try {
        const stat = /^(\d+) \((.*)\) \S+ (\d+)/.exec(readFileSync(`/proc/${name}/stat`, "utf8"));
        const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${name}/status`, "utf8"))?.[1]);
        return stat ? [{ pid: Number(stat[1]), comm: stat[2]!, ppid: Number(stat[3]), uid }] : [];
      } catch {
        return []; // gone meanwhile
      }
    });
  const found: Array<{ pid: number; comm: string; uid: number }> = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const p of table.filter((entry) => entry.ppid === parent)) {
      found.push({ pid: p.pid, comm: p.comm, uid: p.uid });
      queue.push(p.pid);
    }
  }
  return found;
}

function delivered(): string[] {
  const dir = path.join(dirs.out, QUEUE.name);
  return existsSync(dir) ? readdirSync(dir).filter((name) => !name.startsWith(".")) : [];
}

beforeAll(async () => {
  if (!ENABLED) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  const buildLog = path.join(ARTIFACTS, "container-build.log");
  const build = spawn("bash", ["scripts/container-build.sh", TAG], { stdio: ["ignore", "pipe", "pipe"] });
  const log = createWriteStream(buildLog);
  build.stdout.pipe(log);
  build.stderr.pipe(log);
  const code = await new Promise<number | null>((resolve) => build.once("exit", resolve));
  if (code !== 0) throw new Error(`scripts/container-build.sh failed (exit ${code}); see ${buildLog}`);
  imageBuilt = true;

  const inspected = JSON.parse((await run("buildah", ["inspect", "--type", "image", TAG])).stdout) as {
    OCIv1: { config: ImageConfig };
    Docker: { config: { Healthcheck?: { Test: string[] } } };
  };
  image = inspected.OCIv1.config;
  healthcheck = inspected.Docker.config.Healthcheck?.Test ?? [];

  bed = await startTestBed();
  bed.identity.addUser({ username: QUEUE.address, password: QUEUE.password });
  const root = path.join(bed.dir, "deploy");
  dirs = { etc: path.join(root, "etc"), secrets: path.join(root, "secrets"), state: path.join(root, "state"), out: path.join(root, "out") };
  for (const dir of Object.values(dirs)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  // As an operator lays it out: config and CA readable, secrets and state the node user's only.
  copyFileSync(bed.certs.caFile, path.join(dirs.etc, "ca.pem"));
  writeNewKeyFile(path.join(dirs.secrets, "token.key"));
  writeFileSync(path.join(dirs.secrets, `${QUEUE.name}.password`), `${QUEUE.password}\n`, { mode: 0o600 });
  httpToken = writeTokenFile(path.join(dirs.secrets, "http.token"));
  // Listening on every interface means HTTPS: the certificate is public, its key a secret.
  copyFileSync(bed.certs.certFile, path.join(dirs.etc, "http.crt"));
  copyFileSync(bed.certs.keyFile, path.join(dirs.secrets, "http.key"));
  chmodSync(path.join(dirs.secrets, "http.key"), 0o600);
  [port] = (await findFreePorts(1)) as [number];
  const config = {
    state: { dir: "/var/lib/mailfetchd", keyFile: "/run/secrets/token.key" },
    log: { level: "debug" },
    identity: { tenantId: bed.identity.tenantId, clientId: TEST_CLIENT_ID, authority: bed.identity.authority, caFile: "/etc/mailfetchd/ca.pem" },
    imap: { host: bed.dovecot.host, port: bed.dovecot.port, tls: true, caFile: "/etc/mailfetchd/ca.pem" },
    poll: "1s",
    queues: [
      {
        name: QUEUE.name,
        address: QUEUE.address,
        signIn: { passwordFile: `/run/secrets/${QUEUE.name}.password` },
        idle: false,
        handlers: [{ type: "directory", path: "/srv/out" }],
      },
    ],
    http: {
      listen: `0.0.0.0:${port}`,
      bearerTokenFile: "/run/secrets/http.token",
      tlsCertFile: "/etc/mailfetchd/http.crt",
      tlsKeyFile: "/run/secrets/http.key",
    },
  };
  writeFileSync(path.join(dirs.etc, "config.yaml"), stringify(config), { mode: 0o644 });
  for (const dir of [dirs.secrets, dirs.state, dirs.out]) for (const file of [dir, ...listFiles(dir)]) chownSync(file, NODE_UID, NODE_UID);
  // The config and the CA hold no secret: root's, readable by the node user.
  chmodSync(dirs.etc, 0o755);
  chmodSync(path.join(dirs.etc, "ca.pem"), 0o644);
  chmodSync(path.join(dirs.etc, "http.crt"), 0o644);
  mounts = [
    "-v",
    `${dirs.etc}:/etc/mailfetchd:ro`,
    "-v",
    `${dirs.secrets}:/run/secrets:ro`,
    "-v",
    `${dirs.state}:/var/lib/mailfetchd`,
    "-v",
    `${dirs.out}:/srv/out`,
  ];

  await bed.dovecot.deliver(QUEUE.address, sampleMessages(1, { seed: "container", to: QUEUE.address })[0]!.raw);
  container = (await run("buildah", ["from", "--pull-never", TAG])).stdout.trim();
  expect(container, "buildah from").not.toBe("");
  // buildah 1.28 mounts an anonymous volume over an image VOLUME even when -v names the same
  // path (Docker lets -v replace it): this working container, not the image, drops the declaration.
  for (const volume of Object.keys(image.Volumes ?? {})) await run("buildah", ["config", "--volume", `${volume}-`, container]);
}, 480_000);

afterAll(async () => {
  if (daemon?.pid !== undefined && daemon.exitCode === null) {
    for (const p of descendants(daemon.pid).reverse()) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await daemonExit;
  }
  if (container) await run("buildah", ["rm", container]);
  if (imageBuilt) await run("buildah", ["rmi", TAG]);
  await bed?.close();
}, 120_000);

describe.skipIf(!ENABLED)("container image", () => {
  it("is configured as the Dockerfile says: non-root user, tini entrypoint, HEALTHCHECK in Node, state volume", () => {
    expect(image.User).toBe("node");
    expect(image.Entrypoint).toEqual(["/usr/bin/tini", "--", "mailfetchd"]);
    expect(image.Cmd).toEqual(["run"]);
    expect(image.Env).toContain("MAILFETCHD_CONFIG=/etc/mailfetchd/config.yaml");
    expect(Object.keys(image.Volumes ?? {})).toEqual(["/var/lib/mailfetchd"]);
    expect(healthcheck).toEqual(["CMD", "node", "/app/dist/cli.js", "healthcheck"]);
  });

  it("has no compiler in the runtime image and cannot change its own code", async () => {
    const probe = await run("buildah", [
      "run",
      "--isolation",
      "chroot",
      "--user",
      image.User,
      container!,
      "--",
      "sh",
      "-c",
      "command -v g++ make python3; touch /app/dist/cli.js; echo done",
    ]);
    expect(probe.stdout.trim()).toBe("done");
    expect(probe.stderr).toContain("Permission denied");
  });

  it("carries the daemon only: no test bed (fake identity issuer included), bench or demo", async () => {
    const listing = await run("buildah", [
      "run",
      "--isolation",
      "chroot",
      container!,
      "--",
      "sh",
      "-c",
      "cd /app && ls -d dist/testbed dist/bench dist/demo tools dist-tools 2>/dev/null; echo done",
    ]);
    expect(listing.stdout.trim()).toBe("done");
  });

  it("runs as its non-root user against the test bed: fetches and delivers a message, and its health check passes", async () => {
    // Exactly the image's entrypoint and command, as its configured user.
    daemon = spawn("buildah", ["run", "--isolation", "chroot", "--user", image.User, ...mounts, container!, "--", ...image.Entrypoint, ...image.Cmd], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    daemon.stdout!.setEncoding("utf8").on("data", (chunk: string) => daemonOutput.push(chunk));
    daemon.stderr!.setEncoding("utf8").on("data", (chunk: string) => daemonOutput.push(chunk));
    daemonExit = new Promise((resolve) => daemon!.once("exit", (code) => resolve(code)));

    try {
      await waitFor("the message delivered into the bind-mounted directory", () => delivered().length === 1, 60_000);
    } catch (error) {
      throw new Error(`${(error as Error).message}; container output:\n${daemonOutput.join("").slice(-4000)}`);
    }
    const messageDir = path.join(dirs.out, QUEUE.name, delivered()[0]!);
    expect(JSON.parse(readFileSync(path.join(messageDir, "message.json"), "utf8"))).toMatchObject({
      queue: { name: QUEUE.name },
      source: { folder: "INBOX", uid: 1 },
    });
    // Written by uid 1000, and the daemon's processes run as uid 1000.
    expect(statSync(messageDir).uid).toBe(NODE_UID);
    expect(statSync(path.join(dirs.state, "state.sqlite")).uid).toBe(NODE_UID);
    const processes = descendants(daemon.pid!);
    expect(processes.map((p) => p.comm)).toEqual(expect.arrayContaining(["tini", "node"]));
    for (const p of processes.filter((entry) => entry.comm === "tini" || entry.comm === "node")) expect(p.uid, p.comm).toBe(NODE_UID);

    // The HEALTHCHECK command, run in the container as Docker would (with the same mounts).
    await waitFor("the daemon ready", async () => (await httpsStatus("/readyz", { authorization: `Bearer ${httpToken}` }).catch(() => 0)) === 200);
    const health = await run("buildah", ["run", "--isolation", "chroot", "--user", image.User, ...mounts, container!, "--", ...healthcheck.slice(1)]);
    expect(health, health.stderr).toMatchObject({ code: 0, stdout: "healthy: ready\n" });
    // Unauthenticated requests are refused: it listens on every interface.
    expect(await httpsStatus("/metrics", {})).toBe(401);
  });

  it("stops gracefully when tini passes on SIGTERM, and leaves no secret in its output or files", async () => {
    const tini = descendants(daemon!.pid!).find((p) => p.comm === "tini");
    expect(tini).toBeDefined();
    process.kill(tini!.pid, "SIGTERM");
    expect(await daemonExit).toBe(0);
    const output = daemonOutput.join("");
    expect(output).toContain('"msg":"mailfetchd stopped"');
    const secrets = [QUEUE.password, httpToken, ...bed.identity.secretsIssued];
    writeFileSync(path.join(ARTIFACTS, "container-output.log"), output);
    expect(scanForSecrets([path.join(ARTIFACTS, "container-output.log"), ...listFiles(dirs.state), ...listFiles(dirs.out)], secrets)).toEqual([]);
  });
});

/** The status of a GET to the container's HTTPS surface, trusting the test bed's CA. */
function httpsStatus(urlPath: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: "127.0.0.1", port, path: urlPath, headers, ca: readFileSync(bed.certs.caFile) }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
}
