import { runCli } from "./cli/index.js";

const code = await runCli(process.argv.slice(2));
process.exitCode = code;
// A stopped server may leave timers (keep-alive pools) that would hold the process open.
if (process.argv[2] === "start" || code !== 0) setImmediate(() => process.exit(code));
