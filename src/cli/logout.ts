/**
 * `mailfetchd logout QUEUE`: removes a queue's stored sign-in (its token cache). Needs no key,
 * so it also clears a cache whose key is lost. A running daemon forgets the sign-in at its
 * next token request.
 */
import type { Command } from "commander";
import { loadConfig } from "../config/load.js";
import { openStateStore } from "../store/open-store.js";
import { configPathOf, withConfigOption } from "./common.js";

export function registerLogout(program: Command): void {
  withConfigOption(program.command("logout").argument("<queue>", "the queue's name").description("remove a queue's stored sign-in (token cache)")).action(
    async (queueName: string, options: { config?: string }) => {
      const config = loadConfig(configPathOf(options));
      const queue = config.queues.find((q) => q.name === queueName);
      // No key needed: the row is removed as it is, sealed.
      const state = openStateStore(config);
      try {
        const removed = await state.tokenCaches.remove(queueName);
        process.stdout.write(removed ? `Removed the stored sign-in of queue ${queueName}.\n` : `Queue ${queueName} had no stored sign-in.\n`);
        if (!queue) {
          process.stdout.write(`Note: the config has no queue named '${queueName}'.\n`);
        } else if (queue.signIn.password !== undefined) {
          process.stdout.write(
            `Note: signIn.passwordFile is set for ${queueName}, so the daemon signs in again with the password. Remove signIn.passwordFile from the config to keep the queue signed out.\n`,
          );
        } else {
          process.stdout.write(`The daemon waits in needs-sign-in for this queue until \`mailfetchd login ${queueName}\`.\n`);
        }
      } finally {
        await state.close();
      }
    },
  );
}
