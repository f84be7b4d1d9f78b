import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { eventually, startProxy, type TestProxy } from "../helpers/proxy.js";

const ESTABLISHED = "HTTP/1.1 200 Connection Established\r\n\r\n";

/** A TCP server on 127.0.0.1:0 whose connections go to `handle`. */
async function tcpServer(handle: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as AddressInfo).port };
}

/** A client socket with a tunnel to 127.0.0.1:port open; any bytes after the 200 come with it. */
function openTunnel(proxyPort: number, port: number): Promise<{ socket: Socket; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port: proxyPort, host: "127.0.0.1", allowHalfOpen: true }, () =>
      socket.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`),
    );
    let got = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      got = Buffer.concat([got, c]);
      const end = got.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      socket.pause();
      const head = got.subarray(0, end + 4).toString("latin1");
      if (head !== ESTABLISHED) return reject(new Error(`tunnel refused: ${head}`));
      resolve({ socket, rest: got.subarray(end + 4) });
    };
    socket.on("data", onData);
    socket.on("error", reject);
  });
}

/** Everything the socket sends until its FIN, read in small bites with pauses when `slow`. */
function readAll(socket: Socket, rest: Buffer, slow: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [rest];
    let reads = 0;
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      // A client slower than the origin: the proxy's writes to it back up and wait for 'drain'.
      if (slow && ++reads % 4 === 0) {
        socket.pause();
        setTimeout(() => socket.resume(), 10);
      }
    });
    socket.on("end", () => resolve(Buffer.concat(chunks)));
    socket.on("error", reject);
    // A slow client starts late too: the kernel's buffers fill first and the proxy must wait.
    if (slow) setTimeout(() => socket.resume(), 300);
    else socket.resume();
  });
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("CONNECT tunnels: bytes relayed intact", () => {
  // Random bytes, so that a buffer used again too early would show as a wrong hash. Sent in
  // writes of mixed sizes (a few bytes, a TLS record, a burst), so the relay moves between its
  // small and large read buffers.
  const payload = randomBytes(6 * 1024 * 1024 + 12345);
  let origin: { server: Server; port: number };
  let proxy: TestProxy;
  before(async () => {
    origin = await tcpServer((s) => {
      s.once("data", () => {
        let at = 0;
        const sizes = [7, 16384, 300, 1 << 20, 5000, 65536, 16383, 16385, 200_000];
        let i = 0;
        const pump = () => {
          while (at < payload.length) {
            const n = Math.min(sizes[i++ % sizes.length] as number, payload.length - at);
            const more = s.write(payload.subarray(at, at + n));
            at += n;
            if (!more) return void s.once("drain", pump);
            // A pause now and then: the relay's reads come in small again.
            if (i % 5 === 0) return void setTimeout(pump, 1);
          }
          s.end();
        };
        pump();
      });
      s.on("error", () => {});
    });
    proxy = await startProxy({ proxy: { connectPorts: [origin.port] } });
  });
  after(async () => {
    await proxy.close();
    await new Promise<void>((r) => origin.server.close(() => r()));
  });

  for (const slow of [false, true]) {
    it(`delivers a download whole and in order to a ${slow ? "slow" : "fast"} client, and logs its size`, async () => {
      const linesBefore = proxy.accessLines.length;
      const { socket, rest } = await openTunnel(proxy.port, origin.port);
      socket.write("download");
      const got = await readAll(socket, rest, slow);
      socket.end();
      assert.equal(got.length, payload.length);
      assert.equal(sha(got), sha(payload));
      await eventually(() => proxy.accessLines.length > linesBefore, 5000, "access line");
      const line = proxy.accessLines.at(-1) ?? "";
      // The 200 line and the payload: what was written to the client.
      assert.match(line, new RegExp(` TCP_TUNNEL/200 ${payload.length + ESTABLISHED.length} CONNECT `));
    });
  }

  it("delivers an upload whole and answers after the client's FIN (half-close)", async () => {
    const sink = await tcpServer((s) => {
      const chunks: Buffer[] = [];
      s.on("data", (c: Buffer) => chunks.push(c));
      s.on("end", () => {
        const all = Buffer.concat(chunks);
        s.end(`${all.length} ${sha(all)}`);
      });
      s.on("error", () => {});
    });
    const p = await startProxy({ proxy: { connectPorts: [sink.port] } });
    try {
      const { socket, rest } = await openTunnel(p.port, sink.port);
      const reply = readAll(socket, rest, false);
      socket.end(payload);
      assert.equal((await reply).toString(), `${payload.length} ${sha(payload)}`);
    } finally {
      await p.close();
      await new Promise<void>((r) => sink.server.close(() => r()));
    }
  });
});

describe("CONNECT tunnels: idle timeout", () => {
  const IDLE = "600ms";
  let proxy: TestProxy;
  let trickle: { server: Server; port: number };
  let echo: { server: Server; port: number };
  before(async () => {
    // Sends a byte every 50 ms, 40 times, then ends: bytes flowing one way only, for 2 s.
    trickle = await tcpServer((s) => {
      let n = 0;
      const timer = setInterval(() => {
        if (++n > 40) {
          clearInterval(timer);
          s.end();
          return;
        }
        s.write("x");
      }, 50);
      s.on("close", () => clearInterval(timer));
      s.on("error", () => {});
    });
    echo = await tcpServer((s) => {
      s.pipe(s);
      s.on("error", () => {});
    });
    proxy = await startProxy({
      proxy: { connectPorts: [trickle.port, echo.port], limits: { tunnelIdleTimeout: IDLE } },
    });
  });
  after(async () => {
    await proxy.close();
    await new Promise<void>((r) => trickle.server.close(() => r()));
    await new Promise<void>((r) => echo.server.close(() => r()));
  });

  it("keeps a tunnel open while bytes flow from the origin, for longer than the idle timeout", async () => {
    const { socket, rest } = await openTunnel(proxy.port, trickle.port);
    const got = await readAll(socket, rest, false);
    socket.end();
    // Every byte arrived and the origin's FIN ended it, not the idle timer.
    assert.equal(got.toString(), "x".repeat(40));
  });

  it("keeps a tunnel open while the client sends, for longer than the idle timeout", async () => {
    const { socket, rest } = await openTunnel(proxy.port, echo.port);
    let echoed = rest.toString();
    let closed = false;
    socket.on("data", (c: Buffer) => {
      echoed += c.toString();
    });
    socket.on("close", () => {
      closed = true;
    });
    socket.resume();
    for (let i = 0; i < 40; i++) {
      socket.write("y");
      await new Promise((r) => setTimeout(r, 50));
    }
    await eventually(() => echoed.length === 40, 5000, "all echoes");
    assert.equal(closed, false);
    socket.destroy();
  });

  it("closes a tunnel once no byte has moved either way for the idle timeout", async () => {
    const { socket, rest } = await openTunnel(proxy.port, echo.port);
    socket.write("z");
    // The proxy's FIN ends what the client reads: the tunnel was closed.
    const got = await readAll(socket, rest, false);
    assert.equal(got.toString(), "z");
    socket.destroy();
  });
});
