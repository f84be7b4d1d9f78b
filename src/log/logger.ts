import pino from "pino";

export type Logger = pino.Logger;

/** The program log: JSON lines on stderr, so stdout stays free for the access log. */
export function createLogger(level: string, base?: Record<string, unknown>): Logger {
  return pino({ level, base: base ?? undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}

/** For tests and tools that must stay quiet. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
