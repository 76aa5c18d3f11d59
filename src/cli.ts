#!/usr/bin/env node
/**
 * mailfetchd's command line: one place that registers every command (src/cli/*.ts) and turns
 * errors into a message and an exit code (src/cli/common.ts EXIT), never a stack trace.
 */
import { Command, CommanderError } from "commander";
import { registerDeadLetters } from "./cli/deadletters.js";
import { registerHealthcheck } from "./cli/healthcheck.js";
import { registerCheck } from "./cli/check.js";
import { registerKeygen } from "./cli/keygen.js";
import { registerLogin } from "./cli/login.js";
import { registerLogout } from "./cli/logout.js";
import { registerMigrate } from "./cli/migrate.js";
import { registerRun } from "./cli/run.js";
import { registerStatus } from "./cli/status.js";
import { EXIT } from "./cli/common.js";
import { packageVersion } from "./support/package-version.js";
import { ConfigError, describeError } from "./errors.js";

export function buildProgram(): Command {
  const program = new Command()
    .name("mailfetchd")
    .description("Fetches contact-centre queue mailboxes from Microsoft 365 (IMAP, delegated OAuth) and hands every message to the queue's handlers.")
    .version(packageVersion(), "-V, --version")
    .showHelpAfterError()
    .exitOverride();

  registerRun(program);
  registerKeygen(program);
  registerLogin(program);
  registerLogout(program);
  registerCheck(program);
  registerDeadLetters(program);
  registerStatus(program);
  registerHealthcheck(program);
  registerMigrate(program);
  program
    .command("version")
    .description("print the version")
    .action(() => {
      process.stdout.write(`${packageVersion()}\n`);
    });
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  } else {
    process.stderr.write(`mailfetchd: ${describeError(error)}\n`);
    process.exitCode = error instanceof ConfigError ? EXIT.CONFIG : EXIT.FAILURE;
  }
}
