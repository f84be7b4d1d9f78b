import { randomInt } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { isIP, connect as tcpConnect } from "node:net";
import { buildQuery, RCODE, RCODE_NAME, readQuestion } from "./wire.js";

export interface UpstreamServer {
  address: string;
  port: number;
  label: string;
}

interface Health {
  failures: number;
  downUntil: number;
}

const DOWN_AFTER = 3;
const DOWN_FOR_MS = 30_000;

export class UpstreamFailure extends Error {}

/**
 * Asks the content servers. Each query gets a random ID and goes out from one of a pool of UDP
 * sockets on random ports, and an answer counts only if it comes from the address and port asked,
 * with the same ID and question: the defences against off-path cache poisoning. Truncated answers are asked again
 * over TCP. Time-outs, SERVFAIL and REFUSED move on to the next server; a server that keeps failing
 * is skipped for a while and tried again later.
 */
export class Forwarder {
  private readonly health = new Map<string, Health>();
  private readonly pool = new UdpPool();
  private readonly conditional: [suffix: string, servers: UpstreamServer[]][];

  constructor(
    private readonly defaults: readonly UpstreamServer[],
    forward: Record<string, UpstreamServer[]>,
    private readonly timeoutMs: number,
  ) {
    this.conditional = Object.entries(forward)
      .map(([domain, servers]) => [domain.toLowerCase().replace(/\.$/, ""), servers] as [string, UpstreamServer[]])
      .sort((a, b) => b[0].length - a[0].length);
  }

  get defaultServers(): readonly UpstreamServer[] {
    return this.defaults;
  }

  /** The servers for a name: the longest matching dns.forward domain, else the defaults. */
  serversFor(name: string): readonly UpstreamServer[] {
    for (const [suffix, servers] of this.conditional) {
      if (name === suffix || name.endsWith(`.${suffix}`)) return servers;
    }
    return this.defaults;
  }

  async resolve(
    name: string,
    type: number,
    qclass: number,
    tcp: boolean,
    dnssecOk = false,
  ): Promise<{ bytes: Buffer; upstream: string }> {
    const servers = this.order(this.serversFor(name));
    if (servers.length === 0) throw new UpstreamFailure("no upstream DNS servers configured (dns.upstreams)");
    const problems: string[] = [];
    for (const server of servers) {
      try {
        let bytes = tcp
          ? await this.askTcp(server, name, type, qclass, dnssecOk)
          : await this.pool.ask(server, name, type, qclass, this.timeoutMs, dnssecOk);
        if (!tcp && (bytes.readUInt16BE(2) & 0x0200) !== 0) bytes = await this.askTcp(server, name, type, qclass, dnssecOk);
        const rcode = bytes.readUInt16BE(2) & 0xf;
        if (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) {
          this.failed(server);
          problems.push(`${server.label}: ${RCODE_NAME[rcode]}`);
          continue;
        }
        this.succeeded(server);
        return { bytes, upstream: server.label };
      } catch (err) {
        this.failed(server);
        problems.push(`${server.label}: ${(err as Error).message}`);
      }
    }
    throw new UpstreamFailure(`every upstream failed (${problems.join("; ")})`);
  }

  private order(servers: readonly UpstreamServer[]): UpstreamServer[] {
    const now = Date.now();
    const up = servers.filter((s) => (this.health.get(s.label)?.downUntil ?? 0) <= now);
    const down = servers.filter((s) => (this.health.get(s.label)?.downUntil ?? 0) > now);
    return [...up, ...down];
  }

  private failed(s: UpstreamServer): void {
    const h = this.health.get(s.label) ?? { failures: 0, downUntil: 0 };
    h.failures++;
    if (h.failures >= DOWN_AFTER) h.downUntil = Date.now() + DOWN_FOR_MS;
    this.health.set(s.label, h);
  }

  private succeeded(s: UpstreamServer): void {
    this.health.delete(s.label);
  }

  /** For the admin page and tests: servers currently skipped. */
  downServers(): string[] {
    const now = Date.now();
    return [...this.health].filter(([, h]) => h.downUntil > now).map(([label]) => label);
  }

