import type { QueryEvent } from "../events/events.js";
import { type LineSink, openLineSink } from "../log/sink.js";
import { RCODE_NAME, TYPE_NAME } from "./wire.js";

/**
 * The query log: a subscriber of the resolver's query events that writes one JSON line per client
 * query: time, client, proto, name, type, rcode, answer summary, result, upstream, rule, ms.
 */
export class QueryLog {
  private constructor(private readonly sink: LineSink | undefined) {}

  static open(file: string): QueryLog {
    return new QueryLog(openLineSink(file));
  }

  static toFunction(fn: (line: string) => void): QueryLog {
    return new QueryLog({ write: fn });
  }

  /** Subscribe this to events.query. */
  writeEvent(e: QueryEvent): void {
    this.sink?.write(
      `${JSON.stringify({
        time: new Date(e.time).toISOString(),
        client: e.client,
        proto: e.proto,
        name: e.name,
        type: TYPE_NAME[e.type] ?? String(e.type),
        rcode: e.rcode < 0 ? "-" : (RCODE_NAME[e.rcode] ?? String(e.rcode)),
        answer: e.answer,
        result: e.result,
        upstream: e.upstream,
        rule: e.rule ? `${e.rule.file}:${e.rule.line}` : undefined,
        ms: Math.round(e.ms * 100) / 100,
      })}\n`,
    );
  }

  /** SIGUSR1: after logrotate moved the file, later lines go to a new one at the same path. */
  reopen(): void {
    this.sink?.reopen?.();
  }

  close(): void {
    this.sink?.end?.();
  }
}
