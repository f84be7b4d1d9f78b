import { writeFileSync } from "node:fs";
import { CaError, OfficeCa } from "../tls/ca.js";
import { configForCommand } from "./config.js";

const USAGE = "usage: gatehouse ca [init [--force] | show | export [--der] [--out FILE]] [-c FILE]\n";

/**
 * gatehouse ca: the office CA in certs/. Bare: create it if missing, then show it. init: create it
 * (an existing one is kept unless --force: office browsers trust it). show: subject, fingerprints,
 * expiry. export: the certificate to install, PEM or DER, to stdout or --out FILE.
 */
export async function caCommand(args: {
  config?: string;
  positionals: string[];
  values: Record<string, unknown>;
}): Promise<number> {
  const [action = "", ...rest] = args.positionals;
  if (!["", "init", "show", "export"].includes(action) || rest.length > 0) {
    process.stderr.write(USAGE);
    return 2;
  }
  const config = configForCommand(args.config, "ca");
  if (!config) return 1;
  const dir = config.certs;
  try {
    if (action === "init" || (action === "" && !OfficeCa.exists(dir))) {
      const ca = OfficeCa.create(dir, config.tls.caName, args.values.force === true);
      process.stdout.write(`created the office CA in ${dir} (ca.key is readable by you only)\n`);
      show(ca);
      process.stdout.write(`install ${ca.certFile} in the office browsers, or have them open http://<proxy>/ca\n`);
      return 0;
    }
    const ca = OfficeCa.load(dir);
    if (action === "export") {
      const bytes = args.values.der === true ? ca.der : Buffer.from(ca.pem);
      const out = args.values.out as string | undefined;
      if (out) {
        writeFileSync(out, bytes);
        process.stderr.write(`wrote ${out}\n`);
      } else process.stdout.write(bytes);
      return 0;
    }
    show(ca);
    return 0;
  } catch (err) {
    if (err instanceof CaError) {
      process.stderr.write(`gatehouse ca: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function show(ca: OfficeCa): void {
  const s = ca.summary();
  process.stdout.write(
    [
      `certificate: ${s.certFile}`,
      `subject:     ${s.subject}`,
      `key:         ${s.keyType}`,
      `valid:       ${s.notBefore} to ${s.notAfter}`,
      `SHA-256:     ${s.sha256}`,
      `SHA-1:       ${s.sha1}`,
      "",
    ].join("\n"),
  );
}
