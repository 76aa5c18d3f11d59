/**
 * `mailfetchd login QUEUE`: signs a queue in with the device code flow. Prints Microsoft's
 * instructions (URL and code), waits for the person to sign in, and stores the encrypted token
 * cache. A running daemon notices the new sign-in within seconds; no restart.
 */
import type { Command } from "commander";
import { loadConfig } from "../config/load.js";
import { openStateStore } from "../store/open-store.js";
import { SecretBox } from "../state/secret-box.js";
import { signInWithDeviceCode } from "../tokens/device-code-sign-in.js";
import { ConcurrencyLimiter } from "../tokens/identity-http-client.js";
import { TokenCacheStore } from "../tokens/token-cache-store.js";
import { configPathOf, withConfigOption } from "./common.js";
import { commandLogger, findQueue } from "./queue-command.js";

export function registerLogin(program: Command): void {
  withConfigOption(
    program
      .command("login")
      .argument("<queue>", "the queue's name in the config")
      .description("sign a queue in with the device code flow (works with MFA): prints a URL and a code to enter there, then stores the sign-in"),
  ).action(async (queueName: string, options: { config?: string }) => {
    const config = loadConfig(configPathOf(options));
    const queue = findQueue(config, queueName);
    if (!queue) return;
    // Before the sign-in, so a missing key is reported before anyone types a code.
    const box = SecretBox.fromFile(config.keyFile);
    const state = openStateStore(config);
    try {
      const store = new TokenCacheStore(state.tokenCaches, box);
      process.stdout.write(`Signing in queue ${queue.name} (mailbox ${queue.address}). Sign in as ${queue.signIn.user}.\n`);
      const signedIn = await signInWithDeviceCode({
        queue,
        store,
        limiter: new ConcurrencyLimiter(1),
        logger: commandLogger(config),
        onPrompt: (message) => process.stdout.write(`${message}\n`),
      });
      process.stdout.write(
        `Signed in as ${signedIn.username}. The sign-in of queue ${queue.name} is stored, encrypted; a running daemon uses it within seconds.\n`,
      );
      if (signedIn.username.toLowerCase() !== queue.signIn.user) {
        process.stdout.write(
          `Note: the config names ${queue.signIn.user} as the sign-in user (signIn.user). mailfetchd uses the sign-in of ${signedIn.username}; it opens the mailbox ${queue.address} only if that user has Full Access to it. Set signIn.user to ${signedIn.username}, or run login again as ${queue.signIn.user}.\n`,
        );
      }
    } finally {
      await state.close();
    }
  });
}
