import { closeSync, mkdirSync, openSync, write, writeSync } from "node:fs";
import { dirname } from "node:path";

/** Where log lines go: a file, stdout, or a function in tests. */
export interface LineSink {
  write(line: string): unknown;
  /** SIGUSR1 (logrotate): lines written so far go to the file as it was, later ones to a new one. */
  reopen?(): void;
  end?(): void;
}

const CHUNK = 64 * 1024;
const INTERVAL_MS = 250;
// A disk slower than the traffic: lines wait in memory up to this many bytes, then are dropped
// (and counted) rather than let a busy office grow the process without bound.
const MAX_QUEUED = 32 * 1024 * 1024;
/** In the write queue: switch to a freshly opened file once everything before it is written. */
const REOPEN = Symbol("reopen");

/**
 * A buffered line sink for `file` ("-" = stdout, "" = none). Lines are encoded straight into 64 KiB
 * buffers, written one buffer per write, and at least every 250 ms so `tail -f` stays live. Written
 * here rather than through pino's SonicBoom: measured, its per-line bookkeeping (and later a
 * join of queued strings) cost the proxy several percent of its request rate.
 */
export function openLineSink(file: string): LineSink | undefined {
  if (file === "") return undefined;
  if (file !== "-") mkdirSync(dirname(file), { recursive: true });
  let fd = file === "-" ? 1 : openSync(file, "a");
  let current = Buffer.allocUnsafe(CHUNK);
  let used = 0;
  const full: (Buffer | typeof REOPEN)[] = [];
  let queued = 0;
  let dropped = 0;
  let writing = false;
  let failed = false;

  const enqueue = (b: Buffer) => {
    if (queued + b.length > MAX_QUEUED) {
      if (dropped === 0) process.emitWarning(`log ${file}: the disk is not keeping up; lines are being dropped`);
      dropped++;
      return;
    }
    queued += b.length;
    full.push(b);
  };
  const seal = () => {
    if (used === 0) return;
    enqueue(current.subarray(0, used));
    current = Buffer.allocUnsafe(CHUNK);
    used = 0;
  };
  const swap = () => {
    try {
      const next = openSync(file, "a");
      closeSync(fd);
      fd = next;
      failed = false;
    } catch (err) {
      // Keep writing to the file we have: losing the log is worse than a rotation that did not happen.
      process.emitWarning(
        `log ${file} not reopened (${(err as NodeJS.ErrnoException).code ?? err}); still writing to the old file`,
      );
    }
  };
  const pump = () => {
    if (writing) return;
    const next = full.shift();
    if (next === undefined) return;
    if (next === REOPEN) {
      swap();
      pump();
      return;
    }
    queued -= next.length;
    if (failed) return pump();
    if (fd === 1) {
      process.stdout.write(next);
      pump();
      return;
    }
    writing = true;
    write(fd, next, 0, next.length, null, (err) => {
      writing = false;
      if (err) {
        // A full or failing disk: stop logging (until the next reopen) rather than queue lines forever.
        failed = true;
        process.emitWarning(
          `log ${file} not written (${err.code ?? err.message}); logging to it stopped until a reopen (SIGUSR1) or reload`,
        );
      }
      if (dropped > 0 && !failed) {
        process.emitWarning(`log ${file}: ${dropped} lines dropped while the disk was not keeping up`);
        dropped = 0;
      }
      pump();
    });
  };
  const timer = setInterval(() => {
    seal();
    pump();
  }, INTERVAL_MS);
  timer.unref();

  return {
    write(line: string) {
      if (failed) return;
      // Lines are at most a few KiB; a longer one gets a buffer of its own.
      if (used + line.length * 3 > CHUNK) {
        seal();
        pump();
        if (line.length * 3 > CHUNK) {
          enqueue(Buffer.from(line));
          pump();
          return;
        }
      }
      used += current.write(line, used);
    },
    reopen() {
      if (fd === 1) return;
      seal();
      full.push(REOPEN);
      pump();
    },
    end() {
      clearInterval(timer);
      seal();
      for (const b of full.splice(0)) {
        if (b === REOPEN) continue;
        if (failed) break;
        try {
          writeSync(fd, b);
        } catch {
          // Nothing more can be done at shutdown.
        }
      }
      if (fd !== 1) closeSync(fd);
    },
  };
}
