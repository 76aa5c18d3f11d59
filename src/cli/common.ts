/** What every command shares: where the config comes from, exit codes, output helpers. */
import type { Command } from "commander";

/** Exit codes (also in README.md): */
export const EXIT = {
  OK: 0,
  /** A runtime failure, or `check` found a problem. */
  FAILURE: 1,
  /** Bad command-line usage. */
  USAGE: 2,
  /** EX_CONFIG: the config is invalid or unreadable. */
  CONFIG: 78,
} as const;

export const DEFAULT_CONFIG_PATH = "/etc/mailfetchd/config.yaml";

export function defaultConfigPath(): string {
  return process.env.MAILFETCHD_CONFIG ?? DEFAULT_CONFIG_PATH;
}

/** Adds the --config option the same way to every command that reads the config. */
export function withConfigOption(command: Command): Command {
  return command.option("-c, --config <file>", `config file (default: $MAILFETCHD_CONFIG, else ${DEFAULT_CONFIG_PATH})`);
}

export function configPathOf(options: { config?: string }): string {
  return options.config ?? defaultConfigPath();
}
