import { isIP } from "node:net";
import { basename } from "node:path";
import type { Diagnostic } from "../config/diagnostic.js";
import type { RuleRef } from "../pipeline/stage.js";
import { normalizeDomain } from "../rules/domain.js";
import type { FileKind } from "../rules/store.js";
import {
  RCODE,
  type ResourceRecord,
  rdataA,
  rdataAAAA,
  rdataMX,
  rdataName,
  rdataSOA,
  rdataSRV,
  rdataTXT,
  readName,
  TYPE,
} from "./wire.js";

// The office's own names: rules/hosts (hosts-file format, A/AAAA with PTR made automatically) and
// rules/zones/*.zone (a subset of RFC 1035 master files). Answered before any blocklist.

const HOSTS_TTL = 60;

export interface LocalRecord extends ResourceRecord {
  ref: RuleRef;
}

export interface LocalAnswer {
  rcode: number;
  authoritative: boolean;
  answers: ResourceRecord[];
  authority: ResourceRecord[];
  ref: RuleRef | undefined;
}

interface Zone {
  origin: string;
  soa: LocalRecord | undefined;
  records: LocalRecord[];
}

export interface HostsFile {
  records: LocalRecord[];
}

export function compileHosts(file: string, text: string): { value: HostsFile; diagnostics: Diagnostic[] } {
  const records: LocalRecord[] = [];
  const diagnostics: Diagnostic[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = i + 1;
    const hash = raw.indexOf("#");
    const fields = (hash >= 0 ? raw.slice(0, hash) : raw).trim().split(/\s+/).filter(Boolean);
    if (fields.length === 0) return;
    const [address, ...names] = fields as [string, ...string[]];
    const family = isIP(address);
    if (family === 0) {
      diagnostics.push({
        file,
        line,
        code: "GH_DNS_BAD_ADDRESS",
        message: `"${address}" is not an IP address; a hosts line looks like "192.168.1.10 printer printer.office.lan"`,
      });
      return;
    }
    if (names.length === 0) {
      diagnostics.push({ file, line, code: "GH_DNS_BAD_HOSTS", message: `no name after ${address}` });
      return;
    }
    const ref = { file, line, text: raw.trim() };
    for (const n of names) {
      const name = normalizeDomain(n);
      if (!name) {
        diagnostics.push({ file, line, code: "GH_DNS_BAD_NAME", message: `"${n}" is not a host name` });
        return;
      }
      records.push({
        name,
        type: family === 4 ? TYPE.A : TYPE.AAAA,
        ttl: HOSTS_TTL,
        rdata: family === 4 ? rdataA(address) : rdataAAAA(address),
        ref,
      });
    }
    const first = normalizeDomain(names[0] as string) as string;
    records.push({ name: reverseName(address), type: TYPE.PTR, ttl: HOSTS_TTL, rdata: rdataName(first), ref });
  });
  return { value: { records }, diagnostics };
}

export function reverseName(address: string): string {
  if (isIP(address) === 4) return `${address.split(".").reverse().join(".")}.in-addr.arpa`;
  const hex = rdataAAAA(address).toString("hex");
  return `${hex.split("").reverse().join(".")}.ip6.arpa`;
}

