import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseCacheControl, parseHttpDate } from "../../../src/http/cache/directives.js";
import {
  currentAge,
  fieldValue,
  freshnessLifetime,
  invalidated,
  mayStore,
  notModified,
  parseAge,
  refreshedFields,
  requestDirectives,
  reuse,
  type StoredMeta,
  staleOnError,
  varyNames,
} from "../../../src/http/cache/policy.js";
import type { HeaderList } from "../../../src/http/exchange.js";

// RFC 9111's decisions as tables, without a socket: the cache stage only moves bytes around them.

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const imf = (ms: number) => new Date(ms).toUTCString();

describe("HTTP-date parsing (RFC 9110 §5.6.7)", () => {
  const now = Date.UTC(2026, 10, 30);
  const cases: [string, string | undefined][] = [
    ["Sun, 06 Nov 1994 08:49:37 GMT", "1994-11-06T08:49:37.000Z"],
    ["Sunday, 06-Nov-94 08:49:37 GMT", "1994-11-06T08:49:37.000Z"],
    ["Sun Nov  6 08:49:37 1994", "1994-11-06T08:49:37.000Z"],
    ["Sun Nov 16 08:49:37 1994", "1994-11-16T08:49:37.000Z"],
    // Two-digit years: more than 50 years ahead means the past century.
    ["Thursday, 01-Jan-70 00:00:00 GMT", "2070-01-01T00:00:00.000Z"],
    ["Saturday, 01-Jan-77 00:00:00 GMT", "1977-01-01T00:00:00.000Z"],
    ["Sun, 06 Nov 1994 08:49:37 UTC", undefined],
    ["sun, 06 Nov 1994 08:49:37 GMT", undefined],
    ["Sun, 6 Nov 1994 08:49:37 GMT", undefined],
    ["Sun, 06 Nov 1994 08:49 GMT", undefined],
    ["Sun, 31 Feb 1994 08:49:37 GMT", undefined],
    ["Sun, 06 Nov 1994 25:49:37 GMT", undefined],
    ["2026-01-01T00:00:00Z", undefined],
    ["1994-11-06", undefined],
    ["0", undefined],
    ["", undefined],
  ];
  for (const [text, iso] of cases) {
    it(`${JSON.stringify(text)} -> ${iso ?? "invalid"}`, () => {
      const ms = parseHttpDate(text, now);
      assert.equal(ms === undefined ? undefined : new Date(ms).toISOString(), iso);
    });
  }
});

describe("Age and multi-line fields", () => {
  for (const [value, age] of [
    ["7200", 7200],
    ["7200, 0", 7200],
    [" 30 ", 30],
    ["-5", 0],
    ["abc", 0],
    ["99999999999999", 2_147_483_648],
  ] as const) {
    it(`Age: ${value} is ${age}`, () => assert.equal(parseAge(value), age));
  }

  it("reads Vary sent on two lines as one list", () => {
    const headers: HeaderList = [
      ["vary", ""],
      ["vary", "*"],
    ];
    assert.deepEqual(varyNames(headers), ["*"]);
    assert.equal(fieldValue(headers, "vary"), ", *");
  });

  it("does not store a response whose Vary has * on its second line", () => {
    const headers: HeaderList = [
      ["cache-control", "max-age=60"],
      ["vary", ""],
      ["vary", "*"],
    ];
    assert.deepEqual(mayStore("GET", new Map(), false, 200, parseCacheControl("max-age=60"), headers), {
      store: false,
      why: "vary-star",
    });
  });
});

