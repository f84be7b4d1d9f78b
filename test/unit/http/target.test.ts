import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { HttpOutcome, HttpResponse } from "../../../src/http/exchange.js";
import { pageMaker } from "../../../src/http/pages.js";
import { targetStage } from "../../../src/http/stages/target.js";
import { compose } from "../../../src/pipeline/stage.js";
import { type ExchangeSpec, exchange } from "../../helpers/exchange.js";

const page = pageMaker({ proxyName: "gatehouse", contact: "IT", ruleRoots: [], insider: () => true });
const PASSED: HttpResponse = { kind: "response", status: 0, headers: [], body: null };
const run = compose([targetStage({ maxUrlLength: 100, page })], () => Promise.resolve<HttpOutcome>(PASSED));
const tunnel = { host: "shop.example", port: 443 };

// Where each listener kind takes the authority from, and what it refuses, with no socket.
const cases: (ExchangeSpec & { name: string; url?: string; toSelf?: boolean; status?: number; close?: boolean })[] = [
  {
    name: "forward: absolute-form",
    target: "http://a.example/x?q=1",
    raw: [["Host", "a.example"]],
    url: "http://a.example/x?q=1",
  },
  {
    name: "forward: origin-form is for the proxy itself",
    target: "/",
    raw: [["Host", "proxy:3128"]],
    url: "http://127.0.0.1:3128/",
    toSelf: true,
  },
  { name: "forward: CONNECT authority-form", method: "CONNECT", target: "a.example:443", url: "https://a.example/" },
  { name: "forward: CONNECT to an IPv6 literal", method: "CONNECT", target: "[::1]:8443", url: "https://[::1]:8443/" },
  { name: "forward: CONNECT without a port", method: "CONNECT", target: "a.example", status: 400 },
  { name: "forward: no Host in HTTP/1.1", target: "http://a.example/", status: 400 },
  { name: "forward: no Host in HTTP/1.0 is fine", target: "http://a.example/", httpVersion: "1.0", url: "http://a.example/" },
  {
    name: "forward: two Host fields",
    target: "http://a.example/",
    raw: [
      ["Host", "a.example"],
      ["host", "b.example"],
    ],
    status: 400,
    close: true,
  },
  { name: "forward: ftp:// is not fetched", target: "ftp://a.example/", raw: [["Host", "a.example"]], status: 400 },
  { name: "forward: user info is refused", target: "http://u:p@a.example/", raw: [["Host", "a.example"]], status: 400 },
  { name: "forward: not a URL", target: "http://[bad/", raw: [["Host", "x"]], status: 400 },
  {
    name: "forward: a target over maxUrlLength",
    target: `http://a.example/${"x".repeat(100)}`,
    raw: [["Host", "a.example"]],
    status: 414,
  },
  {
    name: "any: Transfer-Encoding other than chunked",
    target: "http://a.example/",
    raw: [
      ["Host", "a.example"],
      ["Transfer-Encoding", "gzip, chunked"],
    ],
    status: 501,
    close: true,
  },
  {
    name: "any: Transfer-Encoding in HTTP/1.0",
    target: "http://a.example/",
    httpVersion: "1.0",
    raw: [["Transfer-Encoding", "chunked"]],
    status: 400,
    close: true,
  },
  {
    name: "intercept: origin-form takes the tunnel's authority",
    kind: "intercept",
    authority: tunnel,
    target: "/cart",
    raw: [["Host", "shop.example"]],
    url: "https://shop.example/cart",
  },
  {
    name: "intercept: Host for another site is misdirected",
    kind: "intercept",
    authority: tunnel,
    target: "/",
    raw: [["Host", "blocked.example"]],
    status: 421,
  },
  {
    name: "intercept: absolute-form for the tunnel's site",
    kind: "intercept",
    authority: tunnel,
    target: "https://shop.example/a",
    raw: [["Host", "shop.example"]],
    url: "https://shop.example/a",
  },
  {
    name: "intercept: absolute-form for another site",
    kind: "intercept",
    authority: tunnel,
    target: "https://other.example/a",
    raw: [["Host", "shop.example"]],
    status: 421,
  },
  {
    name: "front: origin-form takes the client's Host",
    kind: "front",
    target: "/wiki?page=1",
    raw: [["Host", "Wiki.Office.Example:8080"]],
    url: "http://wiki.office.example:8080/wiki?page=1",
  },
  {
    name: "front: HTTPS front",
    kind: "front",
    scheme: "https",
    target: "/",
    raw: [["Host", "intranet.example"]],
    url: "https://intranet.example/",
  },
  { name: "front: no Host names no site", kind: "front", target: "/", httpVersion: "1.0", status: 400 },
  { name: "front: a Host that is not a host", kind: "front", target: "/", raw: [["Host", "a b"]], status: 400 },
];

describe("target stage: the request-target for each listener kind", () => {
  for (const c of cases) {
    it(c.name, async () => {
      const x = exchange(c);
      const out = (await run(x)) as HttpResponse;
      if (c.status !== undefined) {
        assert.equal(out.status, c.status);
        assert.equal(out.close === true, c.close === true, "closes the connection");
        assert.equal(x.decisions.at(-1)?.stage, "target");
        return;
      }
      assert.equal(out, PASSED);
      assert.equal(x.url.href, c.url);
      assert.equal(x.toSelf, c.toSelf === true);
    });
  }

  it("keeps the front client's Host header for the backend", async () => {
    const x = exchange({ kind: "front", target: "/", raw: [["Host", "wiki.office.example"]] });
    await run(x);
    assert.equal(x.headers.host, "wiki.office.example");
  });
});
