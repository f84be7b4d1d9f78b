import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { configSchema } from "../../../src/config/schema.js";
import { HttpCache } from "../../../src/http/cache/http-cache.js";
import { type Backend, type ChainParts, forwardChain, frontChain, interceptChain } from "../../../src/http/chains.js";
import type { FrontTarget, HttpExchange, HttpResponse } from "../../../src/http/exchange.js";
import { pageMaker } from "../../../src/http/pages.js";
import type { FrontRouter } from "../../../src/http/stages/route.js";
import { silentLogger } from "../../../src/log/logger.js";
import { SelfEndpoints } from "../../../src/net/self.js";
import { DomainList } from "../../../src/rules/domain-list.js";
import { Firewall } from "../../../src/rules/firewall.js";
import { RuleSet } from "../../../src/rules/ruleset.js";
import { exchange } from "../../helpers/exchange.js";

// The three chains of chains.ts, each fed exchanges as its listener kind builds them, with a
// backend that records what reached it: which stages run for which kind, without a socket.

const cfg = configSchema.parse({}).proxy;
const firewall = Firewall.compile("rules/firewall.rules", "deny to shop.example path /admin\n").firewall;
const lists = [DomainList.compile("rules/block/ads.txt", "block", "ads.example\n").list];
const rules = new RuleSet(lists, firewall);

function parts(withCache = true): ChainParts {
  return {
    cfg,
    rules: () => rules,
    page: pageMaker({ proxyName: "gatehouse", contact: "IT", ruleRoots: ["rules"], insider: () => true }),
    self: new SelfEndpoints(),
    cache: withCache ? new HttpCache(cfg.cache, silentLogger()).stage() : undefined,
  };
}

function recorder(): Backend & { seen: { url: string; host: unknown }[] } {
  const seen: { url: string; host: unknown }[] = [];
  return {
    seen,
    fetch(x: HttpExchange) {
      seen.push({ url: x.url.href, host: x.headers.host });
      const body = Buffer.from(`from ${x.url.href}`);
      return Promise.resolve<HttpResponse>({
        kind: "response",
        status: 200,
        headers: [
          ["cache-control", "max-age=60"],
          ["content-length", String(body.length)],
        ],
        body,
      });
    },
  };
}

const intercepted = (path: string, client = "10.1.2.3") =>
  exchange({
    kind: "intercept",
    authority: { host: "shop.example", port: 443 },
    target: path,
    raw: [["Host", "shop.example"]],
    client,
  });

describe("intercept chain", () => {
  it("applies path rules to decrypted HTTPS", async () => {
    const backend = recorder();
    const chain = interceptChain(parts(), backend);
    const out = (await chain(intercepted("/admin/users"))) as HttpResponse;
    assert.equal(out.status, 403);
    assert.match(String(out.body), /firewall\.rules:1: deny to shop\.example path \/admin/);
    assert.equal(backend.seen.length, 0);
    assert.equal(((await chain(intercepted("/"))) as HttpResponse).status, 200);
  });

  it("caches by the https URL", async () => {
    const backend = recorder();
    const chain = interceptChain(parts(), backend);
    await chain(intercepted("/page"));
    const second = (await chain(intercepted("/page"))) as HttpResponse;
    assert.equal(backend.seen.length, 1);
    assert.equal(backend.seen[0]?.url, "https://shop.example/page");
    assert.match(String(second.flat?.join(" ")), /gatehouse; hit/);
  });

  it("still refuses clients outside proxy.clients", async () => {
    const out = (await interceptChain(parts(), recorder())(intercepted("/", "203.0.113.9"))) as HttpResponse;
    assert.equal(out.status, 403);
  });
});

describe("front chain", () => {
  const front = (host: string, path: string, client = "203.0.113.9") =>
    exchange({ kind: "front", target: path, raw: [["Host", host]], client });
  /** One front for shop.example and its subdomains, fetching through `backend`. */
  const router = (backend: Backend): FrontRouter => {
    const target: FrontTarget = {
      name: "shop",
      redirectToHttps: false,
      httpsLocation: (url) => `https://${url.host}${url.pathname}`,
      cache: undefined,
      fetch: (x, o) => backend.fetch(x, o),
    };
    return { find: (h) => (h === "shop.example" || h.endsWith(".shop.example") ? target : undefined) };
  };

  it("serves clients from anywhere and keeps their Host", async () => {
    const backend = recorder();
    const out = (await frontChain(parts(false), router(backend))(front("shop.example", "/"))) as HttpResponse;
    assert.equal(out.status, 200);
    assert.deepEqual(backend.seen, [{ url: "http://shop.example/", host: "shop.example" }]);
  });

  it("applies the firewall by path", async () => {
    const out = (await frontChain(parts(false), router(recorder()))(front("shop.example", "/admin"))) as HttpResponse;
    assert.equal(out.status, 403);
  });

  it("answers a Host no front serves with 421, before any rule", async () => {
    const backend = recorder();
    const x = front("elsewhere.example", "/admin");
    const out = (await frontChain(parts(false), router(backend))(x)) as HttpResponse;
    assert.equal(out.status, 421);
    assert.equal(x.decisions.at(-1)?.stage, "route");
    assert.equal(backend.seen.length, 0);
  });
});

describe("forward chain", () => {
  it("refuses clients outside proxy.clients before any rule", async () => {
    const backend = recorder();
    const x = exchange({ target: "http://ads.example/", raw: [["Host", "ads.example"]], client: "203.0.113.9" });
    const out = (await forwardChain(parts(), backend)(x)) as HttpResponse;
    assert.equal(out.status, 403);
    assert.equal(x.decisions.at(-1)?.stage, "access");
  });

  it("shows the blocking rule by its path inside the rules directory", async () => {
    const x = exchange({ target: "http://ads.example/", raw: [["Host", "ads.example"]], client: "10.0.0.5" });
    const out = (await forwardChain(parts(), recorder())(x)) as HttpResponse;
    assert.equal(out.status, 403);
    assert.match(String(out.body), /Rule: block\/ads\.txt:1: ads\.example/);
    assert.doesNotMatch(String(out.body), /rules\/block/);
  });

  it("refuses a tunnel to one of gatehouse's own listeners", async () => {
    const p = parts();
    p.self.set([{ address: "127.0.0.1", port: 3128 }]);
    const x = exchange({ method: "CONNECT", target: "127.0.0.1:3128", client: "127.0.0.1" });
    const out = (await forwardChain(p, recorder())(x)) as HttpResponse;
    assert.equal(out.status, 403);
    assert.equal(x.decisions.at(-1)?.stage, "self");
  });
});
