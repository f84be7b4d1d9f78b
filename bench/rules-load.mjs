// Loads a generated blocklist of 1,000,000 domains (hosts, plain and Adblock lines mixed, as real
// lists are) and prints load time, the memory it added, and lookups per second for a mix of listed
// names, subdomains of listed names and unlisted names. Runs on the compiled dist/.
import { performance } from "node:perf_hooks";
import { DomainList } from "../dist/rules/domain-list.js";
import { RuleSet } from "../dist/rules/ruleset.js";

const N = Number(process.env.DOMAINS ?? 1_000_000);
const words = ["ads", "track", "pixel", "metrics", "cdn", "stat", "beacon", "tag", "click", "serve"];
const tlds = ["com", "net", "org", "io", "de", "co.uk", "info"];
const name = (i) => `${words[i % 10]}${i}.${words[(i >> 3) % 10]}-${(i * 7919) % 100003}.${tlds[i % 7]}`;
const lines = [];
for (let i = 0; i < N; i++) {
  const n = name(i);
  lines.push(i % 3 === 0 ? `0.0.0.0 ${n}` : i % 3 === 1 ? n : `||${n}^`);
}
lines.push("/^adserver[0-9]+\\./", "*.wild.example", "ad*.glob.example");
const text = lines.join("\n");

global.gc?.();
const heapBefore = process.memoryUsage();
const t0 = performance.now();
const { list, diagnostics } = DomainList.compile("bench.txt", "block", text);
const loadMs = performance.now() - t0;
const rules = new RuleSet([list]);
global.gc?.();
const heapAfter = process.memoryUsage();
const addedMiB = (heapAfter.heapUsed - heapBefore.heapUsed + (heapAfter.external - heapBefore.external)) / 1024 / 1024;

const probes = [];
for (let i = 0; i < 100_000; i++) {
  const k = (i * 104729) % N;
  probes.push(i % 3 === 0 ? name(k) : i % 3 === 1 ? `www.sub.${name(k)}` : `unlisted${i}.example.com`);
}
// Every probe is a new string, as names from the wire are.
let blocked = 0;
const rounds = 10;
const t1 = performance.now();
for (let r = 0; r < rounds; r++) for (const p of probes) if (rules.checkDomain(p).blocked) blocked++;
const lookMs = performance.now() - t1;
const perLookupNs = (lookMs * 1e6) / (probes.length * rounds);

console.log(
  `rules: ${N.toLocaleString("en")} domains (${diagnostics.length} errors) loaded in ${(loadMs / 1000).toFixed(2)} s (target < 2 s)`,
);
console.log(
  `rules: memory added ${addedMiB.toFixed(0)} MiB heap+external, rss ${(heapAfter.rss / 1024 / 1024).toFixed(0)} MiB (target < 150 MiB added)`,
);
console.log(
  `rules: ${Math.round((probes.length * rounds) / (lookMs / 1000)).toLocaleString("en")} lookups/s, ${perLookupNs.toFixed(0)} ns per lookup (target well under 1 µs); ${blocked / rounds} of ${probes.length} probes blocked`,
);
