import { stat } from "node:fs/promises";
import { isIP } from "node:net";
import { isAbsolute, relative, resolve, sep } from "node:path";
import pino from "pino";
import { formatDiagnostic } from "../../config/diagnostic.js";
import { ExplainInputError } from "../../explain/explain.js";
import { publicRulePath } from "../../http/pages.js";
import { RemoteLists, remoteListPath } from "../../rules/remote.js";
import { AdminError, readJson, stringField } from "../http.js";
import { MAX_EDIT_BYTES, readRuleFile, resolveRuleFile, validate, versionOf, writeRuleFile } from "../rules-files.js";
import { type Ctx, param, type Route } from "./route.js";

/** A path under `dir`, "/"-separated, or undefined when it is not under it. */
function under(dir: string, file: string): string | undefined {
  const rel = relative(resolve(dir), resolve(file));
  return rel === "" || rel.startsWith("..") || isAbsolute(rel) ? undefined : rel.split(sep).join("/");
}

const mtime = async (file: string) => (await stat(file).catch(() => undefined))?.mtimeMs;

async function listRules(c: Ctx) {
  const { rules: rulesDir, listsDir } = c.src.config;
  const roots = c.src.rules.roots;
  const summary = c.src.rules.summary();
  const diagnostics = c.src.rules.diagnostics();
  const files = await Promise.all(
    summary.map(async (f) => {
      const inRules = under(rulesDir, f.file);
      const st = await stat(f.file).catch(() => undefined);
      const resolvable =
        inRules !== undefined &&
        (await resolveRuleFile(rulesDir, inRules).then(
          () => true,
          () => false,
        ));
      return {
        path: publicRulePath(f.file, roots),
        source: inRules !== undefined ? "rules" : "lists",
        kind: f.kind,
        entries: f.entries ?? null,
        errors: f.errors,
        changed: st?.mtimeMs ?? null,
        // Big lists are edited on the server (or come as remote lists), not in a text box.
        editable: resolvable && (st?.size ?? 0) <= MAX_EDIT_BYTES,
      };
    }),
  );
  const remote = await Promise.all(
    c.src.config.lists.map(async (l) => {
      const file = remoteListPath(listsDir, l);
      const held = summary.find((f) => resolve(f.file) === resolve(file));
      return {
        url: l.url,
        type: l.type,
        refreshSeconds: Math.round(l.refresh / 1000),
        path: publicRulePath(file, roots),
        lastFetch: (await mtime(file)) ?? null,
        entries: held?.entries ?? null,
        status: c.state.listStatus.get(l.url) ?? (held ? "a good copy is in force" : "not downloaded yet"),
      };
    }),
  );
  return {
    rulesDir,
    files,
    errors: diagnostics.map((d) => ({
      file: publicRulePath(d.file, roots),
      line: d.line,
      code: d.code,
      message: d.message,
      text: formatDiagnostic({ ...d, file: publicRulePath(d.file, roots) }),
    })),
    remote,
  };
}

/**
 * Downloads one remote list now, through the same code as the schedule. Its outcome is read from
 * what that code logs (it reports failures only there), so the page can say why it failed.
 */
async function refreshList(c: Ctx, url: string): Promise<{ url: string; updated: boolean; status: string }> {
  const list = c.src.config.lists.find((l) => l.url === url);
  if (!list) throw new AdminError(404, "GH_ADMIN_NO_LIST", `no remote list with that url in the config's lists`);
  let failure: string | undefined;
  const capture = pino(
    { level: "info", base: undefined },
    {
      write(line: string) {
        const entry = JSON.parse(line) as { level: number; msg: string; err?: string };
        if (entry.level >= 40) failure = entry.err ?? entry.msg;
      },
    },
  );
  const remote = new RemoteLists([list], c.src.config.listsDir, capture);
  let updated: boolean;
  c.state.refreshes.add(remote);
  try {
    updated = await remote.fetch(list);
  } finally {
    c.state.refreshes.delete(remote);
    await remote.stop();
  }
  if (updated) c.src.rules.rescan();
  await c.src.rules.settle();
  const status = updated
    ? `updated ${new Date().toISOString()}`
    : failure
      ? `failed ${new Date().toISOString()}: ${failure}; the last good copy stays in force`
      : `unchanged ${new Date().toISOString()}`;
  c.state.listStatus.set(url, status);
  c.log.info({ url, updated, failure }, `admin: remote list ${url} refreshed: ${status}`);
  return { url, updated, status };
}

