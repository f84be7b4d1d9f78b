import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Gatehouse } from "../../src/app.js";
import { type ConfigInput, configSchema } from "../../src/config/schema.js";
import { QueryLog } from "../../src/dns/query-log.js";
import { AccessLog } from "../../src/log/access-log.js";
import { silentLogger } from "../../src/log/logger.js";
import { rulesDir } from "./rules.js";

const run = promisify(execFile);

export interface TestResolver {
  app: Gatehouse;
  port: number;
  queryLines: string[];
  close(): Promise<void>;
}

/** gatehouse with only its DNS part on 127.0.0.1:0 (UDP and TCP on one port). */
export async function startResolver(dns: ConfigInput["dns"], extra: Omit<ConfigInput, "dns"> = {}): Promise<TestResolver> {
  const dir = extra.rules ?? rulesDir({});
  const config = configSchema.parse({
    rules: dir,
    listsDir: `${dir}/lists`,
    ...extra,
    proxy: { listen: [], ...(extra.proxy ?? {}) },
    dns: { listen: ["127.0.0.1:0"], ...dns },
    admin: { listen: "127.0.0.1:0" },
  });
  const queryLines: string[] = [];
  const app = await Gatehouse.start({
    config,
    log: silentLogger(),
    accessLog: AccessLog.toFunction(() => {}, "squid"),
    queryLog: QueryLog.toFunction((l) => queryLines.push(l)),
  });
  return { app, port: app.dnsAddresses[0]?.port ?? 0, queryLines, close: () => app.stop() };
}

export interface DigResult {
  status: string;
  flags: string[];
  answers: string[];
  authority: string[];
  question: string;
  raw: string;
}

/** The real dig client against 127.0.0.1:port. */
export async function dig(port: number, args: string[]): Promise<DigResult> {
  const { stdout } = await run("dig", ["@127.0.0.1", "-p", String(port), "+tries=1", "+time=3", "+nocookie", ...args]);
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
  return { status, flags, answers: section("ANSWER"), authority: section("AUTHORITY"), question, raw: stdout };
}

/** The TTL of the first answer line. */
export function ttlOf(line: string | undefined): number {
  return Number(line?.split(" ")[1]);
}
