// Makes the README's screenshots (docs/*.png) with Debian's chromium:
//   node --import tsx test/browser/screenshots.ts
// The gatehouse it photographs runs on loopback with demo figures: a day of history written into
// its admin.state before it starts, and access and query events for a made-up office emitted on
// its event channels, which feed the dashboard exactly as real traffic does.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FIELDS } from "../../src/admin/stats/series.js";
import type { AccessEvent, QueryEvent } from "../../src/events/events.js";
import { OfficeCa } from "../../src/tls/ca.js";
import { startAdmin } from "../helpers/admin.js";
import { launchChromium } from "../helpers/browser.js";
import { freePort } from "../helpers/ports.js";
import { rulesDir } from "../helpers/rules.js";

const OUT = new URL("../../docs/", import.meta.url).pathname;
const now = Date.now();
const minute = 60_000;

/** A working day's shape: quiet at night, busy 8-18 with a lunch dip. */
function load(t: number): number {
  const h = new Date(t).getHours() + new Date(t).getMinutes() / 60;
  const day = h >= 8 && h <= 18 ? Math.sin(((h - 8) / 10) * Math.PI) : 0;
  const lunch = h >= 12 && h <= 13 ? 0.6 : 1;
  return 0.05 + day * lunch * (0.85 + 0.3 * Math.random());
}

function history(): string {
  const rows: number[][] = [];
  for (let i = 1440; i > 0; i--) {
    const t = now - (now % minute) - i * minute;
    const k = load(t);
    const requests = Math.round(900 * k);
    const hits = Math.round(requests * (0.3 + 0.1 * Math.random()));
    const misses = Math.round((requests - hits) * 0.7);
    const bytes = requests * 48_000;
    const queries = Math.round(1400 * k);
    const counts: Record<string, number> = {
      requests,
      hits,
      misses,
      bytes,
      savedBytes: hits * 52_000,
      blockedRequests: Math.round(requests * 0.04),
      queries,
      cachedQueries: Math.round(queries * 0.6),
      blockedQueries: Math.round(queries * 0.11),
      failedQueries: 0,
    };
    rows.push([t, ...FIELDS.map((f) => counts[f] ?? 0)]);
  }
  return JSON.stringify({ version: 1, minutes: rows, tops: {} });
}

const SITES = [
  "docs.example.com",
  "mail.example.net",
  "crm.example.org",
  "news.example.com",
  "cdn.example.net",
  "intranet.office.lan",
];
const BLOCKED: [string, number][] = [
  ["ads.tracker.example", 2],
  ["metrics.shop.example", 3],
  ["pixel.social.example", 4],
];
const CLIENTS = ["192.168.1.21", "192.168.1.34", "192.168.1.7", "192.168.1.58", "192.168.1.12"];
const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() ** 1.6 * xs.length)] as T;

