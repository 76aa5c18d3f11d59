/**
 * The command handler running real /bin/sh scripts written to a temp dir: exit codes, stdin,
 * environment (and what must not be in it), timeouts that kill the whole process group,
 * shutdown, and stderr in the error reason.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { isRetryable, MailfetchdError, PermanentError } from "../../src/errors.js";
import { createCommandHandler, type CommandHandlerOptions } from "../../src/handlers/command.js";
import { credentialLikeVariables } from "../../src/handlers/command-environment.js";
import type { DeliverableMessage, DeliveryContext } from "../../src/interfaces.js";
import { MailparserParser } from "../../src/parse/mail-parser.js";
import { rawMessageFromBuffer } from "../../src/spool/raw-message.js";
import { failureOf } from "./failure-of.js";

const RAW = Buffer.from(
  [
    "Message-ID: <command-test-1@example.test>",
    "Date: Fri, 01 Mar 2024 08:00:00 +0000",
    "From: Customer <customer@example.test>",
    "To: support@contoso.example",
    // Decodes to "Order\n42\u0007 ready": a newline and a bell a script must never see raw.
    "Subject: =?UTF-8?Q?Order=0A42=07_ready?=",
    "",
    "Hello, where is my order?",
    "",
  ].join("\r\n"),
);

const SECRET_IN_DAEMON_ENV = `daemon-secret-${randomBytes(12).toString("hex")}`;
let dir: string;
let message: DeliverableMessage;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-command-test-"));
  process.env.MAILFETCHD_TEST_SECRET = SECRET_IN_DAEMON_ENV;
  process.env.CRM_API_TOKEN = SECRET_IN_DAEMON_ENV;
  message = {
    id: "m0123456789abcdef0123456789abcde",
    queue: { name: "support", address: "support@contoso.example" },
    source: { kind: "imap", folder: "INBOX", item: "1700000000:42", uidValidity: "1700000000", uid: 42 },
    raw: rawMessageFromBuffer(RAW),
    parsed: await new MailparserParser().parse(RAW),
  };
});

afterAll(() => {
  delete process.env.MAILFETCHD_TEST_SECRET;
  delete process.env.CRM_API_TOKEN;
  rmSync(dir, { recursive: true, force: true });
});

function script(name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

function context(overrides: Partial<DeliveryContext> = {}): DeliveryContext {
  return { signal: new AbortController().signal, logger: pino({ level: "silent" }), attempt: 1, ...overrides };
}

function handler(command: string[], options: Partial<CommandHandlerOptions> = {}) {
  return createCommandHandler({ command, timeoutMs: 10_000, killGraceMs: 200, ...options });
}

function readEnv(file: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(file, "utf8")
      .split("\0")
      .filter(Boolean)
      .map((entry) => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)]),
  );
}

/** Alive means present and not a zombie (a container's PID 1 may never reap an orphan). */
function isAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
}

