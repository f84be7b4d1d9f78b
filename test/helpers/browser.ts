import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

/** Debian's chromium (apt package `chromium`); CHROMIUM names another binary. Never a download. */
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

/** One headless chromium for a test file; close it in `after`. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no chromium at ${CHROMIUM}: install Debian's (apt-get install chromium) or set CHROMIUM to a binary`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    // Chromium's sandbox refuses to run as root (CI containers); everywhere else it stays on.
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
}
