/**
 * `mailfetchd deadletters list|show|retry|drop`: the messages a handler rejected for good, or
 * that could not be fetched (too large), with their reasons. Works while the daemon runs
 * (the state store is shared safely); a running daemon picks requeued messages up within
 * a minute (its deliverer looks at least that often).
 */
import type { Command } from "commander";
import { loadConfig } from "../config/load.js";
import { MailfetchdError } from "../errors.js";
import { readHeaders } from "../spool/stable-id.js";
import { Spool, type DeadLetter } from "../spool/spool.js";
import { openStateStore } from "../store/open-store.js";
import { configPathOf, withConfigOption } from "./common.js";

/** Runs `use` on the spool of the configured state store, closing it afterwards. */
async function withSpool<T>(options: { config?: string }, use: (spool: Spool) => T | Promise<T>): Promise<T> {
  const config = loadConfig(configPathOf(options));
  const store = openStateStore(config);
  try {
    return await use(new Spool(store, config.stateDir));
  } finally {
    await store.close();
  }
}

async function find(spool: Spool, id: string, queue?: string): Promise<DeadLetter[]> {
  const letters = (await spool.deadLetters(queue)).filter((l) => l.id === id);
  if (letters.length === 0) {
    throw new MailfetchdError(`No dead letter with id ${id}${queue ? ` in queue ${queue}` : ""}.`, {
      code: "NOT_FOUND",
      retryable: false,
      fix: "List them with `mailfetchd deadletters list`.",
    });
  }
  return letters;
}

export function registerDeadLetters(program: Command): void {
  const group = program.command("deadletters").description("list, show, retry or drop messages parked as dead letters");

  withConfigOption(group.command("list").description("one line per parked delivery (message id, queue, handler, reason)"))
    .option("-q, --queue <name>", "only this queue")
    .option("--json", "JSON instead of a table")
    .action((options: { config?: string; queue?: string; json?: boolean }) =>
      withSpool(options, async (spool) => {
        const letters = await spool.deadLetters(options.queue);
        if (options.json) {
          process.stdout.write(`${JSON.stringify(letters, null, 2)}\n`);
          return;
        }
        if (letters.length === 0) {
          process.stdout.write("No dead letters.\n");
          return;
        }
        for (const l of letters) {
          process.stdout.write(
            `${l.id}  ${l.queue}  ${l.handler}  ${l.source.uid === undefined ? `item ${l.source.item}` : `uid ${l.source.uid}`}  ${l.spooledAt.toISOString()}  ${l.reason}\n`,
          );
        }
      }),
    );

  withConfigOption(group.command("show <id>").description("a dead letter's reason, where it came from, and its headers"))
    .option("-q, --queue <name>", "the queue, if the id is in several")
    .action((id: string, options: { config?: string; queue?: string }) =>
      withSpool(options, async (spool) => {
        const letters = await find(spool, id, options.queue);
        const first = letters[0]!;
        const raw = await spool.readRaw(first.queue, first.spoolKey).catch(() => undefined);
        const headers = raw ? readHeaders(raw) : new Map<string, string>();
        const lines = [
          `id:          ${first.id}`,
          `queue:       ${first.queue}`,
          first.source.uid === undefined
            ? `source:      ${first.source.kind}, folder ${first.source.folder}, item ${first.source.item}`
            : `source:      folder ${first.source.folder}, UIDVALIDITY ${first.source.uidValidity}, UID ${first.source.uid}`,
          `size:        ${first.size} bytes${first.headersOnly ? " (too large: only headers kept)" : ""}`,
          `spooled at:  ${first.spooledAt.toISOString()}`,
          `message-id:  ${headers.get("message-id") ?? "-"}`,
          `from:        ${headers.get("from") ?? "-"}`,
          `subject:     ${headers.get("subject") ?? "-"}`,
          `date:        ${headers.get("date") ?? "-"}`,
          ...letters.map((l) => `handler ${l.handler}: after ${l.attempts} attempt(s): ${l.reason}`),
        ];
        // Headers are sender-controlled: strip control characters before they reach a terminal.
        process.stdout.write(`${lines.map((line) => line.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, "?")).join("\n")}\n`);
      }),
    );

  const decide = (
    verb: "retry" | "drop",
    description: string,
    act: (spool: Spool, queue: string, id: string, handler?: string) => Promise<number>,
    done: string,
  ) =>
    withConfigOption(group.command(`${verb} <id>`).description(description))
      .option("-q, --queue <name>", "the queue, if the id is in several")
      .option("--handler <name>", "only for this handler")
      .action((id: string, options: { config?: string; queue?: string; handler?: string }) =>
        withSpool(options, async (spool) => {
          const letters = await find(spool, id, options.queue);
          const count = await act(spool, letters[0]!.queue, id, options.handler);
          process.stdout.write(`${done} ${count} deliver${count === 1 ? "y" : "ies"} of ${id}.\n`);
        }),
      );
  decide(
    "retry",
    "deliver a dead letter again (a too-large one is fetched again)",
    (spool, queue, id, handler) => spool.retryDeadLetter(queue, id, handler),
    "Requeued",
  );
  decide(
    "drop",
    "give up on a dead letter for good (it stays in the spool, marked dropped)",
    (spool, queue, id, handler) => spool.dropDeadLetter(queue, id, handler),
    "Dropped",
  );
}
