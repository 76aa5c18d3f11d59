/**
 * Free TCP ports on 127.0.0.1 for servers we cannot ask to bind port 0 themselves (Dovecot).
 *
 * The kernel hands out a free ephemeral port when we bind port 0; we release it and pass the
 * number on. Another process could take it in between, but ephemeral ports are handed out
 * round-robin, so a port is not reused within the milliseconds that takes.
 */
import { createServer } from "node:net";

export async function findFreePorts(count: number): Promise<number[]> {
  // Held open together so the same port is never returned twice.
  const servers = await Promise.all(Array.from({ length: count }, () => listenOnRandomPort()));
  const ports = servers.map((server) => {
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no TCP address");
    return address.port;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

function listenOnRandomPort(): Promise<ReturnType<typeof createServer>> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}
