import { randomBytes } from "node:crypto";
import { lstat, mkdir, readFile, realpath, rename, unlink, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, sep } from "node:path";
import type { Diagnostic } from "../config/diagnostic.js";
import { DNS_FILE_KINDS } from "../dns/local.js";
import { allowFiles, blockFiles, firewallFile, interceptFiles } from "../rules/kinds.js";
import type { FileKind } from "../rules/store.js";
import { AdminError } from "./http.js";

/**
 * The kinds of file the browser may edit: every kind the rules store reads from rules/ (the list in
 * rules/rules.ts plus the DNS kinds), so every file the Rules page lists can be opened and saved.
 */
const EDITABLE: readonly FileKind[] = [blockFiles, allowFiles, firewallFile, interceptFiles, ...DNS_FILE_KINDS];

/** A rules file written from the browser: the edit, validated, is at most this big. */
export const MAX_EDIT_BYTES = 4 * 1024 * 1024;
/** Bigger edits compile on a worker thread, so validating never stalls traffic. */
const OFF_THREAD_BYTES = 256 * 1024;

export interface RuleFile {
  /** Relative to rules/, "/"-separated: "block/ads.txt". */
  rel: string;
  abs: string;
  kind: FileKind;
}

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/**
 * A path from the browser, checked before anything touches the disk: relative, inside rules/,
 * no "..", no hidden or odd names, no symbolic link anywhere on the way, and a kind of file the
 * rules store reads. Whatever fails is refused with the reason.
 */
export async function resolveRuleFile(rulesDir: string, input: string): Promise<RuleFile> {
  const refuse = (why: string) => new AdminError(400, "GH_ADMIN_BAD_PATH", `"${input.slice(0, 200)}": ${why}`);
  if (input.length === 0 || input.length > 200) throw refuse("give a path inside rules/ like block/ads.txt");
  if (input.includes("\0") || input.includes("\\")) throw refuse("a path with a NUL or a backslash is not a rules file");
  if (isAbsolute(input) || input.startsWith("/")) throw refuse("give the path relative to rules/, like block/ads.txt");
  const segments = input.split("/");
  if (segments.some((s) => s === ".." || s === ".")) throw refuse('".." and "." would leave rules/; give a path inside it');
  if (!segments.every((s) => SEGMENT.test(s))) {
    throw refuse("each part of the path must be letters, digits, '.', '_' or '-', not starting with '.'");
  }
  const rel = segments.join("/");
  const kind = EDITABLE.find((k) => k.matches(rel));
  if (!kind) {
    throw refuse(
      "not a file the rules store reads; use block/NAME.txt, allow/NAME.txt, firewall.rules, intercept.txt, no-intercept.txt, hosts or zones/NAME.zone",
    );
  }
  let root: string;
  try {
    root = await realpath(rulesDir);
  } catch {
    throw new AdminError(404, "GH_ADMIN_NO_RULES_DIR", `the rules directory ${rulesDir} does not exist; create it first`);
  }
  // Every step below the root must be a real directory (or missing) and the file a regular file or
  // missing: a symbolic link anywhere could lead the write outside rules/.
  let at = root;
  for (const [i, s] of segments.entries()) {
    at = join(at, s);
    const st = await lstat(at).catch(() => undefined);
    if (!st) break;
    if (st.isSymbolicLink()) throw refuse("a symbolic link is on the way; edit the file it points to on the server");
    const last = i === segments.length - 1;
    if (last ? !st.isFile() : !st.isDirectory()) throw refuse(last ? "not a regular file" : `${s} is not a directory`);
  }
  const abs = join(root, ...segments);
  const back = relative(root, abs);
  if (back.startsWith("..") || isAbsolute(back) || back.split(sep).join("/") !== rel) throw refuse("leaves rules/");
  return { rel, abs, kind };
}

/** A file's version as the editor saw it, so a save does not undo someone else's change. */
export async function versionOf(abs: string): Promise<string> {
  const st = await lstat(abs).catch(() => undefined);
  return st ? stampOf(st) : "";
}

const stampOf = (st: { mtimeMs: number; size: number }) => `${Math.trunc(st.mtimeMs)}-${st.size}`;

export async function readRuleFile(f: RuleFile): Promise<{ text: string; version: string }> {
  const st = await lstat(f.abs).catch(() => undefined);
  if (!st) return { text: "", version: "" };
  if (st.size > MAX_EDIT_BYTES) {
    throw new AdminError(
      413,
      "GH_ADMIN_TOO_LARGE",
      `${f.rel} holds ${st.size} bytes, more than the ${MAX_EDIT_BYTES} a browser edit takes; edit it on the server or make it a remote list`,
    );
  }
  return { text: await readFile(f.abs, "utf8"), version: stampOf(st) };
}

/** Problems the rules store would report for this text, without saving it. */
export async function validate(f: RuleFile, text: string): Promise<Diagnostic[]> {
  const compiled =
    text.length >= OFF_THREAD_BYTES && f.kind.compileOffThread
      ? await f.kind.compileOffThread(f.rel, text)
      : f.kind.compile(f.rel, text);
  return compiled.diagnostics;
}

/**
 * Writes a file inside rules/ whole: a hidden temp file beside it (the store skips dot files),
 * created exclusively (never through an existing name or link), then renamed over the file, so
 * the store never reads half an edit.
 */
export async function writeRuleFile(f: RuleFile, text: string): Promise<void> {
  await mkdir(dirname(f.abs), { recursive: true });
  const tmp = join(dirname(f.abs), `.${f.rel.split("/").at(-1)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await writeFile(tmp, text, { flag: "wx", mode: 0o644 });
    await rename(tmp, f.abs);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}
