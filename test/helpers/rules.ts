import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** A fresh rules directory with the given files (paths relative to it). */
export function rulesDir(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-rules-"));
  for (const [rel, text] of Object.entries(files)) writeRule(dir, rel, text);
  return dir;
}

export function writeRule(dir: string, rel: string, text: string): void {
  mkdirSync(dirname(join(dir, rel)), { recursive: true });
  writeFileSync(join(dir, rel), text);
}
