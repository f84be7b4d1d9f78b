import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { SHARED_UPSTREAM } from "../../src/dns/resolver.js";
import { storeableAnswer } from "../../src/dns/scrub.js";
import { buildQuery, buildResponse, type ParsedQuery, parseQuery, TYPE } from "../../src/dns/wire.js";
import type { QueryEvent } from "../../src/events/events.js";
import type { SharedOverview } from "../../src/shared/counters.js";
import { DNS_PREFIX, decodeAnswer, encodeAnswer } from "../../src/shared/dns.js";
import { HTTP_PREFIX } from "../../src/shared/http.js";
import { call, startAdmin, type TestAdmin } from "../helpers/admin.js";
import { captureLogger, dig } from "../helpers/dns.js";
import { type ContentServer, startContentServer } from "../helpers/dns-server.js";
import { type Origin, startOrigin } from "../helpers/origin.js";
import { freePort } from "../helpers/ports.js";
import { eventually, viaProxy } from "../helpers/proxy.js";
import { waitForPort } from "../helpers/servers.js";

// Two gatehouses sharing one Redis (Debian's redis-server, started here on loopback with its own
// directory and no persistence, stopped by its PID): what one box fetched, the other serves; each
// box keeps its own rules; and when Redis dies both keep serving on their own, then share again
// once it is back on the same port.

interface RedisServer {
  port: number;
  url: string;
  pid: number;
  /** SIGKILL: no goodbye to the clients, as when the machine running it dies. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

async function startRedis(port: number): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-redis-"));
  const logFile = join(dir, "redis.log");
  const child: ChildProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"].concat([
      "--dir",
      dir,
      "--logfile",
      logFile,
    ]),
    { stdio: "ignore" },
  );
  const spawned = new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", (err) =>
      reject(
        new Error(`cannot start redis-server (${err.message}): install it with apt-get install redis-server (.ci/run does)`),
      ),
    );
  });
  await spawned;
  const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
  await waitForPort(port, 10_000, log);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid as number,
    kill: () => end("SIGKILL"),
    stop: () => end("SIGTERM"),
  };
}

const RECORDS = {
  "one.shared.test": [{ type: "A" as const, value: "192.0.2.1", ttl: 300 }],
  "two.shared.test": [{ type: "AAAA" as const, value: "2001:db8::2", ttl: 300 }],
  "mail.shared.test": [{ type: "MX" as const, value: "mx.shared.test", priority: 10, ttl: 300 }],
  "tracker.shared.test": [{ type: "A" as const, value: "192.0.2.66", ttl: 300 }],
  "ads.shared.test": [{ type: "A" as const, value: "192.0.2.67", ttl: 300 }],
  "alone-1.shared.test": [{ type: "A" as const, value: "192.0.2.11", ttl: 300 }],
  "alone-2.shared.test": [{ type: "A" as const, value: "192.0.2.12", ttl: 300 }],
  "again.shared.test": [{ type: "A" as const, value: "192.0.2.13", ttl: 300 }],
  "start.shared.test": [{ type: "A" as const, value: "192.0.2.14", ttl: 300 }],
};

interface Box {
  admin: TestAdmin;
  logs: ReturnType<typeof captureLogger>["lines"];
  queries: QueryEvent[];
}

async function startBox(redisUrl: string, content: ContentServer, files: Record<string, string> = {}): Promise<Box> {
  const { log, lines } = captureLogger();
  const admin = await startAdmin({
    files,
    dns: { upstreams: [content.label] },
    config: { shared: { redis: redisUrl } },
    log,
  });
  const queries: QueryEvent[] = [];
  admin.app.events.query.subscribe((e) => queries.push(e));
  return { admin, logs: lines, queries };
}

const asked = (content: ContentServer, name: string) => content.queries.filter((q) => q.name === name).length;
const lastQuery = (box: Box, name: string) => box.queries.filter((q) => q.name === name).at(-1);
const logged = (box: Box, text: RegExp) => box.logs.filter((l) => text.test(l.msg)).length;

// Each path answers as its name says and counts what reached the origin.
const reached = new Map<string, number>();
function answer(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? "/").split("?")[0] as string;
  reached.set(path, (reached.get(path) ?? 0) + 1);
  const headers: Record<string, string> = { "cache-control": "max-age=300", "content-type": "text/plain" };
  if (path.includes("varied")) headers.vary = "accept-encoding";
  if (path.includes("per-agent")) headers.vary = "user-agent";
  const body = path.includes("large") ? Buffer.alloc(100 * 1024, "x") : Buffer.from(`body of ${path}`);
  res.writeHead(200, headers);
  res.end(body);
}

describe("two boxes sharing one Redis", () => {
  let redis: RedisServer;
  let content: ContentServer;
  let origin: Origin;
  let box1: Box;
  let box2: Box;
  /** The test's own look into Redis. */
  let inspect: Redis;

