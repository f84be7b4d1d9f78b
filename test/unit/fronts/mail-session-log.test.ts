import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SessionEvent } from "../../../src/events/events.js";
import { AccessLog } from "../../../src/log/access-log.js";

// Session lines of the FTP and mail fronts in the access log, in Squid's columns and as JSON.

const session: SessionEvent = {
  start: 1795327021264,
  durationMs: 60012.4,
  front: "mail",
  protocol: "smtp",
  client: "192.0.2.7",
  backend: "10.0.0.25:25",
  bytesIn: 1200,
  bytesOut: 4121,
  tls: "TLSv1.3",
  result: "closed",
  detail: "the client closed the connection",
};

function lines(format: "squid" | "json", e: SessionEvent): string[] {
  const out: string[] = [];
  AccessLog.toFunction((l) => out.push(l), format).writeSession(e);
  return out;
}

describe("access log session lines", () => {
  it("writes Squid's columns: result, bytes, protocol, front, backend, then TLS and bytes each way", () => {
    assert.deepEqual(lines("squid", session), [
      "1795327021.264  60012 192.0.2.7 SESSION_CLOSED/000 5321 SMTP smtp://mail - FRONT/10.0.0.25:25 - tls=TLSv1.3 in=1200 out=4121\n",
    ]);
  });

  it("names the firewall rule that refused a client", () => {
    const refused: SessionEvent = {
      ...session,
      result: "backend-down",
      backend: "-",
      tls: "none",
      bytesIn: 0,
      bytesOut: 0,
      decision: {
        stage: "firewall",
        action: "deny",
        reason: "x",
        rule: { file: "rules/firewall.rules", line: 3, text: "deny from 192.0.2.0/24" },
      },
    };
    assert.match(
      lines("squid", refused)[0] ?? "",
      / SESSION_BACKEND_DOWN\/000 0 SMTP smtp:\/\/mail - FRONT\/- - tls=none in=0 out=0 rule=rules\/firewall\.rules:3\n$/,
    );
  });

  it("writes JSON with every field, the detail included", () => {
    const e = JSON.parse(lines("json", session)[0] ?? "{}");
    assert.deepEqual(e, {
      time: "2026-11-22T05:57:01.264Z",
      listener: "front",
      front: "mail",
      protocol: "smtp",
      client: "192.0.2.7",
      backend: "10.0.0.25:25",
      bytesIn: 1200,
      bytesOut: 4121,
      durationMs: 60012,
      tls: "TLSv1.3",
      result: "closed",
      detail: "the client closed the connection",
    });
  });
});
