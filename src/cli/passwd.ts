import { hashPassword } from "../admin/auth/password.js";

/** Reads one line from stdin; on a terminal, without showing what is typed. */
function readSecret(prompt: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    let text = "";
    const tty = stdin.isTTY === true;
    if (tty) {
      process.stderr.write(prompt);
      stdin.setRawMode(true);
    }
    stdin.setEncoding("utf8");
    const done = (value: string | Error) => {
      stdin.off("data", onData);
      stdin.off("end", onEnd);
      if (tty) {
        stdin.setRawMode(false);
        process.stderr.write("\n");
      }
      stdin.pause();
      if (value instanceof Error) reject(value);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === "\n" || ch === "\r") return done(text);
        if (tty && ch === "\u0003") return done(new Error("cancelled"));
        if (tty && (ch === "\u007f" || ch === "\b")) text = text.slice(0, -1);
        else text += ch;
      }
    };
    const onEnd = () => done(text);
    stdin.on("data", onData);
    stdin.on("end", onEnd);
    stdin.resume();
  });
}

/**
 * gatehouse passwd: asks for the admin password (twice on a terminal; one line from a pipe) and
 * prints the scrypt hash to put in admin.password. The password itself is never stored.
 */
export async function passwdCommand(): Promise<number> {
  let password: string;
  try {
    password = await readSecret("New admin password: ");
    if (process.stdin.isTTY && (await readSecret("Again: ")) !== password) {
      process.stderr.write("gatehouse passwd: the two passwords differ; nothing was made\n");
      return 1;
    }
  } catch (err) {
    process.stderr.write(`gatehouse passwd: ${(err as Error).message}\n`);
    return 1;
  }
  if (password.length < 8) {
    process.stderr.write("gatehouse passwd: use at least 8 characters\n");
    return 2;
  }
  const hash = await hashPassword(password);
  process.stdout.write(`${hash}\n`);
  process.stderr.write(
    `put it in gatehouse.yaml:\n  admin:\n    password: "${hash}"\nthen reload (SIGHUP) or restart gatehouse\n`,
  );
  return 0;
}
