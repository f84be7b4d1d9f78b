import pino from "pino";

/** Where log lines go: a file, stdout, or a function in tests. */
export interface LineSink {
  write(line: string): unknown;
  flushSync?(): void;
  end?(): void;
}

/**
 * A buffered line sink for `file` ("-" = stdout, "" = none). Lines are written in batches of 8 KiB,
 * and at least every 250 ms so `tail -f` stays live: a write per line measurably cost throughput.
 */
export function openLineSink(file: string): LineSink | undefined {
  if (file === "") return undefined;
  const boom = pino.destination({ dest: file === "-" ? 1 : file, sync: false, minLength: 8 * 1024, mkdir: true });
  const timer = setInterval(() => {
    try {
      boom.flush();
    } catch {
      // Not open yet, or a write in flight: the next tick flushes.
    }
  }, 250);
  timer.unref();
  return {
    write: (l) => boom.write(l),
    flushSync: () => {
      try {
        boom.flushSync();
      } catch {
        // A sink that is not ready yet has nothing to flush.
      }
    },
    end: () => {
      clearInterval(timer);
      boom.end();
    },
  };
}
