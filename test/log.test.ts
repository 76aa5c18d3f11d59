/**
 * The logger writing to a stream: secrets held by the daemon never reach a log line, whatever
 * characters they contain. A password with `"` or `\` is escaped in the JSON line, so it must
 * be found in its escaped forms too.
 */
import { describe, expect, it } from "vitest";
import { createLogger, SecretRegistry } from "../src/log.js";

const PASSWORDS = ['pa"ss\\word-12', 'quote"only"pass', "back\\slash\\pass", "tab\tand\nnewline-pw", 'mixed\\"both\\\\"x'];

function capture(values: readonly string[]) {
  const lines: string[] = [];
  const secrets = new SecretRegistry();
  values.forEach((value, index) => secrets.set(`queue-${index}:password`, value));
  const logger = createLogger({ level: "debug", secrets, destination: { write: (line: string) => void lines.push(line) } });
  return { lines, logger };
}

describe("log scrubbing", () => {
  it("redacts passwords containing quotes and backslashes in every place a line carries text", () => {
    const { lines, logger } = capture(PASSWORDS);
    for (const password of PASSWORDS) {
      logger.info(`sign-in with ${password} failed`);
      logger.warn({ reason: `the server said: ${password}` }, "refused");
      logger.error({ err: new Error(`IMAP said NO to ${password}`) }, "login failed");
      // An error that quotes a JSON body: the password is escaped twice in the log line.
      logger.error({ body: JSON.stringify({ password }) }, "identity answered");
      logger.debug({ nested: { deep: [password] } }, "nested");
    }
    expect(lines.length).toBe(PASSWORDS.length * 5);
    const text = lines.join("");
    for (const password of PASSWORDS) {
      const escaped = JSON.stringify(password).slice(1, -1);
      const twice = JSON.stringify(escaped).slice(1, -1);
      for (const form of [password, escaped, twice]) expect(text.includes(form), `${JSON.stringify(form)} in the log`).toBe(false);
    }
    expect(text.match(/\[redacted\]/g)?.length).toBeGreaterThanOrEqual(PASSWORDS.length * 5);
    // What is left of each line is still valid JSON.
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
  });

  it("keeps text that only resembles a secret", () => {
    const { lines, logger } = capture(['pa"ss\\word-12']);
    logger.info('pa"ss word-12 and pa\\ss are not it');
    expect(lines[0]).toContain('pa\\"ss word-12');
  });
});
