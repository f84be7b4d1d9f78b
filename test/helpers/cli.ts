import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const BIN = fileURLToPath(new URL("../../bin/gatehouse.js", import.meta.url));

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real gatehouse command to completion. */
export function runGatehouse(args: string[], cwd?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

export interface Running {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  exited: Promise<number | null>;
  /** Resolves when stderr shows a line matching the pattern. */
  waitFor(pattern: RegExp, deadlineMs?: number): Promise<string>;
}

/** Starts `gatehouse start` as a real process, as an admin would. */
export function spawnGatehouse(args: string[], cwd?: string, env?: Record<string, string>): Running {
  const child = spawn(process.execPath, [BIN, "start", ...args], {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
    env: env ? { ...process.env, ...env } : undefined,
  });
  let err = "";
  let out = "";
  const waiters: { pattern: RegExp; resolve: (l: string) => void }[] = [];
  child.stderr?.on("data", (c: Buffer) => {
    err += c.toString();
    for (const w of [...waiters]) {
      const m = err.split("\n").find((l) => w.pattern.test(l));
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  return {
    child,
    stderr: () => err,
    stdout: () => out,
    exited,
    waitFor(pattern, deadlineMs = 20_000) {
      const line = err.split("\n").find((l) => pattern.test(l));
      if (line) return Promise.resolve(line);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no log line matching ${pattern} within ${deadlineMs} ms; stderr:\n${err}`)),
          deadlineMs,
        );
        waiters.push({
          pattern,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
  };
}
