import dns2 from "dns2";

const { Packet } = dns2;

export interface TestRecord {
  type: "A" | "AAAA" | "CNAME" | "TXT" | "MX";
  value: string;
  ttl?: number;
  priority?: number;
}

export interface ContentServer {
  port: number;
  label: string;
  /** Every query received, in order. */
  queries: { name: string; type: number; tcp: boolean }[];
  /** ok: answer from the table; servfail; silent: never answer. */
  mode: "ok" | "servfail" | "silent";
  records: Record<string, TestRecord[]>;
  close(): Promise<void>;
}

/** A dns2 content server on 127.0.0.1: names from `records`, NXDOMAIN with an SOA for the rest. */
export async function startContentServer(records: Record<string, TestRecord[]>, negativeTtl = 60): Promise<ContentServer> {
  const state: Omit<ContentServer, "port" | "label" | "close"> = { queries: [], mode: "ok", records };
  // dns2 binds UDP and TCP on separate ports; TCP is moved to the UDP port so one port serves both.
  // Another socket may hold that port for TCP (the kernel picked it for UDP only): then start over.
  for (let attempt = 0; ; attempt++) {
    const server = createContentServer(state, negativeTtl);
    // dns2 re-emits its sockets' errors on itself; the one that matters is handled below.
    server.on("error", () => {});
    const addresses = (await server.listen({
      udp: { port: 0, address: "127.0.0.1" },
      tcp: { port: 0, address: "127.0.0.1" },
    })) as {
      udp: { port: number };
    };
    const udpPort = addresses.udp.port;
    const tcp = (server as unknown as { servers: { tcp: import("node:net").Server } }).servers.tcp;
    await new Promise<void>((r) => tcp.close(() => r()));
    const moved = await new Promise<boolean>((r) => {
      tcp.once("error", () => r(false));
      tcp.listen(udpPort, "127.0.0.1", () => r(true));
    });
    if (!moved) {
      await server.close().catch(() => {});
      if (attempt >= 5) throw new Error("no port free for both UDP and TCP");
      continue;
    }
    const result = state as ContentServer;
    result.port = udpPort;
    result.label = `127.0.0.1:${udpPort}`;
    result.close = async () => {
      await server.close();
    };
    return result;
  }
}

function createContentServer(state: Omit<ContentServer, "port" | "label" | "close">, negativeTtl: number) {
  return dns2.createServer({
    udp: true,
    tcp: true,
    handle(request: InstanceType<typeof Packet>, send: (r: InstanceType<typeof Packet>) => void, client: unknown) {
      const [q] = request.questions as { name: string; type: number }[];
      if (!q) return;
      const tcp = typeof client === "object" && client !== null && "remoteAddress" in client;
      state.queries.push({ name: q.name.toLowerCase(), type: q.type, tcp });
      if (state.mode === "silent") return;
      const response = Packet.createResponseFromRequest(request);
      if (state.mode === "servfail") {
        response.header.rcode = Packet.RCODE.SERVFAIL;
        send(response);
        return;
      }
      const name = q.name.toLowerCase();
      const list = state.records[name];
      if (!list) {
        response.header.rcode = Packet.RCODE.NXDOMAIN;
        (response.authorities as unknown[]).push({
          name: "test",
          type: Packet.TYPE.SOA,
          class: Packet.CLASS.IN,
          ttl: 3600,
          primary: "ns.test",
          admin: "hostmaster.test",
          serial: 1,
          refresh: 3600,
          retry: 600,
          expiration: 86400,
          minimum: negativeTtl,
        });
      }
      for (const r of list ?? []) {
        const base = { name: q.name, class: Packet.CLASS.IN, ttl: r.ttl ?? 300 };
        if (r.type === "CNAME") (response.answers as unknown[]).push({ ...base, type: Packet.TYPE.CNAME, domain: r.value });
        else if (r.type === "TXT") (response.answers as unknown[]).push({ ...base, type: Packet.TYPE.TXT, data: r.value });
        else if (r.type === "MX")
          (response.answers as unknown[]).push({ ...base, type: Packet.TYPE.MX, exchange: r.value, priority: r.priority ?? 10 });
        else if (Packet.TYPE[r.type] === q.type)
          (response.answers as unknown[]).push({ ...base, type: Packet.TYPE[r.type], address: r.value });
      }
      send(response);
    },
  });
}

// A content server written in the test, byte by byte, for upstreams that misbehave: it answers
// whatever `answer` returns (or nothing), so wrong IDs, wrong questions, huge or poisoned answers are
// one line each. Its encoder is independent of gatehouse's, so a bug cannot cancel itself out.

export interface RawQuery {
  id: number;
  /** Labels as sent (a label may hold a dot). */
  labels: string[];
  name: string;
  type: number;
  tcp: boolean;
  /** The source port the query came from. */
  port: number;
}

export interface RawRecord {
  /** Dotted, or labels (to put a dot inside a label). */
  name: string | string[];
  type: number;
  ttl?: number;
  /** Class; IN unless said. */
  class?: number;
  /** Record data: bytes, or an address (A), a name or labels (CNAME, NS, PTR), a string (TXT). */
  data: Buffer | string | string[];
}

export interface RawMessage {
  id?: number;
  rcode?: number;
  tc?: boolean;
  question?: { name: string | string[]; type: number };
  answers?: RawRecord[];
  authority?: RawRecord[];
  additional?: RawRecord[];
}

