/** `mailfetchd keygen`: a new key file for the token caches' encryption at rest. */
import type { Command } from "commander";
import { MailfetchdError } from "../errors.js";
import { writeNewKeyFile } from "../state/secret-box.js";

export function registerKeygen(program: Command): void {
  program
    .command("keygen")
    .description("write a new key file for the token caches' encryption (mode 0600; never overwrites a file)")
    .requiredOption("-o, --out <file>", "where to write the key")
    .option("--id <keyId>", "key id (default: k + today's date)")
    .action((options: { out: string; id?: string }) => {
      try {
        writeNewKeyFile(options.out, options.id);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        throw new MailfetchdError(`A file already exists at ${options.out}: keygen never overwrites a key, since the token caches need it to decrypt.`, {
          code: "CONFIG_INVALID",
          retryable: false,
          fix: "Choose another --out; to rotate, put the new key's line above the old one's in the key file.",
        });
      }
      process.stdout.write(
        `Wrote a new key to ${options.out}. Set state.keyFile to it. To rotate, put its line above the old key's line in the current key file.\n`,
      );
    });
}
