import { isIP } from "node:net";
import { Gatehouse } from "../app.js";
import { ExplainInputError, type Explanation, formatExplanation } from "../explain/explain.js";
import { AdminClient, ApiError, NoToken, NotRunning } from "./admin-client.js";
import { configForCommand } from "./config.js";

/**
 * gatehouse explain URL|DOMAIN [--client IP]: the decision in force and the rule behind it. Asks
 * the running gatehouse (what it serves is what is explained: last good versions of files with
 * errors, local records before lists, proxy.clients); only when none runs, or it cannot be asked
 * (admin.listen off, no CLI token), are the files read, and it says so.
 */
export async function explainCommand(args: {
  config?: string;
  positionals: string[];
  values: Record<string, unknown>;
}): Promise<number> {
  const target = args.positionals[0];
  if (!target) {
    process.stderr.write("usage: gatehouse explain URL|DOMAIN [--client IP] [-c FILE]\n");
    return 2;
  }
  const client = args.values.client as string | undefined;
  if (client !== undefined && isIP(client) === 0) {
    process.stderr.write(`gatehouse explain: --client ${client} is not an IP address\n`);
    return 2;
  }
  const config = configForCommand(args.config, "explain");
  if (!config) return 1;
  let e: Explanation | undefined;
  try {
    const query = `target=${encodeURIComponent(target)}${client ? `&client=${encodeURIComponent(client)}` : ""}`;
    let why = "";
    if (config.admin.listen === "") why = "admin.listen is off, so there is no running gatehouse to ask";
    else {
      try {
        e = await new AdminClient(config).call<Explanation>("GET", `/api/explain?${query}`);
      } catch (err) {
        if (err instanceof NotRunning) why = `no running gatehouse answers on ${err.base}`;
        else if (err instanceof NoToken) why = `cannot ask the running gatehouse: ${err.message}`;
        else throw err;
      }
    }
    if (e === undefined) {
      process.stderr.write(`gatehouse explain: ${why}; explained from the files\n`);
      e = await Gatehouse.explainFromFiles(config, target, client);
    }
  } catch (err) {
    if (err instanceof ExplainInputError || (err instanceof ApiError && err.status === 400)) {
      process.stderr.write(`gatehouse explain: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`gatehouse explain: ${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(formatExplanation(e));
  return 0;
}
