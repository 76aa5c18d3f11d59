/**
 * The HTTP surface's `http.listen` value: HOST:PORT, with IPv6 hosts in brackets. Loopback
 * decides whether a bearer token is required, so it is decided here, once, conservatively:
 * only addresses that cannot be reached from another machine count.
 */
import { isIP } from "node:net";

export const DEFAULT_HTTP_LISTEN = "127.0.0.1:9464";

export interface ListenAddress {
  /** As given, without brackets: what server.listen() binds. */
  readonly host: string;
  readonly port: number;
}

const HOST_PORT = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/;

/**
 * "127.0.0.1:9464", "[::1]:9464", "localhost:9464" -> host and port; undefined when malformed.
 * Port 0 means any free port, named in the "HTTP surface listening" log line (for test beds).
 */
export function parseListenAddress(text: string): ListenAddress | undefined {
  const match = HOST_PORT.exec(text.trim());
  if (!match) return undefined;
  const host = match[1] ?? match[2]!;
  if (match[1] !== undefined && isIP(host) !== 6) return undefined;
  const port = Number(match[3]);
  if (port < 0 || port > 65535) return undefined;
  return { host, port };
}

/** True only for addresses no other machine can connect to. A DNS name other than localhost is not trusted. */
export function isLoopbackHost(host: string): boolean {
  const lower = host.toLowerCase();
  if (lower === "localhost" || lower === "::1" || lower === "0:0:0:0:0:0:0:1") return true;
  if (isIP(lower) === 4) return lower.startsWith("127.");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  return mapped !== null && mapped[1]!.startsWith("127.");
}

/** Where a client on this machine reaches a server bound to `host` (the unspecified address means every interface). */
export function connectHostFor(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "::1";
  return host;
}

/** host:port for a URL. */
export function urlAuthority(address: ListenAddress): string {
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/**
 * Whether a request's Host header names this machine's loopback: localhost, 127.x.y.z or
 * [::1], with or without a port. On a loopback listener there is no password, so this is
 * what stops DNS rebinding: a web page from evil.example resolving its name to 127.0.0.1 gets
 * its requests to us sent with "Host: evil.example", and is refused.
 */
export function isLoopbackHostHeader(header: string | undefined): boolean {
  if (!header) return false;
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(header.trim());
  if (!match) return false;
  const host = match[1] ?? match[2]!;
  if (match[1] !== undefined) return isIP(host) === 6 && isLoopbackHost(host);
  return isLoopbackHost(host) && !host.includes(":");
}
