/** Daemon.start() and stop() are idempotent and safe to call concurrently (pg-boss's rule). */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { Daemon } from "../src/app.js";
import { parseConfig } from "../src/config/load.js";
import { createLogger, SecretRegistry } from "../src/log.js";
import { writeNewKeyFile } from "../src/state/secret-box.js";

const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-lifecycle-"));
writeNewKeyFile(path.join(dir, "key"));

// A queue whose server is on a loopback port nobody listens on: its pipeline starts, its
// fetches fail and back off; nothing here waits for mail.
const CONFIG = `
state: { dir: ./state, keyFile: ./key }
identity: { tenantId: 11111111-2222-3333-4444-555555555555, clientId: 66666666-7777-8888-9999-000000000000 }
imap: { host: 127.0.0.1, port: 1, tls: false }
queues:
  - name: support
    address: support@contoso.com
    idle: false
    poll: 1h
    handlers:
      - type: directory
        path: ./out
`;

describe("Daemon lifecycle", () => {
  it("starts once however often and however concurrently start() is called, and stops once", async () => {
    const lines: string[] = [];
    const secrets = new SecretRegistry();
    const logger = createLogger({ level: "info", secrets, destination: { write: (line: string) => void lines.push(line) } });
    const daemon = new Daemon(parseConfig(CONFIG, path.join(dir, "config.yaml")), logger, secrets);
    await Promise.all([daemon.start(), daemon.start()]);
    await daemon.start();
    await Promise.all([daemon.stop(), daemon.stop()]);
    const messages = lines.map((line) => (JSON.parse(line) as { msg: string }).msg);
    expect(messages.filter((msg) => msg === "mailfetchd started")).toHaveLength(1);
  });
});
