/** A test bed with one queue mailbox signed in by password and a config for the daemon. */
import path from "node:path";
import { startTestBed, type TestBed } from "../test-bed.js";
import { prepareMailbox, sourceOptions, type MailSourceKind } from "./mail-source.js";

export interface OneQueueBed {
  readonly bed: TestBed;
  readonly configFile: string;
  /** Where the queue's directory handler writes. */
  readonly outDir: string;
}

export async function startOneQueueBed(
  queue: { readonly name: string; readonly address: string; readonly password: string },
  config: {
    readonly poll: string;
    /** Where the queue's mail comes from: IMAP (Dovecot, the default) or Graph (the stand-in). */
    readonly source?: MailSourceKind;
    /** Other queue keys (idle, afterSpool, ...). */
    readonly options?: Readonly<Record<string, unknown>>;
    /** Handlers besides the directory handler writing to outDir. */
    readonly moreHandlers?: (bed: TestBed) => ReadonlyArray<Record<string, unknown>>;
  },
): Promise<OneQueueBed> {
  const bed = await startTestBed();
  bed.identity.addUser({ username: queue.address, password: queue.password });
  const source = config.source ?? "imap";
  await prepareMailbox(bed, source, queue.address);
  const outDir = path.join(bed.dir, "out");
  const configFile = bed.writeDaemonConfig({
    stateDir: path.join(bed.dir, "state"),
    logLevel: "debug",
    poll: config.poll,
    queues: [
      {
        ...queue,
        options: { ...sourceOptions(source), ...config.options },
        handlers: [{ type: "directory", path: outDir }, ...(config.moreHandlers?.(bed) ?? [])],
      },
    ],
  });
  return { bed, configFile, outDir };
}
