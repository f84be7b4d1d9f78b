import { Gatehouse } from "../app.js";
import { DiagnosticsError, formatDiagnostic } from "../config/diagnostic.js";

/** Runs until SIGTERM/SIGINT (graceful stop, exit 0); SIGHUP reloads config and rules. */
export async function startCommand(args: { config?: string }): Promise<number> {
  let app: Gatehouse;
  try {
    app = await Gatehouse.start({ configFile: args.config });
  } catch (err) {
    if (err instanceof DiagnosticsError) {
      for (const d of err.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
      process.stderr.write("gatehouse: not started; fix the problems above (gatehouse check lists them too)\n");
    } else {
      process.stderr.write(`gatehouse: cannot start: ${(err as Error).message}\n`);
    }
    return 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      app.stop().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    process.on("SIGHUP", () => void app.reload());
  });
}