export const ruleRoutes: Route[] = [
  { method: "GET", path: "/api/rules", access: "read", handle: listRules },
  {
    method: "GET",
    path: "/api/rules/file",
    access: "read",
    async handle(c) {
      const f = await resolveRuleFile(c.src.config.rules, param(c.url, "path", 300) ?? "");
      const { text, version } = await readRuleFile(f);
      const problems = c.src.rules.diagnostics().filter((d) => resolve(d.file) === f.abs);
      return {
        path: f.rel,
        kind: f.kind.name,
        exists: version !== "",
        version,
        text,
        errors: problems.map((d) => ({ ...d, file: f.rel })),
      };
    },
  },
  {
    method: "PUT",
    path: "/api/rules/file",
    access: "change",
    async handle(c) {
      const body = await readJson(c.req, MAX_EDIT_BYTES + 64 * 1024);
      const f = await resolveRuleFile(c.src.config.rules, stringField(body, "path", 300) as string);
      const text = body.text;
      if (typeof text !== "string") throw new AdminError(400, "GH_ADMIN_BAD_FIELD", '"text" must be the whole file as a string');
      if (Buffer.byteLength(text) > MAX_EDIT_BYTES) {
        throw new AdminError(
          413,
          "GH_ADMIN_TOO_LARGE",
          `a rules file edited here holds at most ${MAX_EDIT_BYTES} bytes; use a remote list for big lists`,
        );
      }
      const version = typeof body.version === "string" ? body.version : undefined;
      const errors = await validate(f, text);
      if (errors.length > 0) {
        throw new AdminError(422, "GH_ADMIN_RULE_ERRORS", `${f.rel} was not saved: ${errors.length} line(s) have errors`, {
          errors: errors.map((d) => ({ ...d, file: f.rel, text: formatDiagnostic({ ...d, file: f.rel }) })),
        });
      }
      await c.state.serialize(async () => {
        if (version !== undefined && (await versionOf(f.abs)) !== version) {
          throw new AdminError(
            409,
            "GH_ADMIN_CHANGED",
            `${f.rel} changed on the server since you opened it; reload it and edit again`,
          );
        }
        await writeRuleFile(f, text);
      });
      c.src.rules.rescan();
      await c.src.rules.settle();
      c.log.info({ file: f.rel, client: c.client }, `admin: ${f.rel} saved from the dashboard`);
      const held = c.src.rules.summary().find((s) => resolve(s.file) === f.abs);
      return { path: f.rel, saved: true, version: await versionOf(f.abs), entries: held?.entries ?? null };
    },
  },
  {
    method: "POST",
    path: "/api/lists/refresh",
    access: "change",
    async handle(c) {
      const body = await readJson(c.req, 16 * 1024);
      return refreshList(c, stringField(body, "url", 2048) as string);
    },
  },
  {
    method: "GET",
    path: "/api/explain",
    access: "read",
    async handle(c) {
      const target = param(c.url, "target", 2048);
      if (!target) throw new AdminError(400, "GH_ADMIN_MISSING_FIELD", "give the URL or domain to explain as ?target=");
      const client = param(c.url, "client", 64);
      if (client !== undefined && isIP(client) === 0) {
        throw new AdminError(400, "GH_ADMIN_BAD_FIELD", `client "${client}" is not an IP address`);
      }
      try {
        return await c.src.explain(target, client);
      } catch (err) {
        if (err instanceof ExplainInputError) throw new AdminError(400, "GH_ADMIN_BAD_TARGET", err.message);
        throw err;
      }
    },
  },
];
