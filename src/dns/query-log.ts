import { type LineSink, openLineSink } from "../log/sink.js";
import type { DnsExchange, DnsOutcome } from "./exchange.js";
import { inspectAnswer, RCODE_NAME, TYPE_NAME } from "./wire.js";

/** One JSON line per query: client, name, type, answer summary, how it was answered, upstream, latency. */
export class QueryLog {
  private constructor(private readonly sink: LineSink | undefined) {}

  static open(file: string): QueryLog {
    return new QueryLog(openLineSink(file));
  }

  static toFunction(fn: (line: string) => void): QueryLog {
    return new QueryLog({ write: fn });
  }

  static none(): QueryLog {
    return new QueryLog(undefined);
  }

  write(x: DnsExchange, outcome: DnsOutcome, bytes: Buffer | null, ms: number): void {
    if (!this.sink || x.client.transport === "internal") return;
    let answer = "-";
    let rcode = "-";
    if (bytes) {
      try {
        const info = inspectAnswer(bytes);
        rcode = RCODE_NAME[info.rcode] ?? String(info.rcode);
        const parts = [...info.cnameTargets.map((c) => `CNAME ${c}`), ...info.addresses.map((a) => a.address)];
        answer = parts.length > 0 ? parts.join(", ") : info.truncated ? "(truncated)" : rcode;
      } catch {
        answer = "(unreadable)";
      }
    }
    this.sink.write(
      `${JSON.stringify({
        time: new Date().toISOString(),
        client: x.client.address,
        proto: x.client.transport,
        name: x.name,
        type: TYPE_NAME[x.type] ?? String(x.type),
        rcode,
        answer,
        result: outcome.result,
        upstream: x.log.upstream,
        rule: x.log.rule ? `${x.log.rule.file}:${x.log.rule.line}` : undefined,
        ms: Math.round(ms * 100) / 100,
      })}\n`,
    );
  }

  close(): void {
    this.sink?.end?.();
  }
}
