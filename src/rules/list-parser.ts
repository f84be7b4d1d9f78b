import { isIP } from "node:net";
import { normalizeDomain } from "./domain.js";
import { unsafeRegexReason } from "./regex-safety.js";

// One line of a blocklist or allowlist, in whichever format it is written: the format is detected
// per line, so hosts files, plain domain lists, wildcards, Adblock's domain rules and regexes can
// be mixed and existing lists work unchanged.

export type ParsedLine =
  | { type: "skip" }
  /** Valid Adblock syntax that only a browser can apply (paths, cosmetics, most $options). */
  | { type: "browser-only" }
  | { type: "error"; message: string; code: string }
  | {
      type: "domain";
      /** exact: the name only (hosts files); subtree: the name and every subdomain; children: subdomains only. */
      match: "exact" | "subtree" | "children";
      names: string[];
      exception: boolean;
    }
  | { type: "glob"; pattern: RegExp; suffix: string | undefined; exception: boolean }
  | { type: "regex"; pattern: RegExp; exception: boolean };

const HOSTS_IGNORED = new Set([
  "localhost",
  "localhost.localdomain",
  "local",
  "broadcasthost",
  "ip6-localhost",
  "ip6-loopback",
  "ip6-localnet",
  "ip6-mcastprefix",
  "ip6-allnodes",
  "ip6-allrouters",
  "ip6-allhosts",
  "0.0.0.0",
]);

const SKIP: ParsedLine = { type: "skip" };
const BROWSER_ONLY: ParsedLine = { type: "browser-only" };

export function parseListLine(raw: string): ParsedLine {
  const line = raw.trim();
  if (line === "") return SKIP;
  const first = line.charCodeAt(0);
  // '#' and '!' comments; '[Adblock Plus 2.0]' headers.
  if (first === 35 /* # */ || first === 33 /* ! */ || first === 91 /* [ */) return SKIP;
  if (line.includes("##") || line.includes("#@#") || line.includes("#?#") || line.includes("#$#")) return BROWSER_ONLY;
  if (first === 64 /* @ */ && line.startsWith("@@")) return adblock(line.slice(2), true);
  if (first === 124 /* | */) return line.startsWith("||") ? adblock(line.slice(2), false) : BROWSER_ONLY;
  if (first === 47 /* / */) return regexLine(line);
  if (/\s/.test(line)) return hostsLine(line);
  return domainLine(line, false);
}

function domainLine(text: string, exception: boolean): ParsedLine {
  if (text.includes("/") || text.includes("$") || text.includes("^")) return BROWSER_ONLY;
  if (text.startsWith("*.") && !text.slice(2).includes("*")) {
    const name = normalizeDomain(text.slice(2));
    if (!name) return bad(`"${text}" is not a domain wildcard; write it like *.ads.example.com`);
    return { type: "domain", match: "children", names: [name], exception };
  }
  if (text.includes("*")) return globLine(text, exception);
  const name = normalizeDomain(text);
  if (!name) return bad(`"${truncate(text)}" is not a domain name, a hosts line, ||domain^ or /regex/`);
  return { type: "domain", match: "subtree", names: [name], exception };
}

function adblock(body: string, exception: boolean): ParsedLine {
  if (!body.startsWith("||")) {
    if (exception) return BROWSER_ONLY;
  } else body = body.slice(2);
  let options = "";
  const dollar = body.indexOf("$");
  if (dollar >= 0) {
    options = body.slice(dollar + 1);
    body = body.slice(0, dollar);
  }
  // Options other than "important" narrow a rule to what a browser sees (third-party, script...).
  if (options !== "" && options !== "important") return BROWSER_ONLY;
  if (body.endsWith("^|")) body = body.slice(0, -1);
  if (body.endsWith("^")) body = body.slice(0, -1);
  else if (body.includes("^") || body.includes("/")) return BROWSER_ONLY;
  if (body === "" || body.includes("/") || body.includes("^")) return BROWSER_ONLY;
  if (body.includes("*")) return globLine(body, exception);
  const name = normalizeDomain(body);
  if (!name) return bad(`"${truncate(body)}" in an Adblock rule is not a domain name`);
  return { type: "domain", match: "subtree", names: [name], exception };
}

function hostsLine(line: string): ParsedLine {
  const hash = line.indexOf("#");
  const fields = (hash >= 0 ? line.slice(0, hash) : line).trim().split(/\s+/);
  const address = fields[0] as string;
  if (isIP(address) === 0) {
    return bad(
      `"${truncate(line)}" has spaces but does not start with an IP address; hosts lines look like "0.0.0.0 ads.example.com"`,
    );
  }
  const names: string[] = [];
  for (const field of fields.slice(1)) {
    if (HOSTS_IGNORED.has(field.toLowerCase())) continue;
    const name = normalizeDomain(field);
    if (!name) return bad(`"${truncate(field)}" is not a host name`);
    names.push(name);
  }
  if (names.length === 0) return SKIP;
  return { type: "domain", match: "exact", names, exception: false };
}

function globLine(text: string, exception: boolean): ParsedLine {
  const lowered = text.toLowerCase();
  if (!/^[a-z0-9_.*\u0080-\uffff-]+$/.test(lowered)) return bad(`"${truncate(text)}" is not a valid wildcard domain`);
  const parts = lowered.split("*");
  const ascii = parts.map((p) => (p === "" || p === "." || p === "-" ? p : asciiPart(p)));
  if (ascii.some((p) => p === undefined)) return bad(`"${truncate(text)}" is not a valid wildcard domain`);
  const source = `^${(ascii as string[]).map(escapeRegex).join(".*")}$`;
  // Index the rule by the whole labels after its last '*', so it is only tried for names under them.
  const tail = ascii[ascii.length - 1] as string;
  const dot = tail.indexOf(".");
  const suffix = dot >= 0 && dot < tail.length - 1 ? tail.slice(dot + 1) : undefined;
  return { type: "glob", pattern: new RegExp(source), suffix, exception };
}

/** A fragment of a wildcard pattern in punycode; fragments keep their leading and trailing dots. */
function asciiPart(part: string): string | undefined {
  if (/^[a-z0-9_.-]*$/.test(part)) return part;
  const lead = part.startsWith(".") ? "." : "";
  const trail = part.endsWith(".") ? "." : "";
  const core = normalizeDomain(part.slice(lead.length, part.length - trail.length));
  return core === undefined ? undefined : lead + core + trail;
}

function regexLine(line: string): ParsedLine {
  const end = line.lastIndexOf("/");
  if (end <= 0) return BROWSER_ONLY;
  const flags = line.slice(end + 1);
  if (flags !== "" && flags !== "i") return BROWSER_ONLY;
  const source = line.slice(1, end);
  if (source === "") return bad("an empty regular expression matches every name");
  const unsafe = unsafeRegexReason(source);
  if (unsafe) return { type: "error", code: "GH_RULE_UNSAFE_REGEX", message: `${unsafe}; simplify the expression` };
  try {
    return { type: "regex", pattern: new RegExp(source, "i"), exception: false };
  } catch (err) {
    return {
      type: "error",
      code: "GH_RULE_BAD_REGEX",
      message: `bad regular expression: ${(err as Error).message.replace(/^Invalid regular expression: /, "")}`,
    };
  }
}

function bad(message: string): ParsedLine {
  return { type: "error", code: "GH_RULE_BAD_LINE", message };
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