/** A zone file, origin from $ORIGIN or from the file name (zones/office.lan.zone → office.lan). */
export function compileZone(file: string, text: string): { value: Zone; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  let origin = normalizeDomain(basename(file).replace(/\.zone$/i, "")) ?? "";
  let defaultTtl = 3600;
  let lastOwner: string | undefined;
  const records: LocalRecord[] = [];
  const problem = (line: number, message: string, code = "GH_ZONE_BAD_RECORD") => diagnostics.push({ file, line, code, message });

  // Join parenthesised continuations; keep the first line's number for messages.
  const lines = text.split("\n");
  const logical: { line: number; text: string; indented: boolean }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let t = stripZoneComment(lines[i] as string);
    const indented = /^[ \t]/.test(lines[i] as string);
    if (t.includes("(") && !t.includes(")")) {
      while (i + 1 < lines.length && !t.includes(")")) t += ` ${stripZoneComment(lines[++i] as string)}`;
    }
    t = t.replace(/[()]/g, " ").trim();
    if (t) logical.push({ line: start + 1, text: t, indented });
  }

  const absolute = (n: string): string | undefined => {
    if (n === "@") return origin;
    if (n.endsWith(".")) return normalizeDomain(n);
    return normalizeDomain(origin ? `${n}.${origin}` : n);
  };

  for (const { line, text: t, indented } of logical) {
    const words = tokenize(t);
    if (words[0] === "$ORIGIN") {
      const o = words[1] ? normalizeDomain(words[1]) : undefined;
      if (!o) problem(line, "$ORIGIN needs a domain name");
      else origin = o;
      continue;
    }
    if (words[0] === "$TTL") {
      const ttl = parseTtl(words[1] ?? "");
      if (ttl === undefined) problem(line, "$TTL needs a number of seconds (or 1h, 1d...)");
      else defaultTtl = ttl;
      continue;
    }
    if (words[0]?.startsWith("$")) {
      problem(line, `${words[0]} is not supported; use $ORIGIN and $TTL`, "GH_ZONE_UNSUPPORTED");
      continue;
    }
    let k = 0;
    let owner = lastOwner;
    if (!indented) {
      owner = absolute(words[0] as string);
      k = 1;
      if (!owner && words[0] !== "@") {
        problem(line, `"${words[0]}" is not a valid owner name`);
        continue;
      }
    }
    if (owner === undefined) {
      problem(line, "a record needs an owner name before it");
      continue;
    }
    lastOwner = owner;
    let ttl = defaultTtl;
    for (let guard = 0; guard < 2; guard++) {
      const w = words[k]?.toUpperCase();
      if (w === "IN") k++;
      else if (w !== undefined && /^\d/.test(w) && parseTtl(w) !== undefined) {
        ttl = parseTtl(w) as number;
        k++;
      }
    }
    const typeName = words[k]?.toUpperCase() ?? "";
    const args = words.slice(k + 1);
    const ref = { file, line, text: t };
    const rec = (type: number, rdata: Buffer) => records.push({ name: owner as string, type, ttl, rdata, ref });
    const needs = (n: number, shape: string) => {
      if (args.length < n) {
        problem(line, `${typeName} needs ${shape}`);
        return false;
      }
      return true;
    };
    switch (typeName) {
      case "A":
        if (needs(1, "an IPv4 address") && isIP(args[0] as string) === 4) rec(TYPE.A, rdataA(args[0] as string));
        else if (args.length) problem(line, `"${args[0]}" is not an IPv4 address`);
        break;
      case "AAAA":
        if (needs(1, "an IPv6 address") && isIP(args[0] as string) === 6) rec(TYPE.AAAA, rdataAAAA(args[0] as string));
        else if (args.length) problem(line, `"${args[0]}" is not an IPv6 address`);
        break;
      case "CNAME":
      case "NS":
      case "PTR": {
        if (!needs(1, "a target name")) break;
        const target = absolute(args[0] as string);
        if (!target) problem(line, `"${args[0]}" is not a domain name`);
        else rec(TYPE[typeName], rdataName(target));
        break;
      }
      case "MX": {
        if (!needs(2, "a preference and a mail server, like: MX 10 mail")) break;
        const pref = Number(args[0]);
        const target = absolute(args[1] as string);
        if (!Number.isInteger(pref) || pref < 0 || pref > 65535 || !target)
          problem(line, "MX needs a preference (0-65535) and a mail server name");
        else rec(TYPE.MX, rdataMX(pref, target));
        break;
      }
      case "TXT":
        if (needs(1, "one or more strings")) rec(TYPE.TXT, rdataTXT(args.map((a) => a.replace(/^"|"$/g, ""))));
        break;
      case "SRV": {
        if (!needs(4, "priority, weight, port and target")) break;
        const [p, w, port] = args.slice(0, 3).map(Number) as [number, number, number];
        const target = absolute(args[3] as string);
        if (![p, w, port].every((v) => Number.isInteger(v) && v >= 0 && v <= 65535) || !target)
          problem(line, "SRV needs priority, weight, port (0-65535) and a target name");
        else rec(TYPE.SRV, rdataSRV(p, w, port, target));
        break;
      }
      case "SOA": {
        if (!needs(7, "mname rname serial refresh retry expire minimum")) break;
        const mname = absolute(args[0] as string);
        const rname = absolute(args[1] as string);
        const nums = args.slice(2, 7).map(parseTtl);
        if (!mname || !rname || nums.some((v) => v === undefined))
          problem(line, "SOA needs mname rname serial refresh retry expire minimum");
        else rec(TYPE.SOA, rdataSOA(mname, rname, nums as [number, number, number, number, number]));
        break;
      }
      default:
        problem(
          line,
          `record type "${words[k] ?? ""}" is not supported; use A, AAAA, CNAME, MX, TXT, SRV, PTR, NS or SOA`,
          "GH_ZONE_UNSUPPORTED",
        );
    }
  }
  const soa = records.find((r) => r.type === TYPE.SOA && r.name === origin);
  if (!soa && records.length > 0) {
    // Without an SOA the zone still answers; negative answers get a synthetic SOA so clients can cache them.
    records.push({
      name: origin,
      type: TYPE.SOA,
      ttl: defaultTtl,
      rdata: rdataSOA(`ns.${origin}`, `hostmaster.${origin}`, [1, 3600, 600, 86400, Math.min(defaultTtl, 300)]),
      ref: { file, line: 0, text: "(implicit SOA)" },
    });
  }
  return { value: { origin, soa: records.find((r) => r.type === TYPE.SOA && r.name === origin), records }, diagnostics };
}