  before(async () => {
    redis = await startRedis(await freePort());
    content = await startContentServer(RECORDS);
    origin = await startOrigin(answer);
    // Box 1 blocks two names; box 2 blocks nothing: rules are each box's own.
    box1 = await startBox(redis.url, content, { "block/office.txt": "tracker.shared.test\nads.shared.test\n" });
    box2 = await startBox(redis.url, content);
    inspect = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    inspect.on("error", () => {});
    await inspect.connect();
    await eventually(() => box1.admin.app.shared.redis.up && box2.admin.app.shared.redis.up, 5_000, "both boxes connected");
  });

  after(async () => {
    inspect.disconnect();
    await box1?.admin.close();
    await box2?.admin.close();
    await content?.close();
    await origin?.close();
    await redis?.stop();
  });

  const resolveCases = [
    { name: "one.shared.test", type: "A", answer: /IN A 192\.0\.2\.1$/ },
    { name: "two.shared.test", type: "AAAA", answer: /IN AAAA 2001:db8::2$/ },
    { name: "mail.shared.test", type: "MX", answer: /IN MX 10 mx\.shared\.test\.$/ },
    { name: "missing.shared.test", type: "A", status: "NXDOMAIN" },
  ];
  for (const c of resolveCases) {
    it(`answers ${c.type} ${c.name} on box 2 from what box 1 asked upstream`, async () => {
      const first = await dig(box1.admin.dnsPort, [c.name, c.type]);
      assert.equal(first.status, c.status ?? "NOERROR");
      assert.equal(lastQuery(box1, c.name)?.result, "forwarded");
      const second = await dig(box2.admin.dnsPort, [c.name, c.type]);
      assert.equal(second.status, c.status ?? "NOERROR");
      if (c.answer) assert.match(second.answers[0] ?? "", c.answer);
      assert.equal(asked(content, c.name), 1, "the content server was asked once, by box 1");
      const seen = lastQuery(box2, c.name);
      assert.equal(seen?.result, "cached");
      assert.equal(seen?.upstream, SHARED_UPSTREAM, "the query log says the answer came from the shared tier");
    });
  }

  it("keeps a shared answer in box 2's own cache", async () => {
    await dig(box1.admin.dnsPort, ["again.shared.test", "A"]);
    await dig(box2.admin.dnsPort, ["again.shared.test", "A"]);
    await inspect.del(`${DNS_PREFIX}1/1/again.shared.test`);
    const third = await dig(box2.admin.dnsPort, ["again.shared.test", "A"]);
    assert.equal(third.status, "NOERROR");
    assert.equal(lastQuery(box2, "again.shared.test")?.upstream, undefined, "answered from box 2's memory");
    assert.equal(asked(content, "again.shared.test"), 1);
  });

  it("stores upstream answers with their TTL as the key's expiry", async () => {
    await dig(box1.admin.dnsPort, ["start.shared.test", "A"]);
    const key = `${DNS_PREFIX}1/1/start.shared.test`;
    await eventually(async () => (await inspect.exists(key)) === 1, 2_000, "the answer written to Redis");
    const ms = await inspect.pttl(key);
    assert.ok(ms > 290_000 && ms <= 300_000, `expires with the 300 s TTL (${ms} ms left)`);
  });

  it("applies each box's own rules to shared answers, and never shares a blocked one", async () => {
    // Box 2 blocks nothing: it asks upstream and shares the answer; box 1 still blocks the name.
    const open = await dig(box2.admin.dnsPort, ["tracker.shared.test", "A"]);
    assert.match(open.answers[0] ?? "", /192\.0\.2\.66$/);
    const blocked = await dig(box1.admin.dnsPort, ["tracker.shared.test", "A"]);
    assert.match(blocked.answers[0] ?? "", /IN A 0\.0\.0\.0$/);
    assert.equal(lastQuery(box1, "tracker.shared.test")?.result, "blocked");
    // Box 1 blocks first: nothing goes upstream or to Redis, so box 2 asks upstream itself.
    await dig(box1.admin.dnsPort, ["ads.shared.test", "A"]);
    assert.equal(asked(content, "ads.shared.test"), 0);
    await dig(box2.admin.dnsPort, ["ads.shared.test", "A"]);
    assert.equal(lastQuery(box2, "ads.shared.test")?.result, "forwarded");
  });

