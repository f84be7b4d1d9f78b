import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { type Document, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode } from "yaml";
import type { z } from "zod";
import { certPairFiles } from "../tls/cert-store.js";
import { type Diagnostic, DiagnosticsError } from "./diagnostic.js";
import { type Config, configSchema } from "./schema.js";

export const DEFAULT_CONFIG_FILE = "gatehouse.yaml";

export interface LoadedConfig {
  config: Config;
  /** The file it came from; undefined when gatehouse runs on embedded defaults. */
  file: string | undefined;
}

/**
 * Reads and validates a config file. With no explicit path, a missing gatehouse.yaml means the
 * embedded defaults. Throws DiagnosticsError listing every problem with its line. With `files`
 * (the default: start, reload, check), what the config names on disk is checked too: each
 * certificate pair a front names in tls.cert. CLI commands that only talk to the running
 * gatehouse pass files: false.
 */
export function loadConfig(path: string | undefined, opts: { files?: boolean } = {}): LoadedConfig {
  const file = path ?? DEFAULT_CONFIG_FILE;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (path === undefined && code === "ENOENT") return { config: configSchema.parse({}), file: undefined };
    throw new DiagnosticsError([
      { file, line: 0, code: "GH_CONFIG_READ", message: `cannot read the config file (${code ?? String(err)})` },
    ]);
  }
  const parsed = parseWithPositions(text, file);
  const config = resolvePaths(parsed.config, dirname(resolve(file)));
  if (opts.files !== false) {
    const problems = checkFrontCerts(config, parsed.config.certs, file, parsed.lineAt);
    if (problems.length > 0) throw new DiagnosticsError(problems);
  }
  return { config, file };
}

/**
 * A front that names its certificate (tls.cert: NAME) needs certs/NAME.crt and certs/NAME.key
 * as a pair that compiles, or it would fail every TLS handshake: refused here, with the key's line,
 * by the same compile the certificate store runs.
 */
function checkFrontCerts(config: Config, certsAsWritten: string, file: string, lineAt: (path: string[]) => number): Diagnostic[] {
  const problems: Diagnostic[] = [];
  for (const [i, f] of config.fronts.entries()) {
    const name = f.tls.cert;
    if (name === undefined) continue;
    const shown = (ext: string) => join(certsAsWritten, `${name}.${ext}`);
    const read = (ext: string) => {
      try {
        return readFileSync(join(config.certs, `${name}.${ext}`), "utf8");
      } catch {
        return undefined;
      }
    };
    const crt = read("crt");
    const key = read("key");
    let why: string | undefined;
    if (crt === undefined && key === undefined)
      why = `${shown("crt")} and ${shown("key")} not found; put the certificate (its chain after it) and its key there, or leave tls.cert out to choose by the name clients ask for (SNI) from ${certsAsWritten}`;
    else if (crt === undefined) why = `${shown("crt")} not found (${shown("key")} is there); put the certificate there`;
    else if (key === undefined) why = `${shown("key")} not found beside ${shown("crt")}; put its private key there`;
    else {
      const errors = certPairFiles.compile(shown("crt"), crt, [key]).diagnostics;
      if (errors.length > 0)
        why = `${shown("crt")} and ${shown("key")} have errors: ${errors.map((d) => d.message).join("; ")}; fix the pair (gatehouse check lists it too)`;
    }
    const path = ["fronts", String(i), "tls", "cert"];
    if (why) problems.push({ file, line: lineAt(path), code: "GH_CONFIG_FRONT_CERT", message: `${formatKeyPath(path)}: ${why}` });
  }
  return problems;
}

/**
 * Relative paths in a config file are relative to that file's directory, not to wherever gatehouse
 * was started from (a service manager's working directory is rarely the config's). The embedded
 * defaults stay relative to the working directory.
 */
export function resolvePaths(config: Config, base: string): Config {
  const at = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const logFile = (p: string) => (p === "" || p === "-" ? p : at(p));
  return {
    ...config,
    rules: at(config.rules),
    listsDir: at(config.listsDir),
    certs: at(config.certs),
    log: {
      ...config.log,
      access: { ...config.log.access, file: logFile(config.log.access.file) },
      queries: { ...config.log.queries, file: logFile(config.log.queries.file) },
    },
    proxy: { ...config.proxy, cache: { ...config.proxy.cache, dir: at(config.proxy.cache.dir) } },
    admin: { ...config.admin, state: config.admin.state === "" ? "" : at(config.admin.state) },
  };
}

export function parseConfig(text: string, file: string): Config {
  return parseWithPositions(text, file).config;
}

/** The config, and the line of a key path in the file (for checks made after parsing). */
function parseWithPositions(text: string, file: string): { config: Config; lineAt: (path: string[]) => number } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number) => lineCounter.linePos(offset).line;
  if (doc.errors.length > 0) {
    throw new DiagnosticsError(
      doc.errors.map((e) => {
        // A key given twice: name it, so the admin finds which of the two to remove.
        const key = e.code === "DUPLICATE_KEY" ? keyPathAt(doc.contents, e.pos[0], []) : undefined;
        return {
          file,
          line: lineOf(e.pos[0]),
          code: "GH_CONFIG_SYNTAX",
          message: key
            ? `${formatKeyPath(key)}: given twice in the same mapping; keep one`
            : `${e.message.split("\n")[0]}; fix the YAML syntax`,
        };
      }),
    );
  }
  const data: unknown = doc.toJS() ?? {};
  const result = configSchema.safeParse(data);
  if (result.success) return { config: result.data, lineAt: (path) => lineOfPath(doc, path, lineOf) };
  const diagnostics = result.error.issues.flatMap((issue) => describeIssue(issue, doc, data, file, lineOf));
  diagnostics.sort((a, b) => a.line - b.line);
  throw new DiagnosticsError(diagnostics);
}

