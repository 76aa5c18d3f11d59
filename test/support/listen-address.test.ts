import { describe, expect, it } from "vitest";
import { connectHostFor, isLoopbackHost, parseListenAddress, urlAuthority } from "../../src/support/listen-address.js";

describe("http.listen", () => {
  it("takes port 0 as any free port", () => {
    expect(parseListenAddress("127.0.0.1:0")).toEqual({ host: "127.0.0.1", port: 0 });
  });

  it("parses HOST:PORT and bracketed IPv6", () => {
    expect(parseListenAddress("127.0.0.1:9464")).toEqual({ host: "127.0.0.1", port: 9464 });
    expect(parseListenAddress("[::1]:80")).toEqual({ host: "::1", port: 80 });
    expect(parseListenAddress("0.0.0.0:9464")).toEqual({ host: "0.0.0.0", port: 9464 });
    expect(parseListenAddress("metrics.internal:9464")).toEqual({ host: "metrics.internal", port: 9464 });
  });

  it("refuses what is not HOST:PORT", () => {
    for (const bad of ["9464", "127.0.0.1", "::1:9464", "[nothex]:1", "127.0.0.1:-1", "127.0.0.1:70000", "host :1", ""]) {
      expect(parseListenAddress(bad), bad).toBeUndefined();
    }
  });

  it("counts only addresses unreachable from other machines as loopback", () => {
    for (const host of ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]) expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "::ffff:10.0.0.1", "fe80::1", "example.com", "127.0.0.1.nip.io"]) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });

  it("connects to loopback when bound to every interface", () => {
    expect(connectHostFor("0.0.0.0")).toBe("127.0.0.1");
    expect(connectHostFor("::")).toBe("::1");
    expect(connectHostFor("10.1.2.3")).toBe("10.1.2.3");
    expect(urlAuthority({ host: "::1", port: 9 })).toBe("[::1]:9");
    expect(urlAuthority({ host: "127.0.0.1", port: 9 })).toBe("127.0.0.1:9");
  });
});
