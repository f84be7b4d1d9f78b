import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

/** Debian's chromium (apt package `chromium`); CHROMIUM names another binary. Never a download. */
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

/**
 * One headless chromium for a test file; close it in `after`. Its own name lookups all fail, so
 * nothing it does in the background (or a page's stray link) can reach beyond loopback: tests
 * address servers by IP literal, and names asked through a proxy are resolved by the proxy.
 */
export async function launchChromium(opts: { args?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no chromium at ${CHROMIUM}: install Debian's (apt-get install chromium) or set CHROMIUM to a binary`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    env: opts.env,
    args: [
      // Chromium's sandbox refuses to run as root (CI containers); everywhere else it stays on.
      ...(process.getuid?.() === 0 ? ["--no-sandbox"] : []),
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE [::1]",
      ...(opts.args ?? []),
    ],
  });
}
