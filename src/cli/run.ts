/**
 * `mailfetchd run`: the daemon. Signals are handled here only: the first SIGTERM/SIGINT stops
 * gracefully, a second one forces, by re-raising the signal so the exit status is honest.
 * SIGHUP reloads the config file; a config that does not validate is refused with its errors
 * logged, and the daemon goes on with the one it has.
 */
import type { Command } from "commander";
import { Daemon } from "../app.js";
import { loadConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { describeError } from "../errors.js";
import { credentialLikeVariables } from "../handlers/command-environment.js";
import type { Logger } from "../interfaces.js";
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
      warnAboutCredentialsInEnvironment(config, logger);

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

/** The one place a command handler's program could find the daemon's start environment; say so once, by name only. */
function warnAboutCredentialsInEnvironment(config: Config, logger: Logger): void {
  const sameUser = config.queues.flatMap((q) => q.handlers).filter((h) => h.type === "command" && h.uid === undefined);
  const variables = credentialLikeVariables(process.env);
  if (sameUser.length === 0 || variables.length === 0) return;
  logger.warn(
    { variables },
    "the daemon's environment holds variables named like credentials, and command handler programs running as the daemon's user can read it (/proc/<pid>/environ): start the daemon without them (secrets go in files), or give the command handlers a uid and gid",
  );
}
