/** Looks for any known secret in files: what a leak test needs, and nothing more. */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

export function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? listFiles(full) : [full];
  });
}

/** Each (file, secret prefix) where a secret's bytes appear, in UTF-8, base64 or UTF-16. */
export function scanForSecrets(files: string[], secrets: string[]): string[] {
  const hits: string[] = [];
  for (const file of files) {
    const content = readFileSync(file);
    for (const secret of secrets) {
      const forms = [Buffer.from(secret, "utf8"), Buffer.from(Buffer.from(secret).toString("base64").slice(0, 40)), Buffer.from(secret, "utf16le")];
      if (forms.some((form) => content.includes(form))) hits.push(`${file}: ${secret.slice(0, 6)}…`);
    }
  }
  return hits;
}
