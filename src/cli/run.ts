/**
 * `mailfetchd run`: the daemon. Signals are handled here only: the first SIGTERM/SIGINT stops
 * gracefully, a second one forces, by re-raising the signal so the exit status is honest.
 */
import type { Command } from "commander";
import { Daemon } from "../app.js";
import { loadConfig } from "../config/load.js";
import { createLogger, SecretRegistry } from "../log.js";
import { configPathOf, withConfigOption } from "./common.js";

export function registerRun(program: Command): void {
  withConfigOption(program.command("run").description("run the daemon: fetch every configured queue on its schedule and deliver to its handlers")).action(
    async (options: { config?: string }) => {
      const config = loadConfig(configPathOf(options));
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
        void daemon.stop().then(() => logger.flush());
      };
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
      await daemon.start();
    },
  );
}
