/** The error model's pure helpers. */
import { describe, expect, it } from "vitest";
import { isFenced, MailfetchdError } from "../../src/errors.js";

describe("isFenced", () => {
  const fenced = new MailfetchdError("owned by another replica", { code: "STATE_FENCED", retryable: false });

  it("recognises a fenced write, also when a spool error wraps it", () => {
    expect(isFenced(fenced)).toBe(true);
    expect(isFenced(new MailfetchdError("cannot record", { code: "SPOOL_WRITE_FAILED", retryable: true, cause: fenced }))).toBe(true);
  });

  it("takes a storage failure for what it is", () => {
    const unavailable = new MailfetchdError("down", { code: "STATE_UNAVAILABLE", retryable: true });
    expect(isFenced(unavailable)).toBe(false);
    expect(isFenced(new MailfetchdError("cannot record", { code: "SPOOL_WRITE_FAILED", retryable: true, cause: unavailable }))).toBe(false);
    expect(isFenced(new Error("plain"))).toBe(false);
    expect(isFenced(undefined)).toBe(false);
  });
});
