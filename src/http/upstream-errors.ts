import { errors as undiciErrors } from "undici";
import { formatDuration } from "../config/units.js";
import { LoopbackRefusedError } from "../net/lookup.js";
import type { Decision, RuleRef } from "../pipeline/stage.js";
import type { PageText } from "./pages.js";

/** What went wrong reaching an origin, as a page the client can read and, for blocks, the decision. */
export interface UpstreamProblem {
  page: PageText;
  decision?: Decision;
}

interface BlockedByDns {
  code: "GH_DNS_BLOCKED";
  hostname: string;
  blockedName?: string;
  stage?: string;
  rule?: RuleRef;
}

const isDnsBlock = (e: unknown): e is BlockedByDns => (e as { code?: string } | undefined)?.code === "GH_DNS_BLOCKED";

/**
 * One translation of connection and lookup failures for plain requests and tunnels alike.
 * `timeouts` are only for the messages ("did not answer within 60s").
 */
export function describeUpstreamError(
  err: unknown,
  where: { host: string; hostname: string },
  timeouts: { connect: number; headers: number },
): UpstreamProblem {
  const code = (err as { code?: string }).code ?? "";
  const cause = (err as { cause?: unknown }).cause;
  const inner = (cause as { code?: string } | undefined)?.code ?? code;
  const { host, hostname } = where;
  if (err instanceof LoopbackRefusedError || cause instanceof LoopbackRefusedError) {
    return {
      page: {
        status: 403,
        title: "Destination not allowed",
        message: `${hostname} resolves to this appliance's own loopback address, which only local clients may reach.`,
      },
      decision: { stage: "access", action: "deny", reason: "destination resolves to loopback" },
    };
  }
  const blocked = isDnsBlock(err) ? err : isDnsBlock(cause) ? cause : undefined;
  if (blocked) {
    const via =
      blocked.blockedName && blocked.blockedName !== hostname ? ` (it points to ${blocked.blockedName}, which is listed)` : "";
    return {
      page: {
        status: 403,
        title: "Blocked",
        message: `${hostname} is blocked by the office's DNS rules${via}.`,
        rule: blocked.rule,
      },
      decision: {
        stage: blocked.stage ?? "dns",
        action: "block",
        reason: `blocked by DNS${via}`,
        rule: blocked.rule,
      },
    };
  }
  const tls = certificateProblem(inner);
  if (tls) {
    return {
      page: {
        status: 502,
        title: "Insecure connection refused",
        message: `The site ${hostname} presented a certificate that cannot be trusted: ${tls}.`,
        details: [
          "Nothing was sent to it. If this is a site of your own with a private certificate authority, the administrator can add that CA to certs/upstream-ca/.",
        ],
      },
    };
  }
  if (inner === "ENOTFOUND" || inner === "EAI_AGAIN" || inner === "ENODATA") {
    return {
      page: {
        status: 502,
        title: "Name not found",
        message: `The name ${hostname} could not be resolved (${inner}).`,
        details: ["Check the spelling of the address, or whether the site still exists."],
      },
    };
  }
  if (inner === "ECONNREFUSED") {
    return {
      page: {
        status: 502,
        title: "Connection refused",
        message: `The server at ${host} refused the connection (ECONNREFUSED).`,
        details: ["The site may be down; try again later."],
      },
    };
  }
  if (err instanceof undiciErrors.ConnectTimeoutError || code === "UND_ERR_CONNECT_TIMEOUT" || inner === "ETIMEDOUT") {
    return {
      page: {
        status: 504,
        title: "Connection timed out",
        message: `The server at ${host} did not accept a connection within ${formatDuration(timeouts.connect)}.`,
      },
    };
  }
  if (err instanceof undiciErrors.HeadersTimeoutError || code === "UND_ERR_HEADERS_TIMEOUT") {
    return {
      page: {
        status: 504,
        title: "Gateway timeout",
        message: `The server at ${host} did not answer within ${formatDuration(timeouts.headers)}.`,
      },
    };
  }
  if (inner === "EHOSTUNREACH" || inner === "ENETUNREACH") {
    return { page: { status: 502, title: "Server unreachable", message: `No route to the server at ${host} (${inner}).` } };
  }
  if (err instanceof undiciErrors.InvalidArgumentError || code === "UND_ERR_INVALID_ARG") {
    return {
      page: { status: 400, title: "Bad request", message: `The request cannot be forwarded: ${(err as Error).message}.` },
    };
  }
  const what =
    inner === "ECONNRESET" || code === "UND_ERR_SOCKET" ? "reset the connection" : `failed (${inner || (err as Error).message})`;
  return {
    page: { status: 502, title: "Bad gateway", message: `The server at ${host} ${what} before sending a complete response.` },
  };
}

/** What is wrong with an origin's certificate, from node's verification codes. */
function certificateProblem(code: string): string | undefined {
  switch (code) {
    case "CERT_HAS_EXPIRED":
      return "it has expired";
    case "CERT_NOT_YET_VALID":
      return "it is not valid yet";
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return "it was issued for another name";
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
      return "it is self-signed (issued by an unknown authority)";
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
      return "it was issued by an unknown authority";
    case "CERT_REVOKED":
      return "it has been revoked";
    case "CERT_SIGNATURE_FAILURE":
    case "CERT_UNTRUSTED":
    case "CERT_REJECTED":
      return "its signature does not verify";
    default:
      return undefined;
  }
}
