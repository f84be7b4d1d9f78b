import { DiagnosticsError, formatDiagnostic } from "../config/diagnostic.js";
import { loadConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";

/**
 * What a CLI command works from, made from the config (the config itself by default), or undefined
 * once what is wrong (each config problem with its file:line) has been written to stderr: the
 * command then exits 1.
 */
export function configForCommand<T = Config>(
  file: string | undefined,
  command: string,
  make: (config: Config) => T = (c) => c as T,
): T | undefined {
  try {
    // These commands talk to the running gatehouse: files the config names are its business.
    return make(loadConfig(file, { files: false }).config);
  } catch (err) {
    if (err instanceof DiagnosticsError) for (const d of err.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
    else process.stderr.write(`gatehouse ${command}: ${(err as Error).message}\n`);
    return undefined;
  }
}
