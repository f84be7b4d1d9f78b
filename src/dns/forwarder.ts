import { randomInt } from "node:crypto";
import { createSocket } from "node:dgram";
import { isIP, type Socket, connect as tcpConnect } from "node:net";
import type { StoredAnswer } from "./exchange.js";
import { CnameLoopError, storeableAnswer } from "./scrub.js";
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
 * Asks the content servers, with the defences against off-path forgery that Unbound uses
 * (RFC 5452): every UDP query goes out from a socket of its own on a fresh kernel-chosen random
 * port, closed once answered, with a random ID; the socket is connected to the server, so the kernel
 * drops datagrams from any other address or port, and an ICMP "port unreachable" arrives as an error
 * at once instead of a time-out. An answer must carry the same ID and question. A mismatch, a
 * malformed answer, SERVFAIL, REFUSED, a refused port and a time-out all move on to the next server
 * at once; a server that keeps failing is skipped for a while and tried again later. Truncated
 * answers are asked again over TCP. Answers are scrubbed (scrub.ts) before anyone sees them.
 *
 * A socket per query costs about 12 µs of CPU (create, bind, connect, close) that a shared pool did
 * not: measured with bench/dns.sh on 2 cores, the miss rate went from about 20-25k to 16k queries a
 * second. A long-lived port is the weakness RFC 5452 §9.2 describes; Unbound pays the same price.
 */
export class Forwarder {
  private readonly health = new Map<string, Health>();
  private readonly conditional: [suffix: string, servers: UpstreamServer[]][];
  private readonly sockets = new Set<object>();
  private readonly running = new Set<Promise<unknown>>();
  private closed = false;

  constructor(
    private readonly defaults: readonly UpstreamServer[],
    forward: Record<string, UpstreamServer[]>,
    private readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.conditional = Object.entries(forward)
      .map(([domain, servers]) => [domain.toLowerCase().replace(/\.$/, ""), servers] as [string, UpstreamServer[]])
      .sort((a, b) => b[0].length - a[0].length);
  }

  /** The servers for a name: the longest matching dns.forward domain, else the defaults. */
  serversFor(name: string): readonly UpstreamServer[] {
    return this.forwardDomain(name)?.[1] ?? this.defaults;
  }

  /** The dns.forward entry that covers a name, if any. */
  forwardDomain(name: string): [suffix: string, servers: UpstreamServer[]] | undefined {
    return this.conditional.find(([suffix]) => name === suffix || name.endsWith(`.${suffix}`));
  }

  /** Sockets open for queries in flight (tests count them). */
  get openSockets(): number {
    return this.sockets.size;
  }

  resolve(
    name: string,
    type: number,
    qclass: number,
    tcp: boolean,
    dnssecOk = false,
  ): Promise<{ answer: StoredAnswer; upstream: string }> {
    if (this.closed) return Promise.reject(new UpstreamFailure("the resolver was replaced or stopped"));
    const p = this.ask(name, type, qclass, tcp, dnssecOk);
    this.running.add(p);
    const forget = () => this.running.delete(p);
    p.then(forget, forget);
    return p;
  }

  private async ask(
    name: string,
    type: number,
    qclass: number,
    tcp: boolean,
    dnssecOk: boolean,
  ): Promise<{ answer: StoredAnswer; upstream: string }> {
    const servers = this.order(this.serversFor(name));
    if (servers.length === 0) throw new UpstreamFailure("no upstream DNS servers configured (dns.upstreams)");
    const problems: string[] = [];
    for (const server of servers) {
      try {
        let bytes = tcp
          ? await this.askTcp(server, name, type, qclass, dnssecOk)
          : await this.askUdp(server, name, type, qclass, dnssecOk);
        if (!tcp && (bytes.readUInt16BE(2) & 0x0200) !== 0) bytes = await this.askTcp(server, name, type, qclass, dnssecOk);
        const rcode = bytes.readUInt16BE(2) & 0xf;
        if (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) {
          this.failed(server);
          problems.push(`${server.label}: ${RCODE_NAME[rcode]}`);
          continue;
        }
        const answer = storeableAnswer(bytes, name);
        this.succeeded(server);
        return { answer, upstream: server.label };
      } catch (err) {
        // A CNAME loop is in the data, not the server: every server would give it (Unbound: SERVFAIL).
        if (err instanceof CnameLoopError) throw err;
        this.failed(server);
        problems.push(`${server.label}: ${(err as Error).message}`);
      }
    }
    throw new UpstreamFailure(`every upstream failed (${problems.join("; ")})`);
  }