describe("what a shared cache may store (RFC 9111 §3)", () => {
  const cases: {
    name: string;
    status?: number;
    cc?: string;
    headers?: HeaderList;
    auth?: boolean;
    reqCc?: string;
    method?: string;
    store: boolean;
  }[] = [
    { name: "200 with max-age", cc: "max-age=60", store: true },
    { name: "200 with only Last-Modified (heuristic)", headers: [["last-modified", imf(T0)]], store: true },
    { name: "200 with neither freshness nor validator", store: false },
    { name: "no-store", cc: "no-store, max-age=60", store: false },
    { name: "private", cc: "private, max-age=60", store: false },
    { name: 'private="x" (field names)', cc: 'private="x-user", max-age=60', store: true },
    { name: "Authorization without public", cc: "max-age=60", auth: true, store: false },
    { name: "Authorization with public", cc: "public, max-age=60", auth: true, store: true },
    { name: "Authorization with s-maxage", cc: "s-maxage=60", auth: true, store: true },
    { name: "206 (never stored: partial)", status: 206, cc: "max-age=60", store: false },
    { name: "302 without explicit freshness", status: 302, headers: [["last-modified", imf(T0)]], store: false },
    { name: "302 with max-age", status: 302, cc: "max-age=60", store: true },
    { name: "999 with max-age", status: 999, cc: "max-age=60", store: true },
    { name: "999 with must-understand", status: 999, cc: "max-age=60, must-understand", store: false },
    { name: "200 no-store with must-understand", cc: "no-store, must-understand, max-age=60", store: true },
    { name: "request no-store", cc: "max-age=60", reqCc: "no-store", store: false },
    { name: "POST", method: "POST", cc: "max-age=60", store: false },
  ];
  for (const c of cases) {
    it(`${c.store ? "stores" : "does not store"}: ${c.name}`, () => {
      const headers: HeaderList = [...(c.cc ? ([["cache-control", c.cc]] as HeaderList) : []), ...(c.headers ?? [])];
      const verdict = mayStore(
        c.method ?? "GET",
        parseCacheControl(c.reqCc),
        c.auth ?? false,
        c.status ?? 200,
        parseCacheControl(c.cc),
        headers,
      );
      assert.equal(verdict.store, c.store);
    });
  }
});

describe("freshness lifetime (RFC 9111 §4.2.1)", () => {
  const cases: { name: string; cc?: string; headers?: HeaderList; status?: number; lifetime: number }[] = [
    { name: "s-maxage beats max-age", cc: "max-age=10, s-maxage=99", lifetime: 99 },
    { name: "max-age beats Expires", cc: "max-age=10", headers: [["expires", imf(T0 + 3600_000)]], lifetime: 10 },
    { name: "Expires minus Date", headers: [["expires", imf(T0 + 3600_000)]], lifetime: 3600 },
    { name: "Expires in an invalid format is stale", headers: [["expires", "2026-01-01T13:00:00Z"]], lifetime: 0 },
    { name: "Expires: 0 is stale", headers: [["expires", "0"]], lifetime: 0 },
    {
      name: "two Expires lines are stale",
      headers: [
        ["expires", imf(T0 + 3600_000)],
        ["expires", imf(T0 + 7200_000)],
      ],
      lifetime: 0,
    },
    { name: "invalid max-age is stale", cc: "max-age=abc", lifetime: 0 },
    { name: "conflicting max-age is stale", cc: "max-age=60, max-age=0", lifetime: 0 },
    { name: "heuristic: 10% of Last-Modified age", headers: [["last-modified", imf(T0 - 100_000_000)]], lifetime: 10_000 },
    { name: "heuristic capped at a day", headers: [["last-modified", imf(T0 - 10_000_000_000)]], lifetime: 86_400 },
    { name: "no heuristic for a 302", status: 302, headers: [["last-modified", imf(T0 - 100_000_000)]], lifetime: 0 },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.lifetime} s`, () => {
      const headers: HeaderList = [...(c.cc ? ([["cache-control", c.cc]] as HeaderList) : []), ...(c.headers ?? [])];
      assert.equal(freshnessLifetime(c.status ?? 200, parseCacheControl(c.cc), headers, T0, T0), c.lifetime);
    });
  }
});

function stored(over: Partial<Omit<StoredMeta, "cc">> & { cc?: string } = {}): StoredMeta {
  const { cc, ...rest } = over;
  return {
    status: 200,
    headers: [],
    cc: parseCacheControl(cc),
    requestTime: T0,
    responseTime: T0,
    dateValue: T0,
    ageValue: 0,
    lifetime: 60,
    etag: '"v1"',
    lastModified: undefined,
    ...rest,
  };
}

describe("reusing a stored response (RFC 9111 §4, RFC 5861)", () => {
  const cases: { name: string; cc?: string; req?: Record<string, string>; lifetime?: number; after: number; want: string }[] = [
    { name: "fresh", after: 10, want: "fresh" },
    { name: "stale", after: 61, want: "validate" },
    { name: "no-cache response", cc: "no-cache", after: 1, want: "validate" },
    { name: "request no-cache", req: { "cache-control": "no-cache" }, after: 1, want: "validate" },
    { name: "Pragma: no-cache without Cache-Control", req: { pragma: "no-cache" }, after: 1, want: "validate" },
    { name: "request max-age=0 (reload)", req: { "cache-control": "max-age=0" }, after: 1, want: "validate" },
    { name: "request max-age older than the copy", req: { "cache-control": "max-age=5" }, after: 10, want: "validate" },
    { name: "request min-fresh beyond what is left", req: { "cache-control": "min-fresh=55" }, after: 10, want: "validate" },
    { name: "request max-stale covers the staleness", req: { "cache-control": "max-stale=100" }, after: 100, want: "fresh" },
    {
      name: "max-stale is no use with must-revalidate",
      cc: "must-revalidate",
      req: { "cache-control": "max-stale" },
      after: 100,
      want: "validate",
    },
    { name: "within stale-while-revalidate", cc: "stale-while-revalidate=30", after: 80, want: "stale-while-revalidate" },
    { name: "past stale-while-revalidate", cc: "stale-while-revalidate=30", after: 95, want: "validate" },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.want}`, () => {
      const e = stored({ cc: c.cc, lifetime: c.lifetime ?? 60 });
      assert.equal(reuse(e, requestDirectives(c.req ?? {}), T0 + c.after * 1000).reuse, c.want);
    });
  }

  it("counts the Age the origin sent and the time in flight (§4.2.3)", () => {
    assert.equal(currentAge(stored({ ageValue: 100, requestTime: T0 - 2000 }), T0 + 10_000), 112);
  });

  for (const [cc, allowed] of [
    ["", true],
    ["must-revalidate", false],
    ["proxy-revalidate", false],
    ["s-maxage=60", false],
    ["no-cache", false],
  ] as const) {
    it(`${allowed ? "serves" : "does not serve"} a stale ${cc || "plain"} copy while the origin fails`, () => {
      assert.equal(staleOnError(stored({ cc }), new Map(), T0 + 120_000) !== undefined, allowed);
    });
  }
});

