/**
 * Sender-written metadata through every handler that copies it somewhere size-limited, with
 * the real daemon: a webhook to a real receiver with node:http's usual 16 KB header limit
 * (which answers 431 above it), a command handler (environment variables) and the directory
 * handler. Message-IDs, subjects and From addresses of 20 KB to 100 KB must be delivered to
 * all three, none dead-lettered, and no header or variable above the bound sent. The other
 * new classes of issue 13 (symlinks, secret file modes, log scrubbing, the HTTP surface,
 * clear text, config) are covered where they live; RELIABILITY.md lists them. Run once per
 * mail source (IMAP through Dovecot, Graph through the stand-in).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { METADATA_VALUE_MAX_BYTES } from "../../src/handlers/metadata-bounds.js";
import type { TestBed } from "../../tools/testbed/test-bed.js";
import { CLI, DaemonProcess } from "../../tools/testbed/helpers/daemon-process.js";
import { startOneQueueBed } from "../../tools/testbed/helpers/one-queue-bed.js";
import { WebhookReceiver } from "../../tools/testbed/helpers/webhook-receiver.js";
import { MAIL_SOURCES, putRawMessage, type MailSourceKind } from "../../tools/testbed/helpers/mail-source.js";
import { recordFigures } from "./figures.js";

const QUEUE = { name: "metadata", address: "metadata@example.test", password: "metadata-password-1" };

function message(n: number, headers: { messageId?: string; subject?: string; from?: string }): Buffer {
  return Buffer.from(
    [
      `Message-ID: ${headers.messageId ?? `<ordinary-${n}@example.test>`}`,
      `Date: Wed, 20 May 2026 10:00:${String(n).padStart(2, "0")} +0000`,
      `From: ${headers.from ?? "Customer <customer@example.test>"}`,
      `To: ${QUEUE.address}`,
      `Subject: ${headers.subject ?? `ordinary ${n}`}`,
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=utf-8",
      "",
      `body ${n}`,
      "",
    ].join("\r\n"),
  );
}

/** A header value folded into lines of at most 78 characters, as a sender's software would write it. */
const folded = (text: string) => text.match(/.{1,70}/g)!.join("\r\n ");

const CASES = [
  { klass: "ordinary metadata", raw: message(1, {}) },
  { klass: "20 KB Message-ID", raw: message(2, { messageId: `<${"a".repeat(20_000)}@example.test>` }) },
  { klass: "100 KB Message-ID", raw: message(3, { messageId: `<${"b".repeat(100_000)}@example.test>` }) },
  { klass: "20 KB subject (folded)", raw: message(4, { subject: folded("s".repeat(20_000)) }) },
  {
    klass: "100 KB subject of encoded-words",
    raw: message(5, { subject: folded(Array.from({ length: 2_000 }, () => "=?UTF-8?B?w7zDtsOkw5/DvMO2w6TDn8O8w7bDpMOf?=").join(" ")) }),
  },
  { klass: "20 KB From address", raw: message(6, { from: `<${"f".repeat(20_000)}@example.test>` }) },
  { klass: "Message-ID just under the bound", raw: message(7, { messageId: `<${"c".repeat(METADATA_VALUE_MAX_BYTES - 15)}@example.test>` }) },
];

describe.each(MAIL_SOURCES)("hostile metadata over %s", (source: MailSourceKind) => {
  const imap = source === "imap";
  let bed: TestBed;
  let configFile: string;
  let outDir: string;
  let receiver: WebhookReceiver;
  let envDir: string;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    envDir = mkdtempSync(path.join(tmpdir(), "mailfetchd-metadata-env-"));
    const recorder = path.join(envDir, "record-env.sh");
    // Named by how the source names the message: the UID over IMAP, the item (immutable id) over Graph.
    writeFileSync(recorder, `#!/bin/sh\nenv -0 > "${envDir}/$${imap ? "MAILFETCHD_UID" : "MAILFETCHD_ITEM"}.env"\n`);
    chmodSync(recorder, 0o755);
    ({ bed, configFile, outDir } = await startOneQueueBed(QUEUE, {
      poll: "1s",
      source,
      options: imap ? { idle: false } : {},
      moreHandlers: () => [
        { type: "webhook", url: receiver.url() },
        { type: "command", command: [recorder] },
      ],
    }));
  });

  afterAll(async () => {
    await receiver?.close();
    await bed?.close();
    rmSync(envDir, { recursive: true, force: true });
  });

  it(
    "delivers every message to the webhook, the command and the directory; none dead-lettered; nothing above the bound in a header or variable",
    { timeout: 180_000 },
    async () => {
      // How the source names each case: the UID over IMAP, the immutable id over Graph.
      const keys: string[] = [];
      for (const c of CASES) keys.push(await putRawMessage(bed, source, QUEUE.address, c.raw));
      const keyHeader = imap ? "x-mailfetchd-uid" : "x-mailfetchd-item";
      const daemon = new DaemonProcess(configFile);
      daemon.start();
      const queueDir = path.join(outDir, QUEUE.name);
      const deliveredDirs = () => (existsSync(queueDir) ? readdirSync(queueDir).filter((n) => !n.startsWith(".")) : []);
      const envFiles = () => readdirSync(envDir).filter((n) => n.endsWith(".env"));
      const backlog = () => {
        const result = spawnSync(process.execPath, [CLI, "status", "--json", "--config", configFile], { encoding: "utf8" });
        return (JSON.parse(result.stdout) as { queues: Array<{ backlog: number }> }).queues[0]!.backlog;
      };
      await daemon.waitFor(
        "every message through all three handlers",
        () =>
          deliveredDirs().length === CASES.length &&
          envFiles().length === CASES.length &&
          receiver.requests.filter((r) => r.headers[keyHeader]).length >= CASES.length &&
          backlog() === 0,
        120_000,
      );
      expect(await daemon.stop()).toEqual({ code: 0, signal: null });

      const deadLetters = JSON.parse(
        execFileSync(process.execPath, [CLI, "deadletters", "list", "--json", "--config", configFile], { encoding: "utf8" }),
      ) as unknown[];
      expect(deadLetters).toEqual([]);
      const rows = CASES.map((c, index) => {
        const key = keys[index]!;
        const requests = receiver.requests.filter((r) => r.headers[keyHeader] === key);
        const accepted = requests.length;
        const longestHeader = Math.max(
          ...requests.flatMap((r) =>
            Object.entries(r.headers)
              .filter(([name]) => name.startsWith("x-mailfetchd-"))
              .map(([, v]) => String(v).length),
          ),
        );
        const env = readFileSync(path.join(envDir, `${key}.env`), "utf8")
          .split("\0")
          .filter((e) => e.startsWith("MAILFETCHD_"));
        const longestVariable = Math.max(...env.map((e) => Buffer.byteLength(e.slice(e.indexOf("=") + 1))));
        expect(longestHeader, c.klass).toBeLessThanOrEqual(METADATA_VALUE_MAX_BYTES);
        expect(longestVariable, c.klass).toBeLessThanOrEqual(METADATA_VALUE_MAX_BYTES);
        expect(accepted, c.klass).toBe(1);
        const omitted = String(requests[0]!.headers["x-mailfetchd-omitted"] ?? "none");
        return {
          class: c.klass,
          messages: 1,
          webhook: accepted,
          command: 1,
          directory: 1,
          deadLettered: 0,
          longestHeaderBytes: longestHeader,
          longestVariableBytes: longestVariable,
          omitted,
        };
      });
      recordFigures("hostile-network", rows, source);
    },
  );
});
