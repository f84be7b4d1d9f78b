import { STATUS_CODES } from "node:http";
import { isAbsolute, relative, resolve, sep } from "node:path";
import type { RuleRef } from "../pipeline/stage.js";
import type { HttpExchange, HttpResponse } from "./exchange.js";

export interface PageText {
  status: number;
  title: string;
  /** What happened, in one or two sentences a user understands. */
  message: string;
  /** Extra lines: the upstream error, what to do. */
  details?: string[];
  /** The rule behind a block or deny, shown by its path inside the rules directory. */
  rule?: RuleRef;
  headers?: [string, string][];
}

export interface PageSettings {
  proxyName: string;
  contact: string;
  /** Directories rule files live in (rules/, the downloaded lists): pages name files relative to them. */
  ruleRoots: readonly string[];
  /**
   * Office clients (proxy.clients). A front's visitors from elsewhere (the internet) get its pages
   * without the office's internals: no backend address or error, no rule file, no details.
   */
  insider(address: string): boolean;
}

/** What an outside visitor of a front reads instead of a server error's details. */
const OUTSIDE_MESSAGE = "The site is not available right now. Please try again in a moment.";

export type PageMaker = (x: Pick<HttpExchange, "id" | "headers" | "ctx">, page: PageText) => HttpResponse;

export const statusText = (status: number): string => STATUS_CODES[status] ?? "Error";

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);

function wantsHtml(accept: string | string[] | undefined): boolean {
  const text = Array.isArray(accept) ? accept.join(",") : (accept ?? "");
  return text.includes("text/html");
}

/**
 * A rule's file as users may see it: relative to the rules directory ("block/ads.txt"), never the
 * server's own absolute path, which tells an office user nothing and an attacker too much.
 */
export function publicRulePath(file: string, roots: readonly string[]): string {
  const abs = resolve(file);
  for (const root of roots) {
    const rel = relative(resolve(root), abs);
    if (rel !== "" && !rel.startsWith("..") && !isAbsolute(rel)) return rel.split(sep).join("/");
  }
  return abs.split(sep).at(-1) ?? file;
}

/** Pages made by the proxy itself (blocks, errors, its own address): HTML for browsers, else text. */
export function pageMaker(settings: PageSettings): PageMaker {
  return (x, shown) => {
    const outsider = x.ctx.kind === "front" && !settings.insider(x.ctx.client.address);
    const page: PageText = outsider
      ? {
          status: shown.status,
          title: shown.status >= 500 ? statusText(shown.status) : shown.title,
          message: shown.status >= 500 ? OUTSIDE_MESSAGE : shown.message,
          headers: shown.headers,
        }
      : shown;
    const details = [...(page.details ?? [])];
    const headers: [string, string][] = [...(page.headers ?? [])];
    if (page.rule) {
      const where = `${publicRulePath(page.rule.file, settings.ruleRoots)}:${page.rule.line}`;
      details.push(`Rule: ${where}: ${page.rule.text}`);
      headers.push(["x-gatehouse-rule", where]);
    }
    // A front's visitors come from the internet: the office's IT contact is not theirs to ask.
    const footer =
      x.ctx.kind === "front"
        ? `If this goes on, tell the site's owners; quote request id ${x.id}.`
        : `Ask ${settings.contact} if you need help; quote request id ${x.id}.`;
    let body: string;
    let type: string;
    if (wantsHtml(x.headers.accept)) {
      type = "text/html; charset=utf-8";
      body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${escapeHtml(page.title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}code{background:#f3f3f3;padding:.1em .3em}footer{color:#666;font-size:.9em;margin-top:2em}</style>
</head><body>
<h1>${escapeHtml(page.title)}</h1>
<p>${escapeHtml(page.message)}</p>
${details.map((d) => `<p><code>${escapeHtml(d)}</code></p>`).join("\n")}
<footer>${escapeHtml(footer)}<br>${escapeHtml(settings.proxyName)} · ${page.status} ${escapeHtml(statusText(page.status))}</footer>
</body></html>
`;
    } else {
      type = "text/plain; charset=utf-8";
      body = [`${page.title}`, "", page.message, ...details, "", footer, ""].join("\n");
    }
    const buf = Buffer.from(body);
    return {
      kind: "response",
      status: page.status,
      headers: [
        ["content-type", type],
        ["content-length", String(buf.length)],
        ["cache-control", "no-store"],
        ["x-gatehouse-request-id", x.id],
        ...headers,
      ],
      body: buf,
    };
  };
}
