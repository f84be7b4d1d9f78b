import type { QueryEvent } from "../events/events.js";
import { type LineSink, openLineSink } from "../log/sink.js";
import { RCODE_NAME, TYPE_NAME } from "./wire.js";

/** A string as a JSON value (quoted and escaped). */
const str = (s: string): string => JSON.stringify(s);

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

  /**
   * Subscribe this to events.query. The line is written out field by field rather than through
   * JSON.stringify of an object, and the timestamp is formatted once per millisecond: together a
   * sixth of the CPU time of a cached answer. The same bytes as JSON.stringify would write (fields
   * in this order, upstream and rule left out when there is none).
   */
  writeEvent(e: QueryEvent): void {
    if (this.sink === undefined) return;
    // Quoted as they are: addresses, "host:port", and words of fixed sets (proto, type, rcode,
    // result). Names, answers and rule paths can hold quotes or backslashes: escaped.
    let line = `{"time":"${this.iso(e.time)}","client":"${e.client}","proto":"${e.proto}","name":${str(e.name)},"type":"${
      TYPE_NAME[e.type] ?? String(e.type)
    }","rcode":"${e.rcode < 0 ? "-" : (RCODE_NAME[e.rcode] ?? String(e.rcode))}","answer":${str(e.answer)},"result":"${e.result}"`;
    if (e.upstream !== undefined) line += `,"upstream":"${e.upstream}"`;
    if (e.rule) line += `,"rule":${str(`${e.rule.file}:${e.rule.line}`)}`;
    this.sink.write(`${line},"ms":${Math.round(e.ms * 100) / 100}}\n`);
  }

  private isoTime = Number.NaN;
  private isoText = "";

  /** Epoch ms as ISO 8601; queries come many to a millisecond. */
  private iso(time: number): string {
    if (time !== this.isoTime) {
      this.isoTime = time;
      this.isoText = new Date(time).toISOString();
    }
    return this.isoText;
  }

  /** SIGUSR1: after logrotate moved the file, later lines go to a new one at the same path. */
  reopen(): void {
    this.sink?.reopen?.();
  }

  close(): void {
    this.sink?.end?.();
  }
}
