import { mkdtempSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { type FrontConfig, fronts } from "../../src/config/fronts-schema.js";
import { Events, type SessionEvent } from "../../src/events/events.js";
import type { TcpFront } from "../../src/fronts/tcp/front.js";
import { TCP_FRONTS } from "../../src/fronts/tcp.js";
import type { FrontDeps, FrontPart } from "../../src/fronts/types.js";
import { Activity } from "../../src/http/activity.js";
import type { Logger } from "../../src/log/logger.js";
import { Firewall } from "../../src/rules/firewall.js";
import { RuleSet } from "../../src/rules/ruleset.js";
import { CertStore } from "../../src/tls/cert-store.js";
import { issue, makeCa, type TestCa } from "./tls.js";

/** The office's certificate for the fronts (certs/office.crt), from a CA the test clients trust. */
export interface OfficeCerts {
  ca: TestCa;
  /** A PEM file of the CA, for clients (curl --cacert, openssl -CAfile, Python's cafile). */
  caFile: string;
  dir: string;
  store: CertStore;
}

export function officeCerts(names = ["mail.office.test", "ftp.office.test", "localhost", "127.0.0.1"]): OfficeCerts {
  const ca = makeCa("test office CA");
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-front-certs-"));
  const pair = issue(ca, names);
  writeFileSync(join(dir, "office.crt"), pair.cert);
  writeFileSync(join(dir, "office.key"), pair.key);
  const caFile = join(dir, "test-ca.pem");
  writeFileSync(caFile, ca.pem);
  const store = new CertStore(dir, undefined, () => undefined);
  store.load();
  return { ca, caFile, dir, store };
}

/** Program log lines, kept in memory so tests can look for the warnings a user would read. */
export function memoryLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push((JSON.parse(l) as { msg: string }).msg);
      cb();
    },
  });
  return { log: pino({ level: "debug" }, stream), lines };
}

export interface RunningFront {
  part: TcpFront;
  port: number;
  config: FrontConfig;
  sessions: SessionEvent[];
  logLines: string[];
  activity: Activity;
  deps: FrontDeps;
  /** Resolves with the next session event that matches. */
  nextSession(match?: (e: SessionEvent) => boolean): Promise<SessionEvent>;
  close(): Promise<void>;
}

/** One FTP or mail front built by its factory with FrontDeps for tests, prepared and committed on 127.0.0.1:0. */
export async function startTcpFront(
  input: Record<string, unknown>,
  opts: { certs: OfficeCerts; firewall?: string; previous?: FrontPart },
): Promise<RunningFront> {
  const [config] = fronts.parse([{ name: "t", listen: ["127.0.0.1:0"], health: { enabled: false }, ...input }]) as FrontConfig[];
  // Any listen address may be given; a test front binds 127.0.0.1 only.
  const cfg = config as FrontConfig;
  const events = new Events();
  const { log, lines } = memoryLog();
  const rules = new RuleSet([], Firewall.compile("rules/firewall.rules", opts.firewall ?? "").firewall);
  const activity = new Activity();
  const deps: FrontDeps = {
    log,
    events,
    rules: () => rules,
    certs: () => ({
      contextFor: (name) => opts.certs.store.contextFor(name),
      named: (name) => opts.certs.store.named(name),
    }),
    activity,
    handshakeTimeoutMs: 10_000,
  };
  const part = TCP_FRONTS[cfg.protocol as keyof typeof TCP_FRONTS](cfg, deps, opts.previous) as TcpFront;
  await part.prepare();
  part.commit();
  const sessions: SessionEvent[] = [];
  const waiters: { match: (e: SessionEvent) => boolean; resolve: (e: SessionEvent) => void }[] = [];
  events.session.subscribe((e) => {
    sessions.push(e);
    for (const w of [...waiters]) {
      if (!w.match(e)) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(e);
    }
  });
  return {
    part,
    port: part.addresses[0]?.port ?? 0,
    config: cfg,
    sessions,
    logLines: lines,
    activity,
    deps,
    nextSession: (match = () => true) =>
      new Promise((resolve) => {
        const seen = sessions.find(match);
        if (seen) {
          sessions.splice(sessions.indexOf(seen), 1);
          return resolve(seen);
        }
        waiters.push({
          match,
          resolve: (e) => {
            sessions.splice(sessions.indexOf(e), 1);
            resolve(e);
          },
        });
      }),
    close: async () => {
      part.stopAccepting();
      activity.destroyAll();
      await part.dispose();
    },
  };
}

/** A raw TCP client for hostile input: what it sends, and everything it receives until closed. */
export interface RawClient {
  socket: Socket;
  received(): string;
  /** Resolves once the text received (from offset `from` on) matches; with that text. */
  waitFor(re: RegExp, from?: number): Promise<string>;
  closed: Promise<void>;
}

export function rawClient(port: number, localAddress = "127.0.0.1"): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, localAddress });
    let text = "";
    const waiters: { re: RegExp; from: number; resolve: (s: string) => void }[] = [];
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
      for (const w of [...waiters])
        if (w.re.test(text.slice(w.from))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(text.slice(w.from));
        }
    });
    socket.on("error", () => {});
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    socket.once("connect", () =>
      resolve({
        socket,
        received: () => text,
        waitFor: (re, from = 0) =>
          re.test(text.slice(from))
            ? Promise.resolve(text.slice(from))
            : new Promise((r, rej) => {
                waiters.push({ re, from, resolve: r });
                void closed.then(() =>
                  re.test(text.slice(from))
                    ? r(text.slice(from))
                    : rej(new Error(`closed without ${re}; got: ${text.slice(-300)}`)),
                );
              }),
        closed,
      }),
    );
    socket.once("error", reject);
  });
}