function stripZoneComment(line: string): string {
  let inQuote = false;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '"') inQuote = !inQuote;
    else if (line[i] === ";" && !inQuote) return line.slice(0, i);
  }
  return line;
}

function tokenize(text: string): string[] {
  return text.match(/"[^"]*"|\S+/g) ?? [];
}

function parseTtl(text: string): number | undefined {
  if (/^\d+$/.test(text)) return Number(text);
  const m = /^(\d+)([smhdw])$/i.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * ({ s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[(m[2] as string).toLowerCase()] as number);
}

export const hostsFile: FileKind<HostsFile> = {
  name: "hosts",
  matches: (rel) => rel === "hosts",
  compile: compileHosts,
  // Names as written; the PTR records made from them are not entries the admin wrote.
  count: (h) => h.records.filter((r) => r.type !== TYPE.PTR).length,
};

export const zoneFiles: FileKind<Zone> = {
  name: "zone",
  matches: (rel) => rel.startsWith("zones/") && rel.endsWith(".zone"),
  compile: compileZone,
  count: (z) => z.records.length,
};

/** Every local name, indexed once per reload. */
export class LocalRecords {
  private readonly byName = new Map<string, LocalRecord[]>();
  private readonly zones: Zone[];

  constructor(hosts: readonly HostsFile[], zones: readonly Zone[]) {
    // A zone file with no records (only comments) claims no names.
    this.zones = zones.filter((z) => z.records.length > 0).sort((a, b) => b.origin.length - a.origin.length);
    for (const r of [...zones.flatMap((z) => z.records), ...hosts.flatMap((h) => h.records)]) {
      const list = this.byName.get(r.name);
      if (list) list.push(r);
      else this.byName.set(r.name, [r]);
    }
  }

  get size(): number {
    return this.byName.size;
  }

  /** Whether any local data covers this name (a record, or a zone it falls in). */
  lookup(name: string, type: number): LocalAnswer | undefined {
    const zone = this.zones.find((z) => name === z.origin || name.endsWith(`.${z.origin}`));
    const records = this.byName.get(name);
    const negative = (rcode: number): LocalAnswer => ({
      rcode,
      authoritative: zone !== undefined,
      answers: [],
      authority: zone?.soa ? [soaForNegative(zone.soa)] : [],
      ref: zone?.soa?.ref,
    });
    if (records) {
      const matching = records.filter((r) => r.type === type);
      if (matching.length > 0)
        return { rcode: RCODE.NOERROR, authoritative: true, answers: matching, authority: [], ref: matching[0]?.ref };
      const cname = records.find((r) => r.type === TYPE.CNAME);
      if (cname) return this.chase(cname, type);
      return negative(RCODE.NOERROR);
    }
    if (!zone) return undefined;
    // An empty non-terminal (only deeper names exist) is NODATA, not NXDOMAIN (RFC 8020).
    const suffix = `.${name}`;
    for (const key of this.byName.keys()) if (key.endsWith(suffix)) return negative(RCODE.NOERROR);
    return negative(RCODE.NXDOMAIN);
  }

  private chase(cname: LocalRecord, type: number): LocalAnswer {
    const answers: ResourceRecord[] = [cname];
    const seen = new Set([cname.name]);
    let current: LocalRecord = cname;
    for (;;) {
      const target = readName(current.rdata, 0).name;
      // A loop in the office's own zone answers SERVFAIL, as for a looping upstream chain.
      if (seen.has(target)) return { rcode: RCODE.SERVFAIL, authoritative: false, answers: [], authority: [], ref: current.ref };
      seen.add(target);
      const next = this.byName.get(target);
      if (!next) break;
      const matching = next.filter((r) => r.type === type);
      if (matching.length > 0) {
        answers.push(...matching);
        break;
      }
      const further = next.find((r) => r.type === TYPE.CNAME);
      if (!further) break;
      answers.push(further);
      current = further;
    }
    return { rcode: RCODE.NOERROR, authoritative: true, answers, authority: [], ref: cname.ref };
  }
}

function soaForNegative(soa: LocalRecord): ResourceRecord {
  const minimum = soa.rdata.readUInt32BE(soa.rdata.length - 4);
  return { name: soa.name, type: soa.type, ttl: Math.min(soa.ttl, minimum), rdata: soa.rdata };
}

/** The rules/ files the DNS reads, beside the lists and the firewall. */
export const DNS_FILE_KINDS: readonly FileKind[] = [hostsFile, zoneFiles];
