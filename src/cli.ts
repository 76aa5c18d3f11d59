#!/usr/bin/env node
/**
 * The command line. Signals are handled here only: the first SIGTERM/SIGINT stops gracefully,
 * a second one forces, by re-raising the signal so the exit status says what happened.
 *
 * Exit codes: 0 ok; 1 runtime failure; 2 bad usage; 78 (EX_CONFIG) bad configuration.
 */
import { Command, CommanderError } from "commander";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Daemon } from "./app.js";
import { loadConfig } from "./config/load.js";
import { ConfigError, describeError } from "./errors.js";
import { createLogger, SecretRegistry } from "./log.js";
import { writeNewKeyFile } from "./state/secret-box.js";

const EXIT_CONFIG = 78;
export const DEFAULT_CONFIG = process.env.MAILFETCHD_CONFIG ?? "/etc/mailfetchd/config.yaml";

function version(): string {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL("../package.json", import.meta.url)), "utf8")) as { version: string };
  return pkg.version;
}

async function run(options: { config: string }): Promise<void> {
  const config = loadConfig(options.config);
  const secrets = new SecretRegistry();
  const logger = createLogger({ level: config.logLevel, secrets });
  const daemon = new Daemon(config, logger, secrets);

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, "second signal: stopping now");
      logger.flush();
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      return;
    }
    logger.info({ signal }, "stopping");
    void daemon.stop().then(() => {
      logger.flush();
      process.exitCode = 0;
    });
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  daemon.start();
}

export function buildProgram(): Command {
  const program = new Command()
    .name("mailfetchd")
    .description("Fetches contact-centre queue mailboxes from Microsoft 365 (IMAP, delegated OAuth) and hands every message to the queue's handlers.")
    .version(version(), "-V, --version")
    .showHelpAfterError()
    .exitOverride();

  program
    .command("run")
    .description("run the daemon: fetch every configured queue on its schedule and deliver to its handlers")
    .option("-c, --config <file>", "config file (env MAILFETCHD_CONFIG)", DEFAULT_CONFIG)
    .action(run);

  program
    .command("keygen")
    .description("write a new key file for the token caches' encryption (0600; never overwrites)")
    .requiredOption("-o, --out <file>", "where to write the key")
    .action((options: { out: string }) => {
      writeNewKeyFile(options.out);
      process.stdout.write(`wrote a new key to ${options.out}; set state.keyFile to it\n`);
    });

  program
    .command("version")
    .description("print the version")
    .action(() => {
      process.stdout.write(`${version()}\n`);
    });

  return program;
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? 0 : 2;
      return;
    }
    process.stderr.write(`mailfetchd: ${describeError(error)}\n`);
    process.exitCode = error instanceof ConfigError ? EXIT_CONFIG : 1;
  }
}

await main(process.argv);