describe("conditional requests answered from the cache (RFC 9110 §13)", () => {
  const e = stored({ etag: 'W/"abc"', lastModified: imf(T0 - 60_000) });
  for (const [name, headers, want] of [
    ["matching If-None-Match (weak comparison)", { "if-none-match": '"abc"' }, true],
    ["one of several ETags", { "if-none-match": '"x", W/"abc"' }, true],
    ["If-None-Match: *", { "if-none-match": "*" }, true],
    ["another ETag", { "if-none-match": '"other"' }, false],
    ["If-Modified-Since after Last-Modified", { "if-modified-since": imf(T0) }, true],
    ["If-Modified-Since before Last-Modified", { "if-modified-since": imf(T0 - 120_000) }, false],
    ["If-Modified-Since that is not a date", { "if-modified-since": "yesterday" }, false],
  ] as const) {
    it(`${want ? "304" : "full response"} for ${name}`, () => assert.equal(notModified("GET", headers, e), want));
  }
});

describe("updating and invalidating (RFC 9111 §3.2, §4.4)", () => {
  it("takes new fields from a 304 but keeps the framing ones", () => {
    const before: HeaderList = [
      ["content-length", "5"],
      ["etag", '"v1"'],
      ["x-old", "1"],
    ];
    const incoming: HeaderList = [
      ["content-length", "0"],
      ["etag", '"v2"'],
      ["set-cookie", "a=1"],
    ];
    assert.deepEqual(refreshedFields(before, incoming), [
      ["content-length", "5"],
      ["x-old", "1"],
      ["etag", '"v2"'],
    ]);
  });

  it("invalidates the URI and same-origin Location and Content-Location after an unsafe success", () => {
    const target = new URL("http://shop.example/cart");
    assert.deepEqual(
      invalidated("POST", 201, target, [
        ["location", "/cart/1"],
        ["content-location", "http://other.example/x"],
      ]),
      ["http://shop.example/cart", "http://shop.example/cart/1"],
    );
  });

  it("invalidates nothing after a failed or safe request", () => {
    const target = new URL("http://shop.example/cart");
    assert.deepEqual(invalidated("POST", 500, target, []), []);
    assert.deepEqual(invalidated("GET", 200, target, []), []);
  });
});