  private order(servers: readonly UpstreamServer[]): UpstreamServer[] {
    const now = this.now();
    const up = servers.filter((s) => (this.health.get(s.label)?.downUntil ?? 0) <= now);
    const down = servers.filter((s) => (this.health.get(s.label)?.downUntil ?? 0) > now);
    return [...up, ...down];
  }

  private failed(s: UpstreamServer): void {
    const h = this.health.get(s.label) ?? { failures: 0, downUntil: 0 };
    h.failures++;
    if (h.failures >= DOWN_AFTER) h.downUntil = this.now() + DOWN_FOR_MS;
    this.health.set(s.label, h);
  }

  private succeeded(s: UpstreamServer): void {
    this.health.delete(s.label);
  }

  private askUdp(s: UpstreamServer, name: string, type: number, qclass: number, dnssecOk: boolean): Promise<Buffer> {
    const id = randomInt(0, 65_536);
    const query = buildQuery(id, name, type, qclass, dnssecOk);
    return new Promise((resolve, reject) => {
      const socket = createSocket(isIP(s.address) === 6 ? "udp6" : "udp4");
      this.sockets.add(socket);
      let done = false;
      const finish = (err: Error | null, msg?: Buffer) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.sockets.delete(socket);
        socket.close();
        if (err) reject(err);
        else resolve(msg as Buffer);
      };
      const timer = setTimeout(() => finish(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      // ECONNREFUSED here is the server's ICMP port unreachable, reported on the connected socket.
      socket.on("error", (err) => finish(err));
      // Connected: only the server's own address and port reach this handler.
      socket.on("message", (msg) => finish(mismatch(msg, id, name, type, qclass), msg));
      socket.connect(s.port, s.address, () => {
        socket.send(query, (err) => {
          if (err) finish(err);
        });
      });
    });
  }

  private askTcp(s: UpstreamServer, name: string, type: number, qclass: number, dnssecOk: boolean): Promise<Buffer> {
    const id = randomInt(0, 65_536);
    const query = buildQuery(id, name, type, qclass, dnssecOk);
    return new Promise((resolve, reject) => {
      const socket: Socket = tcpConnect({ host: s.address, port: s.port });
      this.sockets.add(socket);
      let buf = Buffer.alloc(0);
      const timer = setTimeout(() => finish(new Error(`no TCP answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      let done = false;
      const finish = (err: Error | null, bytes?: Buffer) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.sockets.delete(socket);
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
        const msg = Buffer.from(buf.subarray(2, 2 + len));
        finish(mismatch(msg, id, name, type, qclass), msg);
      });
      socket.on("error", (err) => finish(err));
      socket.on("end", () => finish(new Error("connection closed before an answer")));
    });
  }

  /** No new queries; resolves once those in flight are answered or timed out (each is bounded). */
  async close(): Promise<void> {
    this.closed = true;
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}

/** Why an answer is not the answer to our query, or null if it is. */
function mismatch(msg: Buffer, id: number, name: string, type: number, qclass: number): Error | null {
  if (msg.length < 12 || (msg.readUInt16BE(2) & 0x8000) === 0)
    return new Error("answered with something that is not a DNS response");
  if (msg.readUInt16BE(0) !== id) return new Error(`answered with ID ${msg.readUInt16BE(0)}, asked with ${id}`);
  if (msg.readUInt16BE(4) !== 1) return new Error(`answered with ${msg.readUInt16BE(4)} questions`);
  try {
    const q = readQuestion(msg, 12);
    if (q.name === name && q.type === type && q.class === qclass) return null;
    return new Error(`answered a different question (${q.name} type ${q.type})`);
  } catch {
    return new Error("answered with an unreadable question");
  }
}
