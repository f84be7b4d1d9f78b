import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Events } from "../events/events.js";
import type { Logger } from "../log/logger.js";
import type { LookupFunction } from "../net/lookup.js";
import type { SelfEndpoints } from "../net/self.js";
import type { Handler } from "../pipeline/stage.js";
import { accessEvent } from "./access-entry.js";
import type { Activity } from "./activity.js";
import type { Bumper } from "./bump.js";
import {
  type Client,
  type ConnectionContext,
  HttpExchange,
  type HttpOutcome,
  type HttpResponse,
  type TunnelOutcome,
} from "./exchange.js";
import type { PageMaker } from "./pages.js";
import { writeRawResponse } from "./respond.js";
import { openTunnel } from "./tunnel.js";

export interface TunnelSettings {
  /** The lookup for a client's tunnels: loopback results only for loopback clients. */
  lookup: (client: Client) => LookupFunction;
  connectTimeoutMs: number;
  idleMs: number;
  /** gatehouse's own listeners: a name that resolves to one of them is refused after connecting. */
  self: SelfEndpoints;
}

interface ConnectDeps {
  chain: Handler<HttpExchange, HttpOutcome>;
  page: PageMaker;
  tunnel: TunnelSettings;
  /** TLS termination, when the office CA exists. */
  bumper?: () => Bumper | undefined;
  events: Events;
  log: Logger;
  activity: Activity;
}

/** Refusals made by the admin's rules: the ones worth a block page over TLS. */
const RULE_STAGES = new Set(["firewall", "blocklist"]);

/**
 * CONNECT: the same chain as every request decides (target, self, access, policy). A tunnel outcome
 * is relayed byte for byte, or decrypted when the interception settings say so; a refusal is
 * written on the raw socket, or, for a block by the rules when the office CA exists, answered over
 * TLS so the browser shows the block page. One access event when the tunnel or refusal is over.
 */
export function handleConnect(
  deps: ConnectDeps,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  ctx: ConnectionContext,
): void {
  const timing = { start: Date.now(), t0: performance.now() };
  const x = HttpExchange.of(req, ctx, null);
  const bytesBefore = socket.bytesWritten;
  let status = 200;
  let settled = false;
  const settle = (bytes = socket.bytesWritten - bytesBefore) => {
    if (settled) return;
    settled = true;
    deps.activity.removeTunnel(socket);
    deps.events.access.emit(accessEvent(x, timing, status, bytes));
  };
  const respond = (out: HttpResponse) => {
    status = out.status;
    writeRawResponse(socket, out);
    settle();
  };
  const hooks = {
    relay: (initial: Buffer) => relay(initial, true),
    done: () => settle(),
  };
  const relay = (initial: Buffer, answered: boolean) => {
    const t = deps.tunnel;
    x.log.cache = "TCP_TUNNEL";
    x.log.hierarchy = "HIER_DIRECT";
    x.log.peer = x.host;
    openTunnel({
      client: socket,
      head: initial,
      host: x.host,
      port: x.port,
      lookup: t.lookup(x.client),
      connectTimeoutMs: t.connectTimeoutMs,
      idleMs: t.idleMs,
      refuse: (address, port) =>
        t.self.matches(address, port) ? `${x.host}:${x.port} is one of gatehouse's own listeners` : undefined,
      onEstablished: () => {
        if (!answered) socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      },
      onFailure: (f) => {
        deps.log.warn({ id: x.id, client: x.client.address, target: x.target }, f.reason);
        x.log.cache = f.status === 403 ? "TCP_DENIED" : "NONE_NONE";
        if (f.decision) x.decisions.push(f.decision);
        // After a 200 (the ClientHello was read first) there is no way left to say what failed.
        if (answered) {
          status = f.status;
          socket.destroy();
          return settle();
        }
        respond(deps.page(x, { status: f.status, title: f.title, message: f.message, rule: f.decision?.rule }));
      },
      onClose: (r) => settle(r.bytesToClient),
    });
  };

  deps.activity.addTunnel(socket);
  socket.on("error", () => socket.destroy());
  socket.once("close", () => {
    x.abort.fire();
    settle();
  });
  deps.chain(x).then(
    (outcome) => {
      if (socket.destroyed) return settle(0);
      const bumper = deps.bumper?.();
      if (outcome.kind === "response") {
        const by = x.decisions.at(-1);
        if (bumper && by && RULE_STAGES.has(by.stage) && bumper.tlsPort(x.port)) {
          status = outcome.status;
          return bumper.refuse(socket, head, x, outcome, hooks);
        }
        return respond(outcome);
      }
      const plan = intercepting(bumper, x, outcome);
      if (!bumper || !plan) return relay(head, false);
      x.log.cache = "NONE_NONE";
      x.decisions.push({ stage: "intercept", action: "allow", reason: `intercepted: ${plan}` });
      bumper.intercept(socket, head, x, hooks, outcome.local === true);
    },
    (err: unknown) => {
      deps.log.error({ id: x.id, client: x.client.address, target: x.target, err }, "CONNECT failed inside the proxy");
      respond(deps.page(x, { status: 500, title: "Internal error", message: "The proxy failed while handling this request." }));
    },
  );
}

/** Why this tunnel is decrypted, or undefined to relay it. Tunnels to gatehouse itself always are. */
function intercepting(bumper: Bumper | undefined, x: HttpExchange, outcome: TunnelOutcome): string | undefined {
  if (!bumper) return undefined;
  if (outcome.local) return "a page of gatehouse itself";
  const d = bumper.plan(x);
  if (!d.intercept) {
    // Worth a line in the log only when a rule or a refused certificate said no.
    if (d.rule || /refused/.test(d.reason))
      x.decisions.push({ stage: "intercept", action: "allow", reason: `not intercepted: ${d.reason}`, rule: d.rule });
    return undefined;
  }
  return d.reason;
}
