import { DiagnosticsError, formatDiagnostic } from "../config/diagnostic.js";
import { loadConfig } from "../config/load.js";

/** Validates the config (and, through the parts that read files, every rules file); exit 1 on any problem. */
export async function checkCommand(args: { config?: string }): Promise<number> {
  try {
    const loaded = loadConfig(args.config);
    process.stdout.write(`${loaded.file ?? "built-in defaults"}: ok\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof DiagnosticsError)) throw err;
    for (const d of err.diagnostics) process.stdout.write(`${formatDiagnostic(d)}\n`);
    process.stdout.write(`${err.diagnostics.length} problem${err.diagnostics.length === 1 ? "" : "s"} found\n`);
    return 1;
  }
}