describe("command handler", () => {
  it("exit 0 delivers: the raw message on stdin, metadata and configured env, never the daemon's own environment", async () => {
    const out = mkdtempSync(path.join(dir, "out-"));
    const ok = script("ok.sh", 'cat > "$OUT_DIR/stdin.eml"\nenv -0 > "$OUT_DIR/env"\ncp "$MAILFETCHD_DOCUMENT" "$OUT_DIR/document.json"\nexit 0');
    await handler([ok], { env: { OUT_DIR: out } }).deliver(message, context({ attempt: 4 }));

    expect(readFileSync(path.join(out, "stdin.eml")).equals(RAW)).toBe(true);
    const env = readEnv(path.join(out, "env"));
    expect(env).toMatchObject({
      MAILFETCHD_ID: message.id,
      MAILFETCHD_QUEUE: "support",
      MAILFETCHD_QUEUE_ADDRESS: "support@contoso.example",
      MAILFETCHD_MESSAGE_ID: "<command-test-1@example.test>",
      MAILFETCHD_SUBJECT: "Order 42 ready",
      MAILFETCHD_FROM: "customer@example.test",
      MAILFETCHD_FOLDER: "INBOX",
      MAILFETCHD_SOURCE: "imap",
      MAILFETCHD_ITEM: "1700000000:42",
      MAILFETCHD_UID: "42",
      MAILFETCHD_UIDVALIDITY: "1700000000",
      MAILFETCHD_ATTEMPT: "4",
      OUT_DIR: out,
    });
    expect(env.PATH).toBeTruthy();
    // The daemon's environment stays with the daemon.
    expect(env.MAILFETCHD_TEST_SECRET).toBeUndefined();
    expect(env.CRM_API_TOKEN).toBeUndefined();
    expect(readFileSync(path.join(out, "env"), "utf8")).not.toContain(SECRET_IN_DAEMON_ENV);
    const allowed = new Set(["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "USER", "LOGNAME", "TMPDIR", "OUT_DIR", "PWD", "SHLVL", "_"]);
    expect(Object.keys(env).filter((name) => !name.startsWith("MAILFETCHD_") && !allowed.has(name))).toEqual([]);

    // The document was there while the program ran, and is gone afterwards.
    const document = JSON.parse(readFileSync(path.join(out, "document.json"), "utf8"));
    expect(document).toMatchObject({ schema: "mailfetchd.message/1", id: message.id, subject: "Order\n42\u0007 ready", rawPath: null });
    expect(existsSync(env.MAILFETCHD_DOCUMENT!)).toBe(false);
    expect(existsSync(path.dirname(env.MAILFETCHD_DOCUMENT!))).toBe(false);
  });

  it("a 20 KB Message-ID or subject stays out of the environment (named in MAILFETCHD_OMITTED) and whole in the document", async () => {
    const longId = `<${"x".repeat(20_000)}@example.test>`;
    const longSubject = `Bestellung ${"ü".repeat(300)}`; // 611 bytes in UTF-8, under 500 characters
    const raw = Buffer.from(
      RAW.toString("utf8")
        .replace("<command-test-1@example.test>", longId)
        .replace("=?UTF-8?Q?Order=0A42=07_ready?=", `=?UTF-8?B?${Buffer.from(longSubject).toString("base64")}?=`),
    );
    const long = { ...message, raw: rawMessageFromBuffer(raw), parsed: await new MailparserParser().parse(raw) };
    const out = mkdtempSync(path.join(dir, "long-"));
    const ok = script("long.sh", 'env -0 > "$OUT_DIR/env"\ncp "$MAILFETCHD_DOCUMENT" "$OUT_DIR/document.json"');
    await handler([ok], { env: { OUT_DIR: out } }).deliver(long, context());
    const env = readEnv(path.join(out, "env"));
    expect(env.MAILFETCHD_MESSAGE_ID).toBeUndefined();
    expect(env.MAILFETCHD_SUBJECT).toBeUndefined();
    expect(env.MAILFETCHD_OMITTED).toBe("MAILFETCHD_MESSAGE_ID MAILFETCHD_SUBJECT");
    expect(env.MAILFETCHD_FROM).toBe("customer@example.test");
    const document = JSON.parse(readFileSync(path.join(out, "document.json"), "utf8"));
    expect(document.messageId).toBe(longId);
    expect(document.subject).toBe(longSubject);
  });

  it("exit 75 (EX_TEMPFAIL) is retried, with the last stderr lines in the reason", async () => {
    const tempfail = script("tempfail.sh", 'echo "connecting to crm" >&2\necho "crm busy, try later" >&2\nexit 75');
    const error = await failureOf(handler([tempfail]).deliver(message, context()));
    expect(error).toBeInstanceOf(MailfetchdError);
    expect(error).not.toBeInstanceOf(PermanentError);
    expect(isRetryable(error)).toBe(true);
    expect((error as Error).message).toContain("exited 75 (EX_TEMPFAIL)");
    expect((error as Error).message).toContain("stderr: connecting to crm | crm busy, try later");
  });

  it("any other exit is final (PermanentError); stderr in the reason is the tail, at most 1 KB", async () => {
    const fail = script("fail.sh", 'i=0\nwhile [ $i -lt 200 ]; do echo "noise line $i" >&2; i=$((i+1)); done\necho "unknown customer" >&2\nexit 1');
    const error = await failureOf(handler([fail]).deliver(message, context()));
    expect(error).toBeInstanceOf(PermanentError);
    expect(isRetryable(error)).toBe(false);
    const text = (error as Error).message;
    expect(text).toContain("exited 1");
    expect(text).toContain("unknown customer");
    expect(text).not.toContain("noise line 0 ");
    expect(text.length).toBeLessThan(1400);
  });

  it("death by a signal is final", async () => {
    const crash = script("crash.sh", "kill -SEGV $$");
    const error = await failureOf(handler([crash]).deliver(message, context()));
    expect(error).toBeInstanceOf(PermanentError);
    expect((error as Error).message).toContain("killed by SIGSEGV");
  });

  it("a program that ignores stdin and exits 0 delivers (no EPIPE failure)", async () => {
    const ignore = script("ignore.sh", "exit 0");
    const big = { ...message, raw: rawMessageFromBuffer(Buffer.concat([RAW, Buffer.alloc(4 * 1024 * 1024, 0x61)])) };
    await handler([ignore]).deliver(big, context());
  });

  it("a timeout kills the whole process group, even a part that ignores SIGTERM, and the message is retried", async () => {
    const pidFile = path.join(dir, "hang.pids");
    // The script and the child it starts ignore SIGTERM: only the SIGKILL after the grace ends them.
    const hang = script("hang.sh", `trap "" TERM\nsh -c 'while :; do sleep 1; done' &\necho $! > "${pidFile}"\necho "waiting for crm" >&2\nwait`);
    const error = await failureOf(handler([hang], { timeoutMs: 300 }).deliver(message, context()));
    expect(error).toBeInstanceOf(MailfetchdError);
    expect(isRetryable(error)).toBe(true);
    expect((error as Error).message).toContain("did not finish within 0.3s");
    expect((error as Error).message).toContain("waiting for crm");
    const straggler = Number(readFileSync(pidFile, "utf8"));
    await waitUntil(() => !isAlive(straggler));
    expect(isAlive(straggler)).toBe(false);
  }, 20_000);

  it("a program that exits 0 takes what it left running in the background with it", async () => {
    const pidFile = path.join(dir, "background.pid");
    // The child ignores SIGTERM and closes stdio: only killing the group ends it.
    const starter = script("background.sh", `trap "" TERM\n(trap "" TERM; exec sleep 60) </dev/null >/dev/null 2>&1 &\necho $! > "${pidFile}"\nexit 0`);
    await handler([starter]).deliver(message, context());
    const straggler = Number(readFileSync(pidFile, "utf8"));
    await waitUntil(() => !isAlive(straggler));
    expect(isAlive(straggler)).toBe(false);
  });

  it("a program that fails also takes its background children with it", async () => {
    const pidFile = path.join(dir, "background-fail.pid");
    const starter = script("background-fail.sh", `sleep 60 </dev/null >/dev/null 2>&1 &\necho $! > "${pidFile}"\nexit 1`);
    await failureOf(handler([starter]).deliver(message, context()));
    const straggler = Number(readFileSync(pidFile, "utf8"));
    await waitUntil(() => !isAlive(straggler));
    expect(isAlive(straggler)).toBe(false);
  });

  it.runIf(process.getuid?.() === 0)("runs as another user (uid/gid): it reads its document and stdin, but not the daemon's environment or files", async () => {
    // The scripts' directory must be reachable by that user (mkdtemp makes it 0700).
    chmodSync(dir, 0o755);
    const out = mkdtempSync(path.join(dir, "as-nobody-"));
    chmodSync(out, 0o777);
    const secretFile = path.join(dir, "daemon-only.secret");
    writeFileSync(secretFile, "not for programs\n", { mode: 0o600 });
    const probe = script(
      "as-nobody.sh",
      [
        'id -u > "$OUT_DIR/uid"; id -g > "$OUT_DIR/gid"; id -G > "$OUT_DIR/groups"',
        'cat > "$OUT_DIR/stdin.eml"',
        'cp "$MAILFETCHD_DOCUMENT" "$OUT_DIR/document.json"',
        `cat /proc/$PPID/environ > "$OUT_DIR/daemon-environ" 2>/dev/null || echo refused > "$OUT_DIR/daemon-environ"`,
        `cat "${secretFile}" > "$OUT_DIR/secret" 2>/dev/null || echo refused > "$OUT_DIR/secret"`,
      ].join("\n"),
    );
    await handler([probe], { env: { OUT_DIR: out }, uid: 65534, gid: 65534 }).deliver(message, context());
    expect(readFileSync(path.join(out, "uid"), "utf8").trim()).toBe("65534");
    expect(readFileSync(path.join(out, "gid"), "utf8").trim()).toBe("65534");
    // Root's supplementary groups are dropped too.
    expect(readFileSync(path.join(out, "groups"), "utf8").trim()).toBe("65534");
    expect(readFileSync(path.join(out, "stdin.eml")).equals(RAW)).toBe(true);
    expect(JSON.parse(readFileSync(path.join(out, "document.json"), "utf8"))).toMatchObject({ id: message.id });
    expect(readFileSync(path.join(out, "daemon-environ"), "utf8").trim()).toBe("refused");
    expect(readFileSync(path.join(out, "secret"), "utf8").trim()).toBe("refused");
  });

  it("names credential-like variables of the daemon's environment (not places, not values)", () => {
    expect(
      credentialLikeVariables({
        CRM_API_TOKEN: "x",
        DB_PASSWORD: "y",
        PATH: "/bin",
        SSH_AUTH_SOCK: "/tmp/s",
        CREDENTIALS_DIRECTORY: "/run/c",
        AWS_SECRET_ACCESS_KEY: "z",
        HOME: "/root",
      }),
    ).toEqual(["AWS_SECRET_ACCESS_KEY", "CRM_API_TOKEN", "DB_PASSWORD"]);
  });

  it("shutdown: the context's signal ends the program and the delivery rejects with the signal's reason", async () => {
    const pidFile = path.join(dir, "slow.pid");
    const slow = script("slow.sh", `echo $$ > "${pidFile}"\nexec sleep 60`);
    const stop = new AbortController();
    const delivery = failureOf(handler([slow], { timeoutMs: 60_000 }).deliver(message, context({ signal: stop.signal })));
    await waitUntil(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "");
    const reason = new Error("daemon stopping");
    stop.abort(reason);
    expect(await delivery).toBe(reason);
    expect(isAlive(Number(readFileSync(pidFile, "utf8")))).toBe(false);
  });

  it("a missing program is retried (a setup problem, not the message's) and says what to check", async () => {
    const error = await failureOf(handler([path.join(dir, "no-such-program")]).deliver(message, context()));
    expect(isRetryable(error)).toBe(true);
    expect((error as MailfetchdError).message).toContain("could not be started (ENOENT)");
    expect((error as MailfetchdError).fix).toContain("must exist");
  });

  it("values read from files never reach an error reason, even when the program prints them", async () => {
    const apiKey = `key-${randomBytes(16).toString("hex")}`;
    const leak = script("leak.sh", 'echo "auth failed for $CRM_KEY" >&2\nexit 1');
    const error = await failureOf(handler([leak], { env: { CRM_KEY: apiKey }, secretValues: [apiKey] }).deliver(message, context()));
    expect((error as Error).message).toContain("auth failed for [redacted]");
    expect((error as Error).message).not.toContain(apiKey);
  });

  it("arguments are passed as given, never through a shell", async () => {
    const out = mkdtempSync(path.join(dir, "args-"));
    const args = script("args.sh", 'for a in "$@"; do printf "%s\\n" "$a"; done > "$OUT_DIR/args"');
    await handler([args, "$(touch pwned)", "a b", ";", "*"], { env: { OUT_DIR: out }, cwd: out }).deliver(message, context());
    expect(readFileSync(path.join(out, "args"), "utf8")).toBe("$(touch pwned)\na b\n;\n*\n");
    expect(existsSync(path.join(out, "pwned"))).toBe(false);
  });
});
