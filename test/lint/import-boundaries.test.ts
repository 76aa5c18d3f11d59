/**
 * The import boundaries of eslint.config.js (ARCHITECTURE.md, "Layers"), checked by linting
 * one import at a time as if it were written in a given file: each boundary refuses what
 * crosses it and lets through what the layering allows.
 */
import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";

const eslint = new ESLint();

async function boundaryErrors(file: string, specifier: string): Promise<string[]> {
  const [result] = await eslint.lintText(`import "${specifier}";\n`, { filePath: file });
  return result!.messages.filter((message) => message.ruleId === "no-restricted-imports").map((message) => message.message);
}

const REFUSED: Array<[string, string, string]> = [
  ["src/ imports nothing of tools/", "src/queue/poller.ts", "../../tools/testbed/test-bed.js"],
  ["src/ imports nothing of test/", "src/app.ts", "../test/spool/spool.test.js"],
  ["src/support/ imports nothing of the pipeline", "src/support/backoff.ts", "../log.js"],
  ["a shared file imports nothing of the pipeline", "src/errors.ts", "./queue/poller.js"],
  ["interfaces.ts imports only the source-neutral types it names", "src/interfaces.ts", "./source/mail-source.js"],
  ["the source port does not import the IMAP adapter", "src/source/mail-source.ts", "../imap/imap-source.js"],
  ["the source port does not import the queue", "src/source/spool-sink.ts", "../queue/poller.js"],
  ["the per-kind tables take only IMAP's encodings", "src/source/source-kinds.ts", "../imap/imap-source.js"],
  ["the pipeline does not import an adapter", "src/queue/poller.ts", "../imap/imap-source.js"],
  ["the pipeline does not import the Graph adapter", "src/http/operating-surface.ts", "../graph/graph-source.js"],
  ["the pipeline does not import a store adapter", "src/spool/spool.ts", "../store/sqlite/sqlite-store.js"],
  ["one store adapter does not import another", "src/store/postgres/pg-store.ts", "../sqlite/sqlite-store.js"],
  ["only the CLI imports the composition root", "src/http/operating-surface.ts", "../app.js"],
  ["only the CLI entry point imports the CLI", "src/queue/deliverer.ts", "../cli/common.js"],
  ["tools/ does not import test/", "tools/bench/run.ts", "../../test/spool/spool.test.js"],
];

const ALLOWED: Array<[string, string, string]> = [
  ["the composition root wires an adapter", "src/app.ts", "./imap/imap-source.js"],
  ["the CLI wires an adapter", "src/cli/check.ts", "../imap/imap-location.js"],
  ["a check step probes with its source's adapter", "src/check/imap-probe.ts", "../imap/imap-mailbox.js"],
  ["an adapter imports its own files", "src/imap/imap-source.ts", "./imap-location.js"],
  ["an adapter implements a port", "src/imap/imap-source.ts", "../source/mail-source.js"],
  ["the pipeline uses the shared files and support/", "src/queue/poller.ts", "../support/backoff.js"],
  ["a shared file uses another", "src/log.ts", "./errors.js"],
  ["support/ uses support/", "src/support/listen-address.ts", "./backoff.js"],
  ["the per-kind tables decode IMAP's item", "src/source/source-kinds.ts", "../imap/imap-location.js"],
  ["the tools use the daemon", "tools/demo/demo.ts", "../../src/app.js"],
  ["a test uses the tools and an adapter", "test/imap/imap-source.test.ts", "../../tools/testbed/test-bed.js"],
];

describe("import boundaries (eslint.config.js)", () => {
  it.each(REFUSED)("refuses: %s (%s imports %s)", async (_why, file, specifier) => {
    expect(await boundaryErrors(file, specifier)).toHaveLength(1);
  });

  it.each(ALLOWED)("allows: %s (%s imports %s)", async (_why, file, specifier) => {
    expect(await boundaryErrors(file, specifier)).toEqual([]);
  });
});
