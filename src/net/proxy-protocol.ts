import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { normalizeAddress } from "./address.js";

// The PROXY protocol (HAProxy's spec, versions 1 and 2): a header gatehouse sends first on a
// connection to a backend, so the backend sees the real client's address instead of gatehouse's.

export interface ProxiedConnection {
  client: { address: string; port: number };
  /** The address the client connected to (gatehouse's side of the client connection). */
  local: { address: string; port: number };
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** Version 1, text: "PROXY TCP4 src dst sport dport\r\n"; UNKNOWN when the families differ. */
export function proxyV1(c: ProxiedConnection): Buffer {
  const src = normalizeAddress(c.client.address);
  const dst = normalizeAddress(c.local.address);
  const family = isIP(src);
  if (family === 0 || family !== isIP(dst)) return Buffer.from("PROXY UNKNOWN\r\n");
  return Buffer.from(`PROXY TCP${family} ${src} ${dst} ${c.client.port} ${c.local.port}\r\n`);
}

/** Version 2, binary: signature, PROXY command over TCP, the two addresses and ports. */
export function proxyV2(c: ProxiedConnection): Buffer {
  const src = normalizeAddress(c.client.address);
  const dst = normalizeAddress(c.local.address);
  const family = isIP(src);
  if (family === 0 || family !== isIP(dst)) {
    // LOCAL command, no address: the backend uses the connection's own.
    return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  }
  const addr = Buffer.from([...ipaddr.parse(src).toByteArray(), ...ipaddr.parse(dst).toByteArray()]);
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(c.client.port, 0);
  ports.writeUInt16BE(c.local.port, 2);
  const head = Buffer.alloc(4);
  head[0] = 0x21; // version 2, PROXY
  head[1] = family === 4 ? 0x11 : 0x21; // AF_INET/AF_INET6, STREAM
  head.writeUInt16BE(addr.length + 4, 2);
  return Buffer.concat([V2_SIGNATURE, head, addr, ports]);
}

export function proxyHeader(version: "proxy-v1" | "proxy-v2", c: ProxiedConnection): Buffer {
  return version === "proxy-v1" ? proxyV1(c) : proxyV2(c);
}