/** The line of a key path's value, or of its nearest ancestor in the file. */
function lineOfPath(doc: Document, p: string[], lineOf: (offset: number) => number): number {
  for (let n = p.length; n >= 0; n--) {
    const node = doc.getIn(p.slice(0, n), true) as YamlNode | undefined;
    if (node?.range) return lineOf(node.range[0]);
  }
  return 1;
}

/** The key path of the mapping key that starts at `offset`, or undefined. */
function keyPathAt(node: unknown, offset: number, path: string[]): string[] | undefined {
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = pair.key as YamlNode | null;
      const name = isScalar(key) ? String(key.value) : String(key);
      if (key?.range?.[0] === offset) return [...path, name];
      const found = keyPathAt(pair.value, offset, [...path, name]);
      if (found) return found;
    }
  } else if (isSeq(node)) {
    for (const [i, item] of node.items.entries()) {
      const found = keyPathAt(item, offset, [...path, String(i)]);
      if (found) return found;
    }
  }
  return undefined;
}

/**
 * What a key that must be given looks like, for the message when it is missing (the schema's own
 * message would describe the type, like "expected a string or a list").
 */
const REQUIRED: Record<string, string> = {
  backend:
    'a URL like "http://10.0.0.20:8080" (or a list of them) for http and https, "host:port" like "10.0.0.30:21" for ftp and mail',
  name: "a short name of letters, digits, - and _, like intranet",
  protocol: "one of http, https, ftp, ftps, smtp, submission, smtps, pop3, pop3s, imap, imaps",
  listen: 'a list of addresses like ["0.0.0.0:443"]',
  url: "the http:// or https:// URL it is downloaded from",
};

function valueAt(data: unknown, path: readonly PropertyKey[]): { found: boolean; value: unknown } {
  let at: unknown = data;
  for (const p of path) {
    if (at === null || typeof at !== "object" || !(String(p) in (at as object))) return { found: false, value: undefined };
    at = (at as Record<string, unknown>)[String(p)];
  }
  return { found: true, value: at };
}

function describeIssue(
  issue: z.core.$ZodIssue,
  doc: Document,
  data: unknown,
  file: string,
  lineOf: (offset: number) => number,
): Diagnostic[] {
  const path = issue.path.map((p) => String(p));
  const keyPath = formatKeyPath(path) || "(top level)";
  const lineAt = (p: string[]): number => lineOfPath(doc, p, lineOf);
  if (issue.code === "unrecognized_keys") {
    const parent = doc.getIn(path, true);
    return issue.keys.map((key) => {
      let line = lineAt(path);
      if (isMap(parent)) {
        const pair = parent.items.find((p) => String((p.key as { value?: unknown })?.value ?? p.key) === key);
        const keyNode = pair?.key as YamlNode | undefined;
        if (keyNode?.range) line = lineOf(keyNode.range[0]);
      }
      const where = formatKeyPath([...path, key]);
      return {
        file,
        line,
        code: "GH_CONFIG_UNKNOWN_KEY",
        message: `${where}: unknown key; check the spelling against the README's config table`,
      };
    });
  }
  // A type the schema wanted where the file has nothing: the key is required (custom checks that
  // name a missing key say what to do themselves).
  const typed = issue.code === "invalid_type" || issue.code === "invalid_union" || issue.code === "invalid_value";
  if (typed && path.length > 0 && !valueAt(data, issue.path).found) {
    const last = path[path.length - 1] as string;
    const looks = REQUIRED[last];
    return [
      {
        file,
        line: lineAt(path),
        code: "GH_CONFIG_MISSING",
        message: `${keyPath}: required but missing; give ${looks ?? issueMessage(issue).replace(/^expected /, "")}`,
      },
    ];
  }
  return [{ file, line: lineAt(path), code: issueCode(issue), message: `${keyPath}: ${issueMessage(issue)}` }];
}

/** proxy.listen[0], the way the README names keys. */
function formatKeyPath(path: readonly string[]): string {
  return path.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}

function issueCode(issue: z.core.$ZodIssue): string {
  return issue.code === "invalid_type" ? "GH_CONFIG_TYPE" : "GH_CONFIG_VALUE";
}

function issueMessage(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return `expected ${issue.expected === "array" ? "a list" : issue.expected === "object" ? "a mapping of keys" : `a ${issue.expected}`}`;
    case "invalid_value":
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "invalid_union":
      return unionMessage(issue);
    case "too_small":
      return `must be at least ${String(issue.minimum)}`;
    case "too_big":
      return `must be at most ${String(issue.maximum)}`;
    default:
      return issue.message;
  }
}

const TYPE_NAMES: Record<string, string> = {
  string: "a string",
  number: "a number",
  boolean: "a boolean",
  array: "a list",
  object: "a mapping of keys",
};

/**
 * A value no branch of a union took: the types the branches expected ("a string or a list"), or,
 * when one branch took the type and failed inside, what that branch said.
 */
function unionMessage(issue: z.core.$ZodIssueInvalidUnion): string {
  const expected: string[] = [];
  for (const branch of issue.errors) {
    const first = branch[0];
    if (!first) continue;
    if (first.code === "invalid_type" && first.path.length === 0) expected.push(first.expected);
    else return issueMessage(first);
  }
  const names = [...new Set(expected)].map((t) => TYPE_NAMES[t] ?? `a ${t}`);
  return names.length > 0 ? `expected ${names.join(" or ")}` : "expected another kind of value";
}
