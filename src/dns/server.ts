import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer, isIP, type Server, type Socket } from "node:net";
import type { Logger } from "../log/logger.js";
import { type ListenAddress, normalizeAddress } from "../net/address.js";
import type { DnsResolver } from "./resolver.js";

const MAX_TCP_PENDING = 64;

export interface DnsAddress {
  address: string;
  port: number;
}

/**
 * UDP and TCP listeners for dns.listen; they only move bytes between the wire and the resolver.
 * TCP follows RFC 7766: several queries may be pipelined on one connection and are answered as
 * each is ready; idle connections are closed; a length prefix too short for a header ends it.
 */
export class DnsServer {
  private udp: UdpSocket[] = [];
  private tcp: Server[] = [];
  private readonly conns = new Set<Socket>();
  readonly addresses: DnsAddress[] = [];

  constructor(
    private readonly resolver: () => DnsResolver,
    private readonly log: Logger,
    private readonly tcpIdleMs: number,
  ) {}

  async listen(addresses: readonly ListenAddress[]): Promise<void> {
    for (const addr of addresses) {
      // UDP and TCP share the port number; with port 0 the UDP port is chosen first and TCP follows.
      for (let attempt = 0; ; attempt++) {
        const udp = await this.bindUdp(addr);
        const port = udp.address().port;
        try {
          const tcp = await this.bindTcp(addr.host, port);
          this.udp.push(udp);
          this.tcp.push(tcp);
          this.addresses.push({ address: udp.address().address, port });
          break;
        } catch (err) {
          udp.close();
          if (addr.port !== 0 || attempt >= 5) throw err;
        }
      }
    }
  }

  private bindUdp(addr: ListenAddress): Promise<UdpSocket> {
    const v6 = addr.host === undefined || isIP(addr.host) === 6;
    const socket = createSocket({ type: v6 ? "udp6" : "udp4", ipv6Only: false, reuseAddr: false });
    socket.on("message", (msg, rinfo) => {
      this.resolver()
        .answer(msg, { address: normalizeAddress(rinfo.address), transport: "udp" })
        .then(
          (bytes) => {
            if (bytes) socket.send(bytes, rinfo.port, rinfo.address);
          },
          (err: unknown) => this.log.error({ err }, "DNS answer failed"),
        );
    });
    return new Promise((resolve, reject) => {
      socket.once("error", reject);
      socket.bind({ address: addr.host ?? "::", port: addr.port }, () => {
        socket.off("error", reject);
        socket.on("error", (err) => this.log.warn({ err: err.message }, "DNS UDP socket error"));
        resolve(socket);
      });
    });
  }

  private bindTcp(host: string | undefined, port: number): Promise<Server> {
    const server = createServer((socket) => this.onTcp(socket));
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: host ?? "::", port, ipv6Only: false }, () => {
        server.off("error", reject);
        resolve(server);
      });
    });
  }

  private onTcp(socket: Socket): void {
    this.conns.add(socket);
    const client = { address: normalizeAddress(socket.remoteAddress ?? ""), transport: "tcp" as const };
    let buf: Buffer = Buffer.alloc(0);
    let pending = 0;
    socket.setTimeout(this.tcpIdleMs, () => socket.destroy());
    socket.on("close", () => this.conns.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.on("data", (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (len < 12) {
          // A length that cannot hold a DNS header: the stream is out of sync, nothing can follow.
          socket.destroy();
          return;
        }
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        if (++pending > MAX_TCP_PENDING) {
          socket.destroy();
          return;
        }
        this.resolver()
          .answer(Buffer.from(msg), client)
          .then(
            (bytes) => {
              pending--;
              if (!bytes || socket.destroyed) return;
              const frame = Buffer.allocUnsafe(bytes.length + 2);
              frame.writeUInt16BE(bytes.length, 0);
              bytes.copy(frame, 2);
              socket.write(frame);
            },
            () => {
              pending--;
            },
          );
      }
    });
  }

  async close(): Promise<void> {
    for (const u of this.udp) u.close();
    for (const c of this.conns) c.destroy();
    await Promise.all(this.tcp.map((t) => new Promise<void>((r) => t.close(() => r()))));
    this.udp = [];
    this.tcp = [];
  }
}
