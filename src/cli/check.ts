/**
 * `mailfetchd check`: validates the config, then walks each queue's chain (identity endpoint,
 * tenant, app, public client flows, consent, sign-in, token audience, IMAP login, folder),
 * printing one line per step. Exit 0 when every step passed, 1 otherwise (a bad config too).
 * Uses and updates the stored sign-in like the daemon; never prints a token.
 */
import type { Command } from "commander";
import { checkQueue, type StepResult } from "../check/check-chain.js";
import { loadConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { describeError } from "../errors.js";
import { openStateStore } from "../store/open-store.js";
import { SecretBox } from "../state/secret-box.js";
import { ConcurrencyLimiter } from "../tokens/identity-http-client.js";
import { TokenCacheStore } from "../tokens/token-cache-store.js";
import { configPathOf, EXIT, withConfigOption } from "./common.js";
import { commandLogger } from "./queue-command.js";

export function registerCheck(program: Command): void {
  withConfigOption(
    program
      .command("check")
      .option("-q, --queue <name>", "check only this queue")
      .description("check the config and, per queue, every link from the identity endpoint to the IMAP folder; exit 1 on any failure"),
  ).action(async (options: { config?: string; queue?: string }) => {
    const file = configPathOf(options);
    let config: Config;
    try {
      config = loadConfig(file);
    } catch (error) {
      line({ step: "config valid", status: "fail", detail: describeError(error) });
      process.exitCode = EXIT.FAILURE;
      return;
    }
    const queues = config.queues.filter((q) => options.queue === undefined || q.name === options.queue);
    if (queues.length === 0) {
      line({
        step: "config valid",
        status: "fail",
        detail: `no queue named '${options.queue}'; the config has ${config.queues.map((q) => q.name).join(", ")}`,
      });
      process.exitCode = EXIT.FAILURE;
      return;
    }
    line({ step: "config valid", status: "pass", detail: `${file} (${config.queues.length} queue${config.queues.length === 1 ? "" : "s"})` });

    let box: SecretBox;
    try {
      box = SecretBox.fromFile(config.keyFile);
    } catch (error) {
      line({ step: "token cache key readable", status: "fail", detail: describeError(error) });
      process.exitCode = EXIT.FAILURE;
      return;
    }
    line({ step: "token cache key readable", status: "pass", detail: `${config.keyFile} (encrypting key ${box.activeKeyId})` });

    const state = openStateStore(config);
    let allPassed = true;
    try {
      const store = new TokenCacheStore(state.tokenCaches, box);
      const logger = commandLogger(config);
      const limiter = new ConcurrencyLimiter(1);
      for (const queue of queues) {
        const passed = await checkQueue({ queue, store, limiter, logger, report: (result) => line(result, queue.name) });
        allPassed &&= passed;
      }
    } finally {
      await state.close();
    }
    process.exitCode = allPassed ? EXIT.OK : EXIT.FAILURE;
  });
}

function line(result: StepResult, queue?: string): void {
  const label = { pass: "PASS", fail: "FAIL", skip: "SKIP" }[result.status];
  const where = queue === undefined ? "" : `[${queue}] `;
  const detail = result.detail ? `: ${result.detail.replace(/\s*\n\s*/g, " ")}` : "";
  const fix = result.fix ? ` Fix: ${result.fix}` : "";
  process.stdout.write(`${label}  ${where}${result.step}${detail}${fix}\n`);
}
