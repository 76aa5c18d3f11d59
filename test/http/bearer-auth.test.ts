import { describe, expect, it } from "vitest";
import { bearerTokenMatches } from "../../src/http/bearer-auth.js";

const TOKEN = "0123456789abcdef0123456789abcdef";

describe("bearer token check", () => {
  it("accepts exactly the configured token", () => {
    expect(bearerTokenMatches(`Bearer ${TOKEN}`, TOKEN)).toBe(true);
    expect(bearerTokenMatches(`bearer ${TOKEN}`, TOKEN)).toBe(true);
  });

  it("refuses anything else", () => {
    for (const header of [
      undefined,
      "",
      "Bearer",
      "Bearer ",
      `Basic ${TOKEN}`,
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(1)}`,
      `Bearer ${TOKEN} extra`,
      TOKEN,
    ]) {
      expect(bearerTokenMatches(header, TOKEN), String(header)).toBe(false);
    }
  });
});
