/** Worker thread of the fetch + parse ceiling: plain mailparser (simpleParser, its defaults), nothing else. */
import { simpleParser } from "mailparser";
import { parentPort } from "node:worker_threads";

parentPort?.on("message", (raw: Uint8Array) => {
  simpleParser(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)).then(
    (mail) => parentPort?.postMessage({ attachments: mail.attachments.length }),
    (error: unknown) => parentPort?.postMessage({ error: String(error) }),
  );
});
