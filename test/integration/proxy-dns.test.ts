import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type ContentServer, startContentServer } from "../helpers/dns-server.js";
import { type Origin, startOrigin } from "../helpers/origin.js";
import { startProxy, viaProxy } from "../helpers/proxy.js";
import { rulesDir } from "../helpers/rules.js";

// The proxy resolves names through the resolver's decisions, not its wire answers: a name blocked
// by DNS (itself, or a CNAME it points to) gets the block page with its rule whatever dns.blockMode
// makes the DNS answer look like.

describe("proxy and DNS decisions", () => {
  let content: ContentServer;
  let origin: Origin;
  const rules = rulesDir({ "block/trackers.txt": "# trackers\ntracker.test\n" });
  before(async () => {
    origin = await startOrigin((_q, s) => s.end("tracked"));
    content = await startContentServer({
      "metrics.shop.test": [
        { type: "CNAME", value: "shop.tracker.test" },
        { type: "A", value: "127.0.0.1" },
      ],
      "www.shop.test": [{ type: "A", value: "127.0.0.1" }],
    });
  });
  after(async () => {
    await content.close();
    await origin.close();
  });

  for (const blockMode of ["zero", "nxdomain", "refused", "address"] as const) {
    it(`gives the block page with the CNAME target's rule when dns.blockMode is ${blockMode}`, async () => {
      const proxy = await startProxy({
        rules,
        listsDir: `${rules}/lists`,
        dns: { upstreams: [content.label], blockMode, blockAddress: blockMode === "address" ? ["192.0.2.80"] : [] },
      });
      const reached = origin.requests.length;
      try {
        const r = await viaProxy(proxy.port, `http://metrics.shop.test:${origin.port}/pixel`);
        assert.equal(r.status, 403);
        assert.match(
          r.body.toString(),
          /metrics\.shop\.test is blocked by the office's DNS rules \(it points to shop\.tracker\.test/,
        );
        assert.match(r.body.toString(), /Rule: block\/trackers\.txt:2: tracker\.test/);
        assert.equal(origin.requests.length, reached, "nothing reached the origin");
        assert.match(proxy.accessLines.at(-1) ?? "", /TCP_DENIED\/403 .* rule=.*block\/trackers\.txt:2/);
        // A name that is not blocked still goes through the same resolver.
        assert.equal((await viaProxy(proxy.port, `http://www.shop.test:${origin.port}/`)).body.toString(), "tracked");
      } finally {
        await proxy.close();
      }
    });
  }
});
