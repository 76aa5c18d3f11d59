/**
 * `npm run demo`: mailfetchd's main job on the embedded default, for a newcomer without a
 * Microsoft 365 tenant. It starts the local test bed (a real Dovecot speaking XOAUTH2, the
 * project's stand-ins for the Microsoft identity platform and for Microsoft Graph), puts sample
 * mail in a queue mailbox, runs the daemon until every message is delivered by the directory
 * handler, and shows what an agent's system receives. `npm run demo -- --source graph` fetches
 * the queue over Microsoft Graph instead of IMAP.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { Daemon } from "../../src/app.js";
import { loadConfig } from "../../src/config/load.js";
import { createLogger, SecretRegistry } from "../../src/log.js";
import { sampleMessages } from "../testbed/sample-messages.js";
import { startTestBed } from "../testbed/test-bed.js";

const QUEUE = { name: "support", address: "support@demo.example", password: "demo-password-1" };
const COUNT = 8;
const workDir = path.resolve(process.env.MAILFETCHD_DEMO_DIR ?? ".demo");
const sourceArgument = process.argv.indexOf("--source");
const source = sourceArgument >= 0 ? process.argv[sourceArgument + 1] : "imap";
if (source !== "imap" && source !== "graph") {
  console.error(`--source ${source ?? ""}: write imap (the default) or graph`);
  process.exit(2);
}

async function main(): Promise<void> {
  rmSync(workDir, { recursive: true, force: true });
  console.log("Starting the local test bed (Dovecot, identity and Graph stand-ins)...");
  const bed = await startTestBed({ dir: workDir });
  try {
    bed.identity.addUser({ username: QUEUE.address, password: QUEUE.password });
    bed.graph.addMailbox(QUEUE.address);
    const outDir = path.join(workDir, "out");
    const configFile = bed.writeDaemonConfig({
      stateDir: path.join(workDir, "state"),
      logLevel: "warn",
      poll: "1s",
      queues: [{ ...QUEUE, options: { source }, handlers: [{ type: "directory", path: outDir }] }],
    });
    for (const message of sampleMessages(COUNT, { seed: "demo", to: QUEUE.address })) {
      if (source === "graph") bed.graph.putMessage(QUEUE.address, "inbox", message.raw);
      else await bed.dovecot.deliver(QUEUE.address, message.raw);
    }
    console.log(`Put ${COUNT} sample messages in ${QUEUE.address} (source: ${source}). Running mailfetchd with ${path.relative(process.cwd(), configFile)}...`);

    const config = loadConfig(configFile);
    const secrets = new SecretRegistry();
    const daemon = new Daemon(config, createLogger({ level: config.logLevel, secrets }), secrets);
    await daemon.start();
    const queueOut = path.join(outDir, QUEUE.name);
    const delivered = () => (existsSync(queueOut) ? readdirSync(queueOut).filter((n) => !n.startsWith(".")) : []);
    const deadline = Date.now() + 60_000;
    while (delivered().length < COUNT && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    await daemon.stop();

    const ids = delivered();
    console.log(`\nDelivered ${ids.length} of ${COUNT} messages to ${path.relative(process.cwd(), queueOut)}/<id>/:`);
    for (const id of ids) {
      const doc = JSON.parse(readFileSync(path.join(queueOut, id, "message.json"), "utf8")) as {
        subject: string | null;
        from: Array<{ address: string }>;
        attachments: Array<{ filename: string }>;
      };
      const attachments = doc.attachments.length ? `  [${doc.attachments.map((a) => a.filename).join(", ")}]` : "";
      console.log(`  ${id}  ${doc.from[0]?.address ?? "?"}  ${doc.subject ?? "(no subject)"}${attachments}`);
    }
    console.log(`\nEach folder holds message.eml (raw), message.json (parsed) and attachments/.`);
    console.log(`To fetch a real Microsoft 365 queue mailbox, copy config/example.yaml, fill in the tenant and`);
    console.log(`client IDs and the mailbox, and run: mailfetchd run --config your.yaml (see README.md).`);
    if (ids.length !== COUNT) process.exitCode = 1;
  } finally {
    await bed.dovecot.close();
    await bed.identity.close();
    await bed.graph.close();
  }
}

await main();
