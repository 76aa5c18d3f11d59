/**
 * Encryption at rest for token caches: AES-256-GCM under a key read from a file (a systemd
 * credential or a Docker secret), never stored beside the data it protects.
 *
 * Key file: one key per line, `mfk1:<key id>:<32 bytes, base64>`. The first line encrypts;
 * every line decrypts, so a key is rotated by putting a new first line above the old one and
 * letting the daemon re-seal each cache on its next write.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { readSecretFile } from "../config/secret-file.js";
import { ConfigError, MailfetchdError } from "../errors.js";

const KEY_LINE = /^mfk1:([A-Za-z0-9_-]{1,32}):([A-Za-z0-9+/]{43}=)$/;

export interface Sealed {
  readonly keyId: string;
  /** 12-byte IV, 16-byte tag, then the ciphertext. */
  readonly data: Buffer;
}

export class SecretBox {
  private constructor(
    private readonly keys: ReadonlyMap<string, Buffer>,
    readonly activeKeyId: string,
  ) {}

  static fromFile(file: string): SecretBox {
    const read = readSecretFile(file);
    if ("problem" in read) {
      if (read.code === "MODE") throw new ConfigError(`The key file ${read.problem}`, "SECRET_UNREADABLE");
      throw new ConfigError(
        `Cannot read the key file ${file} (${read.code}): the token caches are encrypted with it. Create one with \`mailfetchd keygen --out ${file}\` and set state.keyFile to it.`,
        "SECRET_UNREADABLE",
      );
    }
    const text = read.text;
    const keys = new Map<string, Buffer>();
    let active: string | undefined;
    for (const [index, line] of text.split(/\r?\n/).entries()) {
      const trimmed = line.trim();
      if (!trimmed || trimmed.startsWith("#")) continue;
      const match = KEY_LINE.exec(trimmed);
      if (!match) {
        throw new ConfigError(`The key file ${file} line ${index + 1} is not a mailfetchd key: write keys with \`mailfetchd keygen\`.`, "SECRET_UNREADABLE");
      }
      keys.set(match[1]!, Buffer.from(match[2]!, "base64"));
      active ??= match[1]!;
    }
    if (!active) throw new ConfigError(`The key file ${file} holds no key: write one with \`mailfetchd keygen --out ${file}\`.`, "SECRET_UNREADABLE");
    return new SecretBox(keys, active);
  }

  seal(plaintext: Buffer, associatedData: string): Sealed {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.keys.get(this.activeKeyId)!, iv);
    // Binding the row's identity (the queue) means a sealed cache cannot be swapped between queues.
    cipher.setAAD(Buffer.from(associatedData, "utf8"));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return { keyId: this.activeKeyId, data: Buffer.concat([iv, cipher.getAuthTag(), body]) };
  }

  open(sealed: Sealed, associatedData: string): Buffer {
    const key = this.keys.get(sealed.keyId);
    if (!key) {
      throw new MailfetchdError(`A token cache is sealed with key '${sealed.keyId}', which the key file does not hold.`, {
        code: "SECRET_UNREADABLE",
        retryable: false,
        fix: "Put the old key back as a later line of the key file (keep the new key first), or sign the queue in again.",
      });
    }
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, sealed.data.subarray(0, 12));
      decipher.setAuthTag(sealed.data.subarray(12, 28));
      decipher.setAAD(Buffer.from(associatedData, "utf8"));
      return Buffer.concat([decipher.update(sealed.data.subarray(28)), decipher.final()]);
    } catch (cause) {
      throw new MailfetchdError(`A token cache sealed with key '${sealed.keyId}' does not decrypt: the key or the data has changed.`, {
        code: "SECRET_UNREADABLE",
        retryable: false,
        fix: "Restore the right key file, or sign the queue in again.",
        cause,
      });
    }
  }
}

/** A new key line; the file is created 0600 and never overwritten. */
export function writeNewKeyFile(file: string, keyId = `k${new Date().toISOString().slice(0, 10).replace(/-/g, "")}`): void {
  const line = `mfk1:${keyId}:${randomBytes(32).toString("base64")}\n`;
  writeFileSync(file, line, { mode: 0o600, flag: "wx" });
}
