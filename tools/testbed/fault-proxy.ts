/**
 * A TCP proxy on loopback that injects network faults between mailfetchd and the IMAP server:
 * cut every open connection, cut after a number of bytes from the server (mid-literal, for a
 * big FETCH), or slow the server's answers down. TLS passes through untouched.
 */
import net from "node:net";

export interface FaultProxy {
  readonly port: number;
  /** The next connections are cut once this many bytes came from the server; `times` connections. */
  cutAfterServerBytes(bytes: number, times?: number): void;
  /** Delay every chunk from the server by this long (0 = no delay). */
  setDelay(ms: number): void;
  /** Destroy every open connection now. */
  cutAll(): void;
  /**
   * From now on the connections open now carry nothing either way and are never closed, as a
   * middlebox that dropped them without a word; new connections work.
   */
  silenceAll(): void;
  readonly cuts: number;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<FaultProxy> {
  const sockets = new Set<net.Socket>();
  let cutPlan: { bytes: number; times: number } | undefined;
  let delayMs = 0;
  let cuts = 0;
  const silenced = new WeakSet<net.Socket>();

  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    sockets.add(client).add(upstream);
    const plan = cutPlan && cutPlan.times > 0 ? { bytes: cutPlan.bytes } : undefined;
    if (plan && cutPlan) cutPlan.times--;
    let fromServer = 0;
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("data", (chunk) => {
      if (!silenced.has(client)) upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (silenced.has(upstream)) return;
      fromServer += chunk.length;
      if (plan && fromServer >= plan.bytes) {
        cuts++;
        client.write(chunk.subarray(0, Math.max(0, chunk.length - (fromServer - plan.bytes))));
        end();
        return;
      }
      if (delayMs > 0) {
        upstream.pause();
        setTimeout(() => {
          client.write(chunk);
          upstream.resume();
        }, delayMs);
      } else {
        client.write(chunk);
      }
    });
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));

  return {
    port: (server.address() as net.AddressInfo).port,
    cutAfterServerBytes(bytes, times = 1) {
      cutPlan = { bytes, times };
    },
    setDelay(ms) {
      delayMs = ms;
    },
    cutAll() {
      cuts += sockets.size > 0 ? 1 : 0;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    silenceAll() {
      for (const socket of sockets) silenced.add(socket);
    },
    get cuts() {
      return cuts;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