  const httpCases = [
    { what: "a small response", path: "/small", shared: true },
    { what: "a response that varies on Accept-Encoding", path: "/varied", shared: true },
    { what: "a response larger than 64 KiB", path: "/large", shared: false },
    { what: "a response that varies on User-Agent", path: "/per-agent", shared: false },
  ];
  for (const c of httpCases) {
    it(`${c.shared ? "serves" : "does not share"} ${c.what} ${c.shared ? "on box 2 from what box 1 fetched" : "between boxes"}`, async () => {
      const url = `${origin.url}${c.path}`;
      const headers = { "accept-encoding": "gzip", "user-agent": "test" };
      const first = await viaProxy(box1.admin.proxyPort, url, { headers });
      assert.equal(first.status, 200);
      if (c.shared) {
        // The write to Redis is in the background: wait for it rather than race it.
        await eventually(async () => (await inspect.exists(`${HTTP_PREFIX}${url}`)) === 1, 2_000, "the response in Redis");
      }
      const second = await viaProxy(box2.admin.proxyPort, url, { headers });
      assert.equal(second.status, 200);
      assert.deepEqual(second.body, first.body);
      assert.equal(reached.get(c.path), c.shared ? 1 : 2);
      if (c.shared) assert.match(String(second.headers["cache-status"]), /^gatehouse; hit; ttl=/);
    });
  }

  it("removes a URL purged on one box from the shared tier, so the other fetches it again", async () => {
    const url = `${origin.url}/purged`;
    await viaProxy(box1.admin.proxyPort, url);
    await eventually(async () => (await inspect.exists(`${HTTP_PREFIX}${url}`)) === 1, 2_000, "the response in Redis");
    assert.equal(box1.admin.app.cache.purge(url), 1);
    await eventually(async () => (await inspect.exists(`${HTTP_PREFIX}${url}`)) === 0, 2_000, "the purge reaching Redis");
    await viaProxy(box2.admin.proxyPort, url);
    assert.equal(reached.get("/purged"), 2);
  });

  it("shows both boxes and their counters added up in either box's overview", async () => {
    let shared: SharedOverview | undefined;
    await eventually(
      async () => {
        const r = await call<{ shared?: SharedOverview }>(box1.admin.base, "GET", "/api/overview");
        shared = r.body.shared;
        return (shared?.boxes?.length ?? 0) === 2 && (shared?.hour?.queries ?? 0) >= box1.queries.length + box2.queries.length;
      },
      15_000,
      "both boxes' counts in the overview",
    );
    assert.equal(shared?.state, "up");
    assert.equal(shared?.redis, redis.url);
    assert.ok((shared?.hour?.requests ?? 0) >= 2 * httpCases.length, "both boxes' proxy requests are counted");
  });

