import cluster from "node:cluster";
import { availableParallelism } from "node:os";
import { Gatehouse } from "../app.js";
import { Supervisor, workerCount } from "../cluster/supervisor.js";
import { runWorker } from "../cluster/worker.js";
import { DiagnosticsError, formatDiagnostic } from "../config/diagnostic.js";
import { loadConfig } from "../config/load.js";

/** The running program as the signals see it: one process alone, or a supervisor of workers. */
interface Running {
  stop(): Promise<void>;
  reload(): Promise<unknown>;
  reopenLogs(): void;
  replaceWorkers?(): Promise<unknown>;
}

/**
 * Runs until SIGTERM/SIGINT (graceful stop, exit 0); SIGHUP reloads config and rules; SIGUSR1
 * reopens the log files (logrotate); SIGUSR2 replaces the workers one at a time. Listening for
 * SIGUSR1 also keeps Node's default for it, the inspector, from opening a debugger port on a signal.
 * With `workers` above 1 this process becomes their supervisor; a worker runs src/cluster/worker.ts.
 */
export async function startCommand(args: { config?: string }): Promise<number> {
  if (cluster.isWorker) return runWorker();
  // Signals are handled from the first moment: a SIGHUP that arrives while starting must not kill
  // the process (its default action), and a SIGTERM then stops it as soon as it is up.
  let app: Running | undefined;
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
  process.on("SIGUSR2", () => void app?.replaceWorkers?.());
  try {
    const loaded = loadConfig(args.config);
    const workers = workerCount(loaded.config, availableParallelism());
    app = workers > 1 ? await Supervisor.start(loaded, args.config, workers) : await Gatehouse.start({ configFile: args.config });
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
