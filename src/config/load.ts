import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { type Document, isMap, LineCounter, parseDocument, type Node as YamlNode } from "yaml";
import type { z } from "zod";
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
 * embedded defaults. Throws DiagnosticsError listing every problem with its line.
 */
export function loadConfig(path: string | undefined): LoadedConfig {
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
  return { config: resolvePaths(parseConfig(text, file), dirname(resolve(file))), file };
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
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number) => lineCounter.linePos(offset).line;
  if (doc.errors.length > 0) {
    throw new DiagnosticsError(
      doc.errors.map((e) => ({
        file,
        line: lineOf(e.pos[0]),
        code: "GH_CONFIG_SYNTAX",
        message: `${e.message.split("\n")[0]}; fix the YAML syntax`,
      })),
    );
  }
  const data: unknown = doc.toJS() ?? {};
  const result = configSchema.safeParse(data);
  if (result.success) return result.data;
  const diagnostics = result.error.issues.flatMap((issue) => describeIssue(issue, doc, file, lineOf));
  diagnostics.sort((a, b) => a.line - b.line);
  throw new DiagnosticsError(diagnostics);
}

function describeIssue(issue: z.core.$ZodIssue, doc: Document, file: string, lineOf: (offset: number) => number): Diagnostic[] {
  const path = issue.path.map((p) => String(p));
  const keyPath = formatKeyPath(path) || "(top level)";
  const lineAt = (p: string[]): number => {
    for (let n = p.length; n >= 0; n--) {
      const node = doc.getIn(p.slice(0, n), true) as YamlNode | undefined;
      if (node?.range) return lineOf(node.range[0]);
    }
    return 1;
  };
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
      return "expected a string or a number";
    case "too_small":
      return `must be at least ${String(issue.minimum)}`;
    case "too_big":
      return `must be at most ${String(issue.maximum)}`;
    default:
      return issue.message;
  }
}
