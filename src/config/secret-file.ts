/**
 * Reading a file that holds a secret (a password, a key, a token, a header value): refused
 * when its mode lets the group or others read or write it, because then every local user
 * (or every member of that group) has the mailbox's password or the key to the token caches.
 * The mode is checked on the open file descriptor, so the file checked is the file read.
 */
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { resolve, sep } from "node:path";

/** Group and others: no bit at all (0600, 0400 and 0700 pass). */
const GROUP_OR_OTHERS = 0o077;

export type SecretFileResult = { readonly text: string } | { readonly problem: string; readonly code: string };

/** `shownAs`: the name as the config wrote it, for "cannot read"; the mode fix names the full path. */
export function readSecretFile(file: string, shownAs = file): SecretFileResult {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    return { code, problem: `cannot read ${shownAs} (${code}): check the path and that the daemon's user may read it` };
  }
  try {
    const problem = underSystemdCredentials(file) ? undefined : modeProblem(file, fstatSync(fd).mode);
    if (problem) return { code: "MODE", problem };
    return { text: readFileSync(fd, "utf8") };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    return { code, problem: `cannot read ${shownAs} (${code}): check the path and that the daemon's user may read it` };
  } finally {
    closeSync(fd);
  }
}

/**
 * systemd hands credentials (LoadCredential=) to the service in a directory only the service
 * may enter, and grants its user read access by an ACL, which shows as group bits in the
 * mode (0440): the mode says nothing there, the directory is the protection.
 */
function underSystemdCredentials(file: string): boolean {
  const dir = process.env.CREDENTIALS_DIRECTORY;
  return dir !== undefined && dir !== "" && resolve(file).startsWith(`${resolve(dir)}${sep}`);
}

/** What is wrong with a secret file's mode, with the exact fix; undefined when only its owner may use it. */
export function modeProblem(file: string, mode: number): string | undefined {
  if ((mode & GROUP_OR_OTHERS) === 0) return undefined;
  const octal = (mode & 0o777).toString(8).padStart(4, "0");
  return `${file} is readable by ${mode & 0o070 ? (mode & 0o007 ? "group and others" : "its group") : "others"} (mode ${octal}), so other local users may read the secret in it: run \`chmod 600 ${file}\` (owned by the daemon's user; Docker Swarm secrets: mode 0400, Kubernetes secret volumes: defaultMode 0400)`;
}
