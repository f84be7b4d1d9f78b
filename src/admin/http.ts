import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * An answer the admin gives on purpose: a status, a stable code (listed in the README's error
 * table) and a message that says what to do. Handlers throw it; the server turns it into JSON.
 */
export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

/** Headers on every admin answer: nothing is cached, sniffed or framed by another site. */
export const BASE_HEADERS: Record<string, string> = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    ...BASE_HEADERS,
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: AdminError): void {
  sendJson(res, err.status, { error: err.message, code: err.code, ...(err.details ?? {}) }, err.headers);
}

/**
 * A JSON request body, at most `maxBytes` (Content-Length is checked first, then what arrives, so
 * a client that lies about the length is cut off too). Errors say what was wrong with the body.
 */
export async function readJson(req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") {
    throw new AdminError(415, "GH_ADMIN_MEDIA_TYPE", "send the body as JSON, with Content-Type: application/json");
  }
  const declared = Number(req.headers["content-length"] ?? Number.NaN);
  const tooLarge = () =>
    new AdminError(413, "GH_ADMIN_TOO_LARGE", `the request body is larger than ${maxBytes} bytes; send less at once`);
  if (declared > maxBytes) {
    req.resume();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        req.removeAllListeners("data");
        req.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve());
    req.on("error", reject);
  });
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch (err) {
    throw new AdminError(400, "GH_ADMIN_BAD_JSON", `the request body is not valid JSON (${(err as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new AdminError(400, "GH_ADMIN_BAD_JSON", "the request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/** A string field of a JSON body; `max` characters at most. */
export function stringField(body: Record<string, unknown>, name: string, max: number, required = true): string | undefined {
  const v = body[name];
  if (v === undefined || v === null || v === "") {
    if (required) throw new AdminError(400, "GH_ADMIN_MISSING_FIELD", `the body needs "${name}"`);
    return undefined;
  }
  if (typeof v !== "string") throw new AdminError(400, "GH_ADMIN_BAD_FIELD", `"${name}" must be a string`);
  if (v.length > max) throw new AdminError(400, "GH_ADMIN_BAD_FIELD", `"${name}" is longer than ${max} characters`);
  return v;
}
