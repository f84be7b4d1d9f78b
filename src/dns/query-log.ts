import pino from "pino";
import type { DnsExchange, DnsOutcome } from "./exchange.js";
import { inspectAnswer, RCODE_NAME, TYPE_NAME } from "./wire.js";

type Sink = { write(line: string): unknown; end?(): void };

/** One JSON line per query: client, name, type, answer summary, how it was answered, upstream, latency. */
export class QueryLog {
  private constructor(private readonly sink: Sink | undefined) {}

  static open(file: string): QueryLog {
    if (file === "") return new QueryLog(undefined);
    const boom = pino.destination({ dest: file === "-" ? 1 : file, sync: false, minLength: 8 * 1024, mkdir: true });
    const timer = setInterval(() => {
      try {
        boom.flush();
      } catch {
        // Not open yet, or a write in flight: the next tick flushes.
      }
    }, 250);
    timer.unref();
    return new QueryLog({
      write: (l) => boom.write(l),
      end: () => {
        clearInterval(timer);
        boom.end();
      },
    });
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