export interface RawUpstream {
  port: number;
  label: string;
  queries: RawQuery[];
  /** What to send for a query: a message (built by `encodeMessage` from the query), raw bytes, or nothing. */
  answer: (q: RawQuery) => RawMessage | Buffer | null;
  close(): Promise<void>;
}

export function labelsOf(name: string | string[]): string[] {
  return typeof name === "string" ? (name === "" ? [] : name.split(".")) : name;
}

function encodeLabels(labels: string[]): Buffer {
  return Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "latin1")])),
    Buffer.from([0]),
  ]);
}

function recordData(r: RawRecord): Buffer {
  if (Buffer.isBuffer(r.data)) return r.data;
  if (r.type === 5 || r.type === 2 || r.type === 12) return encodeLabels(labelsOf(r.data));
  if (Array.isArray(r.data)) throw new Error(`labels are data only for names (type ${r.type})`);
  if (r.type === 1) return Buffer.from(r.data.split(".").map(Number));
  if (r.type === 16) return Buffer.concat([Buffer.from([Buffer.byteLength(r.data)]), Buffer.from(r.data)]);
  throw new Error(`give type ${r.type} data as bytes`);
}

function encodeRecord(r: RawRecord): Buffer {
  const data = recordData(r);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(r.type, 0);
  fixed.writeUInt16BE(r.class ?? 1, 2);
  fixed.writeUInt32BE(r.ttl ?? 300, 4);
  fixed.writeUInt16BE(data.length, 8);
  return Buffer.concat([encodeLabels(labelsOf(r.name)), fixed, data]);
}

/** A response to `q` (its ID and question unless the message says otherwise). */
export function encodeMessage(q: RawQuery, m: RawMessage): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(m.id ?? q.id, 0);
  header.writeUInt16BE(0x8180 | (m.tc ? 0x0200 : 0) | (m.rcode ?? 0), 2);
  const answers = m.answers ?? [];
  const authority = m.authority ?? [];
  const additional = m.additional ?? [];
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  header.writeUInt16BE(authority.length, 8);
  header.writeUInt16BE(additional.length, 10);
  const question = Buffer.alloc(4);
  question.writeUInt16BE(m.question?.type ?? q.type, 0);
  question.writeUInt16BE(1, 2);
  return Buffer.concat([
    header,
    encodeLabels(m.question ? labelsOf(m.question.name) : q.labels),
    question,
    ...answers.map(encodeRecord),
    ...authority.map(encodeRecord),
    ...additional.map(encodeRecord),
  ]);
}

function parseRawQuery(msg: Buffer, tcp: boolean, port: number): RawQuery | undefined {
  if (msg.length < 17) return undefined;
  const labels: string[] = [];
  let pos = 12;
  while (pos < msg.length && msg[pos] !== 0) {
    const len = msg[pos] as number;
    labels.push(msg.toString("latin1", pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  return { id: msg.readUInt16BE(0), labels, name: labels.join(".").toLowerCase(), type: msg.readUInt16BE(pos + 1), tcp, port };
}

/** The raw upstream on 127.0.0.1, UDP and TCP on one port. */
export async function startRawUpstream(answer: RawUpstream["answer"]): Promise<RawUpstream> {
  const { createSocket } = await import("node:dgram");
  const { createServer } = await import("node:net");
  // UDP on a port the kernel picks, then TCP on the same number (another pick if TCP has it taken).
  let udp = createSocket("udp4");
  const conns = new Set<import("node:net").Socket>();
  const tcp = createServer((socket) => serveRawTcp(socket));
  for (let attempt = 0; ; attempt++) {
    await new Promise<void>((r) => udp.bind(0, "127.0.0.1", () => r()));
    const tryPort = udp.address().port;
    const ok = await new Promise<boolean>((r) => {
      tcp.once("error", () => r(false));
      tcp.listen(tryPort, "127.0.0.1", () => r(true));
    });
    if (ok) break;
    udp.close();
    if (attempt >= 5) throw new Error("no port free for both UDP and TCP");
    udp = createSocket("udp4");
  }
  const port = udp.address().port;
  const state: RawUpstream = {
    port,
    label: `127.0.0.1:${port}`,
    queries: [],
    answer,
    close: async () => {
      for (const c of conns) c.destroy();
      await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
    },
  };
  const reply = (q: RawQuery): Buffer | null => {
    const m = state.answer(q);
    if (m === null) return null;
    return Buffer.isBuffer(m) ? m : encodeMessage(q, m);
  };
  udp.on("message", (msg, rinfo) => {
    const q = parseRawQuery(msg, false, rinfo.port);
    if (!q) return;
    state.queries.push(q);
    const out = reply(q);
    if (out) udp.send(out, rinfo.port, rinfo.address);
  });
  function serveRawTcp(socket: import("node:net").Socket): void {
    conns.add(socket);
    socket.on("close", () => conns.delete(socket));
    socket.on("error", () => {});
    let buf = Buffer.alloc(0);
    socket.on("data", (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = parseRawQuery(buf.subarray(2, 2 + buf.readUInt16BE(0)), true, socket.remotePort ?? 0);
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        if (!q) continue;
        state.queries.push(q);
        const out = reply(q);
        if (!out) continue;
        const len = Buffer.alloc(2);
        len.writeUInt16BE(out.length, 0);
        socket.write(Buffer.concat([len, out]));
      }
    });
  }
  return state;
}
