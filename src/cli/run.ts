/**
 * `mailfetchd run`: the daemon. Signals are handled here only: the first SIGTERM/SIGINT stops
 * gracefully, a second one forces, by re-raising the signal so the exit status is honest.
 * SIGHUP reloads the config file; a config that does not validate is refused with its errors
 * logged, and the daemon goes on with the one it has.
 */
import type { Command } from "commander";
import { Daemon } from "../app.js";
import { loadConfig } from "../config/load.js";
import { describeError } from "../errors.js";
import { createLogger, SecretRegistry } from "../log.js";
import { configPathOf, withConfigOption } from "./common.js";

export function registerRun(program: Command): void {
  withConfigOption(program.command("run").description("run the daemon: fetch every configured queue on its schedule and deliver to its handlers")).action(
    async (options: { config?: string }) => {
      const configFile = configPathOf(options);
      const config = loadConfig(configFile);
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
      process.on("SIGHUP", () => {
        let next;
        try {
          next = loadConfig(configFile);
        } catch (error) {
          logger.error({ reason: describeError(error) }, "config not reloaded: the file does not validate; going on with the current config");
          return;
        }
        daemon.reload(next).catch((error: unknown) => logger.error({ err: error }, "config reload failed"));
      });
      await daemon.start();
    },
  );
}
