import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { readdirSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { type ConfigInput, configSchema } from "../../src/config/schema.js";
import { DNS_FILE_KINDS } from "../../src/dns/local.js";
import { DnsResolver } from "../../src/dns/resolver.js";
import { DnsServer } from "../../src/dns/server.js";
import { Events } from "../../src/events/events.js";
import { silentLogger } from "../../src/log/logger.js";
import { Rules } from "../../src/rules/rules.js";
import { dig, framed, query, TcpClient, TestClock, until } from "../helpers/dns.js";
import { type ContentServer, startContentServer } from "../helpers/dns-server.js";
import { rulesDir } from "../helpers/rules.js";

// The DNS parts on their own, as a reload drives them: build the new one with the previous, prepare,
// commit, dispose the previous; or prepare, fail, abort, and the previous goes on.

const log = silentLogger();
const openFds = () => readdirSync("/proc/self/fd").length;

describe("DNS parts: handover, failed prepare, dispose", () => {
  let content: ContentServer;
  let rules: Rules;
  let otherRules: Rules;
  const events = new Events();
  before(async () => {
    content = await startContentServer({ "www.example.test": [{ type: "A", value: "192.0.2.1" }] });
    rules = new Rules(configSchema.parse({ rules: rulesDir({ hosts: "192.168.1.10 box.office.lan\n" }) }), log, DNS_FILE_KINDS);
    rules.load();
    otherRules = new Rules(
      configSchema.parse({ rules: rulesDir({ hosts: "192.168.1.99 box.office.lan\n" }) }),
      log,
      DNS_FILE_KINDS,
    );
    otherRules.load();
  });
  after(async () => {
    await content.close();
    await rules.close();
    await otherRules.close();
  });

  const dnsConfig = (dns: ConfigInput["dns"] = {}) => configSchema.parse({ dns: { upstreams: [content.label], ...dns } }).dns;
  const resolverFor = (r: Rules, previous?: DnsResolver, dns: ConfigInput["dns"] = {}) =>
    new DnsResolver({ cfg: dnsConfig(dns), rules: r, log, events, previous, now: new TestClock().now });
  const serverFor = (listen: string[], resolver: DnsResolver, previous?: DnsServer) =>
    new DnsServer({ listen, resolver: () => resolver, log, tcpIdleTimeout: 10_000, previous });
  async function up<P extends { prepare(): Promise<void>; commit(): void }>(part: P): Promise<P> {
    await part.prepare();
    part.commit();
    return part;
  }
  const boxAt = async (port: number, server = "127.0.0.1") => (await dig(port, ["box.office.lan", "+short"], server)).raw.trim();

  it("keeps an address that stays, with its sockets and open TCP connections, and serves it with the new resolver", async () => {
    const r1 = await up(resolverFor(rules));
    const s1 = await up(serverFor(["127.0.0.1:0"], r1));
    const port = s1.addresses[0]?.port as number;
    const client = new TcpClient(port);
    await client.ready;
    const fds = openFds();
    const r2 = await up(resolverFor(otherRules, r1));
    const s2 = serverFor(["127.0.0.1:0"], r2, s1);
    await s2.prepare();
    s2.commit();
    await s1.dispose();
    await r1.dispose();
    try {
      assert.deepEqual(s2.addresses, [{ address: "127.0.0.1", port }]);
      assert.equal(openFds(), fds, "no socket opened or closed");
      assert.equal(client.closed, false);
      assert.equal(s2.connections, 1);
      client.socket.write(framed(query(5, "box.office.lan")));
      await until(() => client.answers.length === 1, "an answer on the old connection");
      // 192.168.1.99: the new resolver's records, on the connection opened before the reload.
      assert.ok((client.answers[0] as Buffer).includes(Buffer.from([192, 168, 1, 99])));
      assert.equal(await boxAt(port), "192.168.1.99");
    } finally {
      client.socket.destroy();
      await s2.dispose();
      await r2.dispose();
    }
  });

  it("matches a retained address written with the port it was bound to", async () => {
    const r = await up(resolverFor(rules));
    const s1 = await up(serverFor(["127.0.0.1:0"], r));
    const port = s1.addresses[0]?.port as number;
    const s2 = await up(serverFor([`127.0.0.1:${port}`], r, s1));
    await s1.dispose();
    try {
      assert.equal(await boxAt(port), "192.168.1.10");
    } finally {
      await s2.dispose();
      await r.dispose();
    }
  });

  it("adds a second dns.listen address on reload, binding only the new one", async () => {
    const r = await up(resolverFor(rules));
    const s1 = await up(serverFor(["127.0.0.1:0"], r));
    const port = s1.addresses[0]?.port as number;
    const s2 = await up(serverFor(["127.0.0.1:0", "127.0.0.2:0"], r, s1));
    await s1.dispose();
    try {
      const [first, second] = s2.addresses;
      assert.equal(first?.port, port);
      assert.equal(second?.address, "127.0.0.2");
      assert.equal(await boxAt(port), "192.168.1.10");
      assert.equal(await boxAt(second?.port as number, "127.0.0.2"), "192.168.1.10");
    } finally {
      await s2.dispose();
      await r.dispose();
    }
  });

  it("a failed prepare says which address and why, closes what it bound, and the previous server keeps serving", async () => {
    const taken = createSocket("udp4");
    await new Promise<void>((resolve) => taken.bind(0, "127.0.0.1", () => resolve()));
    const r = await up(resolverFor(rules));
    const s1 = await up(serverFor(["127.0.0.1:0"], r));
    const port = s1.addresses[0]?.port as number;
    const fds = openFds();
    const s2 = serverFor(["127.0.0.1:0", "127.0.0.3:0", `127.0.0.1:${taken.address().port}`], r, s1);
    try {
      await assert.rejects(s2.prepare(), (err: Error) => {
        assert.match(
          err.message,
          new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken.address().port} \\(UDP\\): EADDRINUSE; another program`),
        );
        return true;
      });
      await s2.abort();
      await until(() => openFds() === fds, "the sockets prepare bound to close");
      assert.equal(await boxAt(port), "192.168.1.10");
      assert.deepEqual(s1.addresses, [{ address: "127.0.0.1", port }]);
    } finally {
      taken.close();
      await s1.dispose();
      await r.dispose();
    }
  });

  it("dispose leaves no socket open, no rules subscription and no background task", async () => {
    const fds = openFds();
    const subscribers = rules.subscribers;
    const r = await up(resolverFor(rules));
    const s = await up(serverFor(["127.0.0.1:0", "127.0.0.2:0"], r));
    assert.equal(rules.subscribers, subscribers + 1);
    const c = new TcpClient(s.addresses[0]?.port as number);
    await c.ready;
    assert.equal(await boxAt(s.addresses[0]?.port as number), "192.168.1.10");
    assert.ok(openFds() > fds);
    await s.dispose();
    await r.dispose();
    await until(() => c.closed, "the client connection to be closed");
    assert.equal(rules.subscribers, subscribers);
    assert.equal(r.tasks.size, 0);
    assert.equal(r.forwarder.openSockets, 0);
    await until(() => openFds() === fds, `open descriptors back to ${fds} (now ${openFds()})`);
  });

  it("twenty handovers leave the descriptors and rule subscriptions as they were", async () => {
    let r = await up(resolverFor(rules));
    let s = await up(serverFor(["127.0.0.1:0"], r));
    await dig(s.addresses[0]?.port as number, ["www.example.test"]);
    const fds = openFds();
    const subscribers = rules.subscribers;
    for (let i = 0; i < 20; i++) {
      const r2 = await up(resolverFor(rules, r));
      const s2 = await up(serverFor(["127.0.0.1:0"], r2, s));
      await s.dispose();
      await r.dispose();
      r = r2;
      s = s2;
    }
    try {
      assert.equal(rules.subscribers, subscribers);
      await until(() => openFds() === fds, `open descriptors back to ${fds} (now ${openFds()})`);
      // The cache went across all twenty: still a hit.
      assert.equal(r.cache.size, 1);
    } finally {
      await s.dispose();
      await r.dispose();
    }
  });

  it("hands the cache over when dns.cache is unchanged, and drops it when it changed", async () => {
    const r1 = await up(resolverFor(rules));
    await r1.resolve("www.example.test", 1);
    const r2 = await up(resolverFor(rules, r1));
    await r1.dispose();
    assert.equal(r2.cache, r1.cache);
    assert.equal((await r2.resolve("www.example.test", 1)).result, "cached");
    const r3 = await up(resolverFor(rules, r2, { cache: { size: "1MiB" } }));
    await r2.dispose();
    assert.notEqual(r3.cache, r2.cache);
    assert.equal(r2.cache.size, 0, "the replaced cache is released");
    assert.equal((await r3.resolve("www.example.test", 1)).result, "forwarded");
    await r3.dispose();
  });

  it("an aborted resolver leaves the cache it would have taken over to the one still serving", async () => {
    const r1 = await up(resolverFor(rules));
    await r1.resolve("www.example.test", 1);
    const r2 = resolverFor(rules, r1);
    await r2.prepare();
    await r2.abort();
    assert.equal(r1.cache.size, 1);
    assert.equal((await r1.resolve("www.example.test", 1)).result, "cached");
    await r1.dispose();
  });

  it("dispose lets a query in flight finish before closing the forwarder", async () => {
    const silent = await startContentServer({});
    silent.mode = "silent";
    const r = await up(new DnsResolver({ cfg: dnsConfig({ upstreams: [silent.label], timeout: "200ms" }), rules, log, events }));
    try {
      const inflight = r.resolve("slow.example.test", 1);
      await until(() => r.forwarder.openSockets === 1, "the upstream query to go out");
      await r.dispose();
      assert.equal(r.forwarder.openSockets, 0);
      assert.equal((await inflight).rcode, 2);
      assert.equal((await r.resolve("after.example.test", 1)).rcode, 2, "a disposed resolver asks nobody");
      assert.equal(silent.queries.length, 1);
    } finally {
      await silent.close();
    }
  });
});
