import { execFile } from "node:child_process";
import { createSocket } from "node:dgram";
import { connect, type Socket } from "node:net";
import { promisify } from "node:util";
import pino from "pino";
import { type ConfigInput, configSchema } from "../../src/config/schema.js";
import { DNS_FILE_KINDS } from "../../src/dns/local.js";
import { QueryLog } from "../../src/dns/query-log.js";
import { DnsResolver } from "../../src/dns/resolver.js";
import { DnsServer } from "../../src/dns/server.js";
import { buildQuery } from "../../src/dns/wire.js";
import { Events, type QueryEvent } from "../../src/events/events.js";
import type { Logger } from "../../src/log/logger.js";
import { Rules } from "../../src/rules/rules.js";
import { rulesDir } from "./rules.js";

const run = promisify(execFile);

/** A clock the test moves: TTLs, prefetch, serve-stale and the rate limit read it instead of Date.now. */
export class TestClock {
  t = Date.UTC(2026, 0, 1);
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** A pino logger whose lines the test can read. */
export function captureLogger(): { log: Logger; lines: { level: number; msg: string; [k: string]: unknown }[] } {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: "debug", base: undefined }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines };
}

export interface TestResolver {
  port: number;
  resolver: DnsResolver;
  server: DnsServer;
  events: Events;
  clock: TestClock;
  /** JSON lines of the query log, as the log file would have them. */
  queryLines: string[];
  /** Program log lines (warnings of the rate limit, failed background tasks). */
  logLines: { level: number; msg: string }[];
  /** Resolves with the next query event that matches. */
  nextQuery(match: (e: QueryEvent) => boolean): Promise<QueryEvent>;
  close(): Promise<void>;
}

/**
 * The DNS parts alone (rules, resolver, listeners on 127.0.0.1:0), wired as the app wires them,
 * with a clock the test moves and the query log captured.
 */
export async function startResolver(
  dns: ConfigInput["dns"],
  extra: Omit<ConfigInput, "dns"> = {},
  /** watch: the rules directory is watched as the app watches it, so a test's edits apply. */
  opts: { watch?: boolean } = {},
): Promise<TestResolver> {
  const dir = extra.rules ?? rulesDir({});
  const config = configSchema.parse({
    rules: dir,
    listsDir: `${dir}/lists`,
    ...extra,
    proxy: { listen: [] },
    dns: { listen: ["127.0.0.1:0"], ...dns },
    admin: { listen: "" },
  });
  const { log, lines: logLines } = captureLogger();
  const clock = new TestClock();
  const rules = new Rules(config, log, DNS_FILE_KINDS);
  rules.load();
  if (opts.watch) rules.start();
  const events = new Events((channel, err) => {
    throw new Error(`${channel} sink failed: ${String(err)}`);
  });
  const queryLines: string[] = [];
  const queryLog = QueryLog.toFunction((l) => queryLines.push(l.trimEnd()));
  const unsubscribe = events.query.subscribe((e) => queryLog.writeEvent(e));
  const resolver = new DnsResolver({ cfg: config.dns, rules, log, events, now: clock.now });
  const server = new DnsServer({
    listen: config.dns.listen,
    resolver: () => resolver,
    log,
    tcpIdleTimeout: config.dns.tcpIdleTimeout,
  });
  await resolver.prepare();
  await server.prepare();
  resolver.commit();
  server.commit();
  return {
    port: server.addresses[0]?.port ?? 0,
    resolver,
    server,
    events,
    clock,
    queryLines,
    logLines,
    nextQuery: (match) =>
      new Promise((resolve) => {
        const off = events.query.subscribe((e) => {
          if (!match(e)) return;
          off();
          resolve(e);
        });
      }),
    close: async () => {
      unsubscribe();
      await server.dispose();
      await resolver.dispose();
      await rules.close();
    },
  };
}

export interface DigResult {
  status: string;
  flags: string[];
  answers: string[];
  authority: string[];
  additional: string[];
  question: string;
  raw: string;
}

/** The real dig client against server:port (127.0.0.1 unless said). */
export async function dig(port: number, args: string[], server = "127.0.0.1"): Promise<DigResult> {
  const { stdout } = await run("dig", [`@${server}`, "-p", String(port), "+tries=1", "+time=3", "+nocookie", ...args]);
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? "";
  const flags = (/;; flags: ([^;]*);/.exec(stdout)?.[1] ?? "").trim().split(/\s+/);
  const section = (title: string) => {
    const m = new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(stdout);
    return m
      ? (m[1] as string)
          .split("\n")
          .filter((l) => l && !l.startsWith(";"))
          .map((l) => l.replace(/\s+/g, " "))
      : [];
  };
  const question = (/;; QUESTION SECTION:\n;(\S+)/.exec(stdout)?.[1] ?? "").trim();
  return {
    status,
    flags,
    answers: section("ANSWER"),
    authority: section("AUTHORITY"),
    additional: section("ADDITIONAL"),
    question,
    raw: stdout,
  };
}

/** The TTL of the first answer line. */
export function ttlOf(line: string | undefined): number {
  return Number(line?.split(" ")[1]);
}

/** Polls `check` until it holds or the deadline passes (a condition, never a fixed sleep). */
export async function until(check: () => boolean, what: string, deadlineMs = 5000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** One raw UDP exchange; null if nothing came back within waitMs (used where no answer is the answer). */
export function udpExchange(port: number, bytes: Buffer, waitMs = 300): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = createSocket("udp4");
    const timer = setTimeout(() => {
      s.close();
      resolve(null);
    }, waitMs);
    s.on("message", (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m);
    });
    s.send(bytes, port, "127.0.0.1");
  });
}

/** A query for `name` with the given ID, as bytes (EDNS with 1232 bytes, as dig sends). */
export function query(id: number, name: string, type = 1, qclass = 1): Buffer {
  return buildQuery(id, name, type, qclass);
}

/** A query with its two-byte TCP length prefix. */
export function framed(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length, 0);
  return Buffer.concat([len, msg]);
}

/** A TCP client that collects every framed answer it receives. */
export class TcpClient {
  readonly answers: Buffer[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  readonly socket: Socket;
  readonly ready: Promise<void>;

  constructor(port: number) {
    this.socket = connect(port, "127.0.0.1");
    this.ready = new Promise((resolve, reject) => {
      this.socket.once("connect", () => resolve());
      this.socket.once("error", reject);
    });
    this.socket.on("error", () => {});
    this.socket.on("close", () => {
      this.closed = true;
    });
    this.socket.on("data", (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      while (this.buf.length >= 2 && this.buf.length >= 2 + this.buf.readUInt16BE(0)) {
        this.answers.push(this.buf.subarray(2, 2 + this.buf.readUInt16BE(0)));
        this.buf = this.buf.subarray(2 + this.buf.readUInt16BE(0));
      }
    });
  }
}
