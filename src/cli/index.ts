import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { caCommand } from "./ca.js";
import { cacheCommand } from "./cache.js";
import { checkCommand } from "./check.js";
import { explainCommand } from "./explain.js";
import { passwdCommand } from "./passwd.js";
import { startCommand } from "./start.js";
import { statusCommand } from "./status.js";

const HELP = `gatehouse: the office's caching web proxy and DNS resolver

Usage:
  gatehouse start [-c FILE]      run with FILE (default ./gatehouse.yaml, else built-in defaults)
  gatehouse check [-c FILE]      validate the config and every rules file; exit 1 on any problem
  gatehouse explain URL|DOMAIN [--client IP] [-c FILE]
                                 which rule decides a URL or a domain, and which rules lost
  gatehouse status [-c FILE]     what the running gatehouse serves: listeners, rules, cache, DNS upstreams
  gatehouse passwd               print the hash of a new admin password, for admin.password
  gatehouse cache stats [-c FILE]          entries, bytes and hit ratio of the running proxy's cache
  gatehouse cache purge URL [-c FILE]      remove a URL (every Vary variant) from the cache
  gatehouse ca [-c FILE]         create the office CA in certs/ if missing, and show it
  gatehouse ca init [--force]    create the office CA (--force replaces an existing one)
  gatehouse ca show              subject, fingerprints and expiry of the office CA
  gatehouse ca export [--der] [--out FILE]
                                 the CA certificate to install in browsers (PEM, or DER)
  gatehouse --help | --version

Options:
  -c, --config FILE   config file (YAML)
  --client IP         (explain) the office client asking
  --der, --out FILE   (ca export) DER instead of PEM; a file instead of stdout
  --force             (ca init) replace an existing CA
  -h, --help          show this help
  -v, --version       print the version
`;

type Command = (args: { config?: string; positionals: string[]; values: Record<string, unknown> }) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  start: startCommand,
  check: checkCommand,
  explain: explainCommand,
  cache: cacheCommand,
  status: statusCommand,
  passwd: passwdCommand,
  ca: caCommand,
};

export async function runCli(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    process.stderr.write(`gatehouse: ${(err as Error).message}\nRun "gatehouse --help" for usage.\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const [name = "help", ...rest] = positionals;
  if (values.help || name === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`gatehouse: unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(", ")}\n`);
    return 2;
  }
  return command({ config: values.config, positionals: rest, values });
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string", short: "c" },
      client: { type: "string" },
      der: { type: "boolean" },
      out: { type: "string" },
      force: { type: "boolean" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "v" },
    },
  });
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}
