import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, MailfetchdError } from "../../src/errors.js";
import { SecretBox, writeNewKeyFile } from "../../src/state/secret-box.js";

const dir = mkdtempSync(path.join(tmpdir(), "mailfetchd-key-"));

describe("secret box", () => {
  it("writes a 0600 key file, never overwriting one", () => {
    const file = path.join(dir, "a.key");
    writeNewKeyFile(file, "one");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).toMatch(/^mfk1:one:[A-Za-z0-9+/]{43}=\n$/);
    expect(() => writeNewKeyFile(file)).toThrow(/EEXIST/);
  });

  it("seals and opens, binds the associated data, and rotates keys", () => {
    const oldFile = path.join(dir, "old.key");
    writeNewKeyFile(oldFile, "old");
    const old = SecretBox.fromFile(oldFile);
    const sealed = old.seal(Buffer.from("refresh-token-value"), "queue-a");
    expect(sealed.data.includes(Buffer.from("refresh-token-value"))).toBe(false);
    expect(old.open(sealed, "queue-a").toString()).toBe("refresh-token-value");
    expect(() => old.open(sealed, "queue-b")).toThrow(MailfetchdError);

    const newFile = path.join(dir, "new.key");
    writeNewKeyFile(newFile, "new");
    const rotatedFile = path.join(dir, "rotated.key");
    writeFileSync(rotatedFile, readFileSync(newFile, "utf8") + readFileSync(oldFile, "utf8"), { mode: 0o600 });
    const rotated = SecretBox.fromFile(rotatedFile);
    expect(rotated.activeKeyId).toBe("new");
    expect(rotated.open(sealed, "queue-a").toString()).toBe("refresh-token-value");
    expect(rotated.seal(Buffer.from("x"), "q").keyId).toBe("new");
    expect(() => SecretBox.fromFile(newFile).open(sealed, "queue-a")).toThrow(/key 'old', which the key file does not hold/);
  });

  it("refuses a missing or malformed key file with the command that fixes it", () => {
    expect(() => SecretBox.fromFile(path.join(dir, "missing"))).toThrow(ConfigError);
    expect(() => SecretBox.fromFile(path.join(dir, "missing"))).toThrow(/mailfetchd keygen --out/);
    const bad = path.join(dir, "bad.key");
    writeFileSync(bad, "hunter2\n", { mode: 0o600 });
    expect(() => SecretBox.fromFile(bad)).toThrow(/line 1 is not a mailfetchd key/);
  });

  it("refuses a key file readable by group or others, with the exact chmod", () => {
    const file = path.join(dir, "open.key");
    writeNewKeyFile(file);
    for (const mode of [0o644, 0o666, 0o604]) {
      chmodSync(file, mode);
      expect(() => SecretBox.fromFile(file)).toThrow(ConfigError);
      expect(() => SecretBox.fromFile(file)).toThrow(`run \`chmod 600 ${file}\``);
    }
    chmodSync(file, 0o400);
    expect(SecretBox.fromFile(file).activeKeyId).toMatch(/^k\d{8}$/);
  });
});