  describe("when Redis dies", () => {
    before(async () => {
      await redis.kill();
    });

    const boxes = [
      { which: "box 1", box: () => box1, name: "alone-1.shared.test", path: "/alone-1" },
      { which: "box 2", box: () => box2, name: "alone-2.shared.test", path: "/alone-2" },
    ];
    for (const b of boxes) {
      it(`${b.which} goes on resolving new names and fetching new pages on its own`, async () => {
        const r = await dig(b.box().admin.dnsPort, [b.name, "A"]);
        assert.equal(r.status, "NOERROR");
        assert.match(r.answers[0] ?? "", /IN A 192\.0\.2\.1[12]$/);
        assert.equal(lastQuery(b.box(), b.name)?.result, "forwarded");
        const page = await viaProxy(b.box().admin.proxyPort, `${origin.url}${b.path}`);
        assert.equal(page.status, 200);
        assert.equal(page.body.toString(), `body of ${b.path}`);
      });

      it(`${b.which} still answers what it holds from its own cache`, async () => {
        const r = await dig(b.box().admin.dnsPort, ["one.shared.test", "A"]);
        assert.equal(r.status, "NOERROR");
        assert.equal(lastQuery(b.box(), "one.shared.test")?.result, "cached");
      });

      it(`${b.which} warns once that Redis is gone, however many queries it answers`, async () => {
        for (let i = 0; i < 5; i++) await dig(b.box().admin.dnsPort, [`nothing-${i}.shared.test`, "A"]);
        assert.equal(logged(b.box(), /shared Redis at .* is unreachable/), 1);
        assert.equal(b.box().admin.app.shared.redis.up, false);
      });
    }

    it("shares again once Redis is back on the same port", async () => {
      redis = await startRedis(redis.port);
      await eventually(
        () => box1.admin.app.shared.redis.up && box2.admin.app.shared.redis.up,
        15_000,
        "both boxes sharing again",
      );
      for (const box of [box1, box2]) assert.equal(logged(box, /shared Redis at .* is back/), 1);
      const name = "back.shared.test";
      content.records[name] = [{ type: "A", value: "192.0.2.99", ttl: 300 }];
      await dig(box1.admin.dnsPort, [name, "A"]);
      await eventually(async () => (await inspect.exists(`${DNS_PREFIX}1/1/${name}`)) === 1, 5_000, "the answer in Redis");
      const second = await dig(box2.admin.dnsPort, [name, "A"]);
      assert.match(second.answers[0] ?? "", /192\.0\.2\.99$/);
      assert.equal(lastQuery(box2, name)?.upstream, SHARED_UPSTREAM);
      assert.equal(asked(content, name), 1);
    });
  });
});

describe("a box whose Redis is not there", () => {
  it("starts, serves DNS on its own and says so once", async () => {
    const content = await startContentServer(RECORDS);
    const box = await startBox(`redis://127.0.0.1:${await freePort()}`, content);
    try {
      const r = await dig(box.admin.dnsPort, ["start.shared.test", "A"]);
      assert.equal(r.status, "NOERROR");
      assert.equal(lastQuery(box, "start.shared.test")?.result, "forwarded");
      assert.equal(logged(box, /is unreachable/), 1);
      const overview = await call<{ shared?: SharedOverview }>(box.admin.base, "GET", "/api/overview");
      assert.equal(overview.body.shared?.state, "down");
      assert.equal(overview.body.shared?.boxes, undefined, "no totals without Redis");
    } finally {
      await box.admin.close();
      await content.close();
    }
  });
});

describe("a shared DNS answer read later", () => {
  // A stored answer of box 1 as box 2 reads it, with the clock moved instead of waited for.
  const q = parseQuery(buildQuery(1, "www.test", TYPE.A, 1)) as ParsedQuery;
  const upstream = (ttl: number) =>
    storeableAnswer(
      buildResponse(
        q,
        { rcode: 0, answers: [{ name: "www.test", type: TYPE.A, ttl, rdata: Buffer.from([192, 0, 2, 7]) }] },
        1232,
      ),
      "www.test",
    );
  const x = { name: "www.test", type: TYPE.A, qclass: 1 };
  const cases = [
    { later: 0, ttl: 300 },
    { later: 100_400, ttl: 200 },
    { later: 269_000, ttl: 31 },
  ];
  for (const c of cases) {
    it(`goes out ${c.later / 1000} s after it was stored with ${c.ttl} s of its 300 left`, () => {
      const stored = encodeAnswer(upstream(300), 1_000_000) as { value: Buffer; ttl: number };
      assert.equal(stored.ttl, 300);
      const read = decodeAnswer(stored.value, x, 1_000_000 + c.later);
      assert.equal(read?.info.minTtl, c.ttl);
      assert.equal(read?.info.addresses[0]?.ttl, c.ttl);
    });
  }

  it("is not taken with less than a tenth of its TTL left (the box's own prefetch is due)", () => {
    const stored = encodeAnswer(upstream(300), 1_000_000) as { value: Buffer };
    assert.equal(decodeAnswer(stored.value, x, 1_000_000 + 275_000), undefined);
  });

  it("is not taken for another question", () => {
    const stored = encodeAnswer(upstream(300), 1_000_000) as { value: Buffer };
    assert.equal(decodeAnswer(stored.value, { ...x, name: "other.test" }, 1_000_000), undefined);
    assert.equal(decodeAnswer(stored.value, { ...x, type: TYPE.AAAA }, 1_000_000), undefined);
  });
});
