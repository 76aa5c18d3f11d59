/**
 * What a command handler's program can see of the daemon, with the real daemon process
 * (dist/cli.js run) on the test bed: one program runs as the daemon's user, one as nobody
 * (uid/gid). The daemon was started with a credential-like variable in its environment, as a
 * careless unit file might do.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../tools/testbed/sample-messages.js";
import { DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { startOneQueueBed, type OneQueueBed } from "../../tools/testbed/helpers/one-queue-bed.js";

const QUEUE = { name: "isolated", address: "isolated@example.test", password: `Isolated-${randomBytes(8).toString("hex")}"\\pw` };
const LEAKY = `crm-token-${randomBytes(12).toString("hex")}`;
const asRoot = process.getuid?.() === 0;

let setup: OneQueueBed;
let work: string;

beforeAll(async () => {
  // Reachable by nobody: the script, and the directory each program writes its findings to.
  work = mkdtempSync(path.join(tmpdir(), "mailfetchd-isolation-"));
  chmodSync(work, 0o777);
  const probe = path.join(work, "probe.sh");
  writeFileSync(
    probe,
    [
      "#!/bin/sh",
      'dest="$1"',
      'cat /proc/$PPID/cmdline | tr "\\0" " " > "$dest.cmdline"',
      'cat /proc/$PPID/environ > "$dest.environ" 2>/dev/null || echo refused > "$dest.environ"',
      'id -u > "$dest.uid"',
      "exit 0",
    ].join("\n"),
    { mode: 0o755 },
  );
  setup = await startOneQueueBed(QUEUE, {
    poll: "1s",
    options: { idle: false },
    moreHandlers: () => [
      { type: "command", name: "same-user", command: [probe, path.join(work, "same-user")] },
      ...(asRoot ? [{ type: "command", name: "nobody", command: [probe, path.join(work, "nobody")], uid: 65534, gid: 65534 }] : []),
    ],
  });
  await setup.bed.dovecot.deliver(QUEUE.address, sampleMessages(1, { seed: "isolation", to: QUEUE.address })[0]!.raw);
});

afterAll(async () => {
  await setup?.bed.close();
  rmSync(work, { recursive: true, force: true });
});

describe("what a command handler's program can see", () => {
  it("as the daemon's user: the daemon's start environment (so the daemon warns, by name), but none of the secrets it read from files", async () => {
    const daemon = new DaemonProcess(setup.configFile, { CRM_API_TOKEN: LEAKY });
    daemon.start();
    const done = [path.join(work, "same-user.uid"), ...(asRoot ? [path.join(work, "nobody.uid")] : [])];
    await daemon.waitFor("both programs to have run", () => done.every((file) => existsSync(file) && readFileSync(file, "utf8").trim() !== ""));
    expect(await daemon.stop("SIGTERM")).toEqual({ code: 0, signal: null });

    expect(readFileSync(path.join(work, "same-user.cmdline"), "utf8")).toContain("cli.js run --config");
    const environ = readFileSync(path.join(work, "same-user.environ"), "utf8");
    // The exposure the docs describe: whatever the daemon was started with.
    expect(environ).toContain(`CRM_API_TOKEN=${LEAKY}`);
    // Never anything mailfetchd read from its secret files.
    expect(environ).not.toContain(QUEUE.password);
    const key = readFileSync(
      readFileSync(setup.configFile, "utf8")
        .match(/keyFile: (.+)/)![1]!
        .trim(),
      "utf8",
    ).trim();
    expect(environ).not.toContain(key.split(":").pop()!);

    const warning = daemon.lines.find((line) => line.msg.includes("variables named like credentials"));
    expect(warning).toMatchObject({ level: 40, variables: ["CRM_API_TOKEN"] });
    expect(daemon.rawOutput.join("")).not.toContain(LEAKY);
  });

  it.runIf(asRoot)("as another user (uid/gid): nothing of the daemon's environment", () => {
    expect(readFileSync(path.join(work, "nobody.uid"), "utf8").trim()).toBe("65534");
    expect(readFileSync(path.join(work, "nobody.environ"), "utf8").trim()).toBe("refused");
  });
});