async function main(): Promise<void> {
  const state = rulesDir({ "history.json": history() });
  const rules = rulesDir({
    "block/ads.txt": "# Ads and trackers\nexample-ads.example\nads.tracker.example\nmetrics.shop.example\npixel.social.example\n",
    "allow/office.txt": "# Always allowed\nupdates.vendor.example\n",
    "firewall.rules": "group guests 192.168.50.0/24\ndeny from guests to 192.168.1.0/24\n",
  });
  // An office CA and a front for the intranet, so the TLS and fronts panels show what an office sees.
  // The front's backends are never contacted: no request goes to the front and its checks are off.
  const certs = mkdtempSync(join(tmpdir(), "gatehouse-certs-"));
  OfficeCa.create(certs, "Example Office CA");
  const gh = await startAdmin({
    state,
    config: {
      rules,
      listsDir: join(rules, "lists"),
      certs,
      fronts: [
        {
          name: "intranet",
          protocol: "http",
          listen: [`127.0.0.1:${await freePort()}`],
          hosts: ["intranet.office.lan"],
          backend: ["http://10.0.0.20:80", "http://10.0.0.21:80"],
          health: { enabled: false },
        },
      ],
    },
    dns: { upstreams: ["192.0.2.53", "198.51.100.53"] },
  });
  const rule = (file: string, line: number, text: string) => ({ file: join(rules, file), line, text });
  const emit = () => {
    const t = Date.now();
    for (let i = 0; i < 30; i++) {
      const client = pick(CLIENTS);
      const blocked = Math.random() < 0.12 ? pick(BLOCKED) : undefined;
      if (Math.random() < 0.5) {
        const site = blocked?.[0] ?? pick(SITES);
        const hit = !blocked && Math.random() < 0.35;
        const e: AccessEvent = {
          start: t,
          durationMs: hit ? 0.4 : 20 + Math.random() * 80,
          client,
          listener: "forward",
          result: blocked ? "TCP_DENIED" : hit ? "TCP_MEM_HIT" : "TCP_MISS",
          status: blocked ? 403 : 200,
          bytes: blocked ? 480 : 20_000 + Math.floor(Math.random() * 90_000),
          method: "GET",
          url: `http://${site}/${blocked ? "pixel.gif" : "index.html"}`,
          hierarchy: hit || blocked ? "HIER_NONE" : "HIER_DIRECT",
          peer: site,
          id: `demo-${i}`,
          decision: blocked
            ? { stage: "blocklist", action: "block", reason: "", rule: rule("block/ads.txt", blocked[1], blocked[0]) }
            : undefined,
        };
        gh.app.events.access.emit(e);
      } else {
        const name = blocked?.[0] ?? pick(SITES);
        const upstream = Math.random() < 0.8 ? "192.0.2.53:53" : "198.51.100.53:53";
        const cached = !blocked && Math.random() < 0.6;
        const q: QueryEvent = {
          time: t,
          client,
          proto: "udp",
          name,
          type: 1,
          rcode: 0,
          answer: blocked ? "0.0.0.0" : "192.0.2.80",
          result: blocked ? "blocked" : cached ? "cached" : "forwarded",
          upstream: blocked || cached ? undefined : upstream,
          rule: blocked ? rule("block/ads.txt", blocked[1], blocked[0]) : undefined,
          decisions: [],
          ms: blocked || cached ? 0.1 : 8 + Math.random() * 25,
        };
        gh.app.events.query.emit(q);
      }
    }
  };
  for (let i = 0; i < 20; i++) emit();
  const timer = setInterval(emit, 200);
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    mkdirSync(OUT, { recursive: true });
    await page.goto(`${gh.base}/#dashboard`);
    await page.locator("#chart-traffic canvas").waitFor();
    await page.locator("#top-blocked td", { hasText: "ads.tracker.example" }).first().waitFor();
    await page.waitForFunction(() => document.querySelector("#stat-rps")?.textContent !== "–");
    writeFileSync(join(OUT, "dashboard.png"), await page.screenshot({ fullPage: true }));
    await page.goto(`${gh.base}/#logs`);
    await page.locator("#log-lines tr.blocked").first().waitFor();
    await page.locator("#log-live").uncheck();
    await page.locator("#log-lines tr.blocked").first().getByRole("button").click();
    await page.locator("#decision", { hasText: /Now in force .*: ALLOW/ }).waitFor();
    writeFileSync(join(OUT, "logs.png"), await page.screenshot());
    await page.goto(`${gh.base}/#rules`);
    await page.locator("#rule-files tr", { hasText: "block/ads.txt" }).getByRole("button", { name: "Edit" }).click();
    await page
      .locator("#rule-text")
      .fill("# Ads and trackers\nexample-ads.example\n||ads.tracker.example^\n/(a+)+$/\nmetrics.shop.example\n");
    await page.locator("#rule-save").click();
    await page.locator("#rule-editor-errors li").first().waitFor();
    writeFileSync(join(OUT, "rules.png"), await page.screenshot({ fullPage: true }));
  } finally {
    clearInterval(timer);
    await browser.close();
    await gh.close();
  }
  // pngquant (Debian package) makes them a third of their size; without it they are kept as taken.
  for (const name of ["dashboard.png", "logs.png", "rules.png"]) {
    try {
      execFileSync("pngquant", ["--force", "--quality", "70-90", "--output", join(OUT, name), "--", join(OUT, name)]);
    } catch {
      break;
    }
  }
  process.stdout.write(`screenshots written to ${OUT}\n`);
}

await main();