  private askTcp(s: UpstreamServer, name: string, type: number, qclass: number, dnssecOk: boolean): Promise<Buffer> {
    const id = randomInt(0, 65_536);
    const query = buildQuery(id, name, type, qclass, dnssecOk);
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({ host: s.address, port: s.port });
      let buf = Buffer.alloc(0);
      const timer = setTimeout(() => finish(new Error(`no TCP answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      const finish = (err: Error | null, bytes?: Buffer) => {
        clearTimeout(timer);
        socket.destroy();
        if (err) reject(err);
        else resolve(bytes as Buffer);
      };
      socket.on("connect", () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(query.length, 0);
        socket.write(Buffer.concat([len, query]));
      });
      socket.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length < 2) return;
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) return;
        const msg = buf.subarray(2, 2 + len);
        if (matches(msg, id, name, type, qclass)) finish(null, Buffer.from(msg));
        else finish(new Error("TCP answer does not match the question"));
      });
      socket.on("error", (err) => finish(err));
      socket.on("end", () => finish(new Error("connection closed before an answer")));
    });
  }
}

function matches(msg: Buffer, id: number, name: string, type: number, qclass: number): boolean {
  if (msg.length < 12 || msg.readUInt16BE(0) !== id || (msg.readUInt16BE(2) & 0x8000) === 0 || msg.readUInt16BE(4) !== 1)
    return false;
  try {
    const q = readQuestion(msg, 12);
    return q.name === name && q.type === type && q.class === qclass;
  } catch {
    return false;
  }
}

interface Pending {
  server: UpstreamServer;
  name: string;
  type: number;
  qclass: number;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface PooledSocket {
  socket: Socket;
  pending: Map<number, Pending>;
  uses: number;
}

const POOL_SIZE = 64;
const USES_PER_SOCKET = 1000;

/**
 * UDP sockets for upstream queries. A socket per query (a fresh port each time) cost a socket,
 * a bind and a close per query and held the miss path to a third of Unbound's rate; like Unbound's
 * outgoing-range, a pool of sockets on kernel-chosen random ports is shared, each retired after
 * USES_PER_SOCKET queries so ports keep changing. A query's ID is unique on its socket.
 */
class UdpPool {
  private readonly slots: { udp4: (PooledSocket | undefined)[]; udp6: (PooledSocket | undefined)[] } = { udp4: [], udp6: [] };

  ask(server: UpstreamServer, name: string, type: number, qclass: number, timeoutMs: number, dnssecOk: boolean): Promise<Buffer> {
    const family = isIP(server.address) === 6 ? "udp6" : "udp4";
    const slots = this.slots[family];
    const slot = randomInt(0, POOL_SIZE);
    let ps = slots[slot];
    if (!ps || ps.uses >= USES_PER_SOCKET) {
      if (ps) retire(ps);
      ps = this.open(family);
      slots[slot] = ps;
    }
    ps.uses++;
    let id = randomInt(0, 65_536);
    while (ps.pending.has(id)) id = randomInt(0, 65_536);
    const query = buildQuery(id, name, type, qclass, dnssecOk);
    const owner = ps;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        owner.pending.delete(id);
        maybeClose(owner, slots);
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      owner.pending.set(id, { server, name, type, qclass, resolve, reject, timer });
      owner.socket.send(query, server.port, server.address, (err) => {
        if (!err) return;
        clearTimeout(timer);
        owner.pending.delete(id);
        reject(err);
      });
    });
  }

  private open(family: "udp4" | "udp6"): PooledSocket {
    const socket = createSocket(family);
    const ps: PooledSocket = { socket, pending: new Map(), uses: 0 };
    const slots = this.slots[family];
    socket.on("message", (msg, rinfo) => {
      if (msg.length < 12) return;
      const p = ps.pending.get(msg.readUInt16BE(0));
      // Anything that does not match is ignored, not an error: it may be a spoofing attempt.
      if (!p || rinfo.address !== p.server.address || rinfo.port !== p.server.port) return;
      if (!matches(msg, msg.readUInt16BE(0), p.name, p.type, p.qclass)) return;
      clearTimeout(p.timer);
      ps.pending.delete(msg.readUInt16BE(0));
      p.resolve(msg);
      maybeClose(ps, slots);
    });
    socket.on("error", (err) => {
      for (const p of ps.pending.values()) {
        clearTimeout(p.timer);
        p.reject(err);
      }
      ps.pending.clear();
      ps.uses = USES_PER_SOCKET;
      maybeClose(ps, slots);
    });
    socket.unref();
    return ps;
  }
}

function retire(ps: PooledSocket): void {
  ps.uses = USES_PER_SOCKET;
  if (ps.pending.size === 0) ps.socket.close();
}

function maybeClose(ps: PooledSocket, slots: (PooledSocket | undefined)[]): void {
  if (ps.uses < USES_PER_SOCKET || ps.pending.size > 0) return;
  const i = slots.indexOf(ps);
  if (i >= 0) slots[i] = undefined;
  try {
    ps.socket.close();
  } catch {
    // Already closed.
  }
}
