import { type Diagnostic, DiagnosticsError, formatDiagnostic } from "../config/diagnostic.js";
import { loadConfig } from "../config/load.js";
import { DNS_FILE_KINDS } from "../dns/local.js";
import { Rules } from "../rules/rules.js";
import { checkTls } from "../tls/tls-part.js";

/** Validates the config and every rules file; prints file:line: reason for each problem; exit 1 on any. */
export async function checkCommand(args: { config?: string }): Promise<number> {
  let problems: Diagnostic[];
  let summary = "";
  try {
    const loaded = loadConfig(args.config);
    const rules = new Rules(loaded.config, undefined, DNS_FILE_KINDS);
    rules.load();
    const tls = checkTls(loaded.config);
    problems = [...rules.diagnostics(), ...tls.problems];
    const missing = rules.missingDirectory;
    if (missing) process.stdout.write(`warning: rules directory ${missing} does not exist; no rules apply until it is created\n`);
    const lists = rules.current.lists;
    const detail = new Map(
      lists.map((l) => [
        l.file,
        `${l.stats.entries} ${l.role} entr${l.stats.entries === 1 ? "y" : "ies"}${l.stats.exceptions ? `, ${l.stats.exceptions} exceptions` : ""}${l.stats.browserOnly ? `, ${l.stats.browserOnly} browser-only rules skipped` : ""}`,
      ]),
    );
    const perFile = rules
      .summary()
      .map((f) => `${f.file}: ${detail.get(f.file) ?? `${f.entries ?? 0} ${f.kind} entr${f.entries === 1 ? "y" : "ies"}`}`);
    summary = [
      ...perFile,
      ...tls.summary,
      `${loaded.file ?? "built-in defaults"}: ok; ${lists.length} list file${lists.length === 1 ? "" : "s"}, ${rules.current.firewall.size} firewall rule${rules.current.firewall.size === 1 ? "" : "s"}`,
    ].join("\n");
    await rules.close();
  } catch (err) {
    if (!(err instanceof DiagnosticsError)) throw err;
    problems = err.diagnostics;
  }
  for (const d of problems) process.stdout.write(`${formatDiagnostic(d)}\n`);
  if (problems.length > 0) {
    process.stdout.write(`${problems.length} problem${problems.length === 1 ? "" : "s"} found\n`);
    return 1;
  }
  process.stdout.write(`${summary}\n`);
  return 0;
}
