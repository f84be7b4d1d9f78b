import { STATUS_CODES } from "node:http";
import type { HttpResponse } from "./exchange.js";

export interface PageContext {
  id: string;
  accept: string | string[] | undefined;
  proxyName: string;
  contact: string;
}

export interface PageText {
  status: number;
  title: string;
  /** What happened, in one or two sentences a user understands. */
  message: string;
  /** Extra lines: the rule, the upstream error, what to do. */
  details?: string[];
  headers?: [string, string][];
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);

function wantsHtml(accept: string | string[] | undefined): boolean {
  const text = Array.isArray(accept) ? accept.join(",") : (accept ?? "");
  return text.includes("text/html");
}

/** A page made by the proxy itself: HTML for browsers, plain text for everything else. */
export function proxyPage(ctx: PageContext, page: PageText): HttpResponse {
  const details = page.details ?? [];
  const footer = `Ask ${ctx.contact} if you need help; quote request id ${ctx.id}.`;
  let body: string;
  let type: string;
  if (wantsHtml(ctx.accept)) {
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
<footer>${escapeHtml(footer)}<br>${escapeHtml(ctx.proxyName)} · ${page.status} ${escapeHtml(STATUS_CODES[page.status] ?? "")}</footer>
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
      ["x-gatehouse-request-id", ctx.id],
      ...(page.headers ?? []),
    ],
    body: buf,
  };
}
