import { Gatehouse } from "../app.js";
import { DiagnosticsError, formatDiagnostic } from "../config/diagnostic.js";

/**
 * Runs until SIGTERM/SIGINT (graceful stop, exit 0); SIGHUP reloads config and rules; SIGUSR1
 * reopens the log files (logrotate). Listening for SIGUSR1 also keeps Node's default for it, the
 * inspector, from opening a debugger port on a signal.
 */
export async function startCommand(args: { config?: string }): Promise<number> {
  // Signals are handled from the first moment: a SIGHUP that arrives while starting must not kill
  // the process (its default action), and a SIGTERM then stops it as soon as it is up.
  let app: Gatehouse | undefined;
  let stopRequested = false;
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  const stop = () => {
    if (stopRequested) return;
    stopRequested = true;
    if (app)
      app.stop().then(
        () => finish(0),
        () => finish(1),
      );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("SIGHUP", () => void app?.reload());
  process.on("SIGUSR1", () => app?.reopenLogs());
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
  if (stopRequested) {
    stopRequested = false;
    stop();
  }
  return done;
}
