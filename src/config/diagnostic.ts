/** A problem in a file the admin edits: where it is, what is wrong and, in `message`, what to do. */
export interface Diagnostic {
  file: string;
  line: number;
  message: string;
  /** Stable code listed in the README's error table, e.g. GH_CONFIG_TYPE. */
  code: string;
}

/** "file:line: message"; a problem with the file as a whole (line 0) has no line. */
export function formatDiagnostic(d: Diagnostic): string {
  return d.line > 0 ? `${d.file}:${d.line}: ${d.message}` : `${d.file}: ${d.message}`;
}

/** Thrown where a whole file or config is rejected; carries every problem found, not only the first. */
export class DiagnosticsError extends Error {
  constructor(readonly diagnostics: Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join("\n"));
    this.name = "DiagnosticsError";
  }
}
