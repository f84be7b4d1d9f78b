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
  const server = dns2.createServer({
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
  const addresses = (await server.listen({ udp: { port: 0, address: "127.0.0.1" }, tcp: { port: 0, address: "127.0.0.1" } })) as {
    udp: { port: number };
    tcp: { port: number };
  };
  // dns2 binds UDP and TCP separately; rebind TCP on the UDP port so one port serves both.
  const udpPort = addresses.udp.port;
  const tcp = (server as unknown as { servers: { tcp: { close(cb: () => void): void; listen(p: number, a: string): void } } })
    .servers.tcp;
  await new Promise<void>((r) => tcp.close(() => r()));
  tcp.listen(udpPort, "127.0.0.1");
  const result = state as ContentServer;
  result.port = udpPort;
  result.label = `127.0.0.1:${udpPort}`;
  result.close = async () => {
    await server.close();
  };
  return result;
}
