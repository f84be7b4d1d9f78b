import assert from "node:assert/strict";
import { type AddressInfo, createServer, type Server } from "node:net";
import { after, before, describe, it } from "node:test";
import { fronts } from "../../src/config/fronts-schema.js";
import type { HealthEvent } from "../../src/events/events.js";
import { imapProtocol, pop3Protocol, smtpProtocol } from "../../src/fronts/mail/protocols.js";
import { TCP_FRONTS } from "../../src/fronts/tcp.js";
import { freePort } from "../helpers/ports.js";
import { eventually, startProxy } from "../helpers/proxy.js";
import { type OfficeCerts, officeCerts, rawClient, startTcpFront } from "../helpers/tcp-fronts.js";

// A mail front as a part of a generation, against a small SMTP-speaking backend: health checks by
// banner, reloads that keep the socket and the sessions in it, and stopping.

interface FakeSmtp {
  server: Server;
  port: number;
  /** What the next connections are greeted with. */
  banner: string;
}

async function fakeSmtp(): Promise<FakeSmtp> {
  const fake: FakeSmtp = { server: createServer(), port: 0, banner: "220 fake ESMTP" };
  fake.server.on("connection", (s) => {
    s.on("error", () => {});
    s.write(`${fake.banner}\r\n`);
    let buf = "";
    s.on("data", (c: Buffer) => {
      buf += c.toString();
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i).trim().toUpperCase();
        buf = buf.slice(i + 1);
        if (line === "QUIT") s.end("221 bye\r\n");
        else s.write("250 ok\r\n");
      }
    });
  });
  await new Promise<void>((r) => fake.server.listen(0, "127.0.0.1", r));
  fake.port = (fake.server.address() as AddressInfo).port;
  return fake;
}

describe("a mail front as a part", () => {
  let certs: OfficeCerts;
  let fake: FakeSmtp;

  before(async () => {
    certs = officeCerts();
    fake = await fakeSmtp();
  });
  after(() => fake.server.close());

  it("takes a backend down when its banner is wrong `fall` times, and up again after `rise` good ones", async () => {
    const front = await startTcpFront(
      {
        name: "checked",
        protocol: "smtp",
        backend: `127.0.0.1:${fake.port}`,
        health: { interval: "50ms", timeout: "2s", fall: 2, rise: 1 },
      },
      { certs },
    );
    const changes: HealthEvent[] = [];
    const next = () =>
      new Promise<HealthEvent>((resolve) => {
        const off = front.deps.events.health.subscribe((e) => {
          changes.push(e);
          off();
          resolve(e);
        });
      });
    try {
      let change = next();
      fake.banner = "554 not today";
      const down = await change;
      assert.equal(down.up, false);
      assert.match(down.reason, /unexpected greeting "554 not today"/);
      const c = await rawClient(front.port);
      await c.waitFor(/^421 4\.3\.0 The mail server is not available/);
      change = next();
      fake.banner = "220 fake ESMTP";
      assert.equal((await change).up, true);
      assert.equal(front.part.health()[0]?.backends[0]?.up, true);
    } finally {
      fake.banner = "220 fake ESMTP";
      await front.close();
    }
  });

  it("a reload keeps the listening socket and the session in progress; the old part lets go of it", async () => {
    const a = await startTcpFront({ name: "mx", protocol: "smtp", backend: `127.0.0.1:${fake.port}` }, { certs });
    const open = await rawClient(a.port);
    await open.waitFor(/^220 fake/m);
    const [cfg] = fronts.parse([
      {
        name: "mx",
        protocol: "smtp",
        listen: [`127.0.0.1:${a.port}`],
        backend: `127.0.0.1:${fake.port}`,
        health: { enabled: false },
      },
    ]);
    assert.ok(cfg);
    const b = TCP_FRONTS.smtp(cfg, a.deps, a.part);
    await b.prepare();
    b.commit();
    await a.part.dispose();
    try {
      assert.equal(b.addresses[0]?.port, a.port, "the same socket serves on");
      const from = open.received().length;
      open.socket.write("NOOP\r\n");
      await open.waitFor(/^250 ok/m, from);
      const fresh = await rawClient(a.port);
      await fresh.waitFor(/^220 fake/m);
      fresh.socket.end("QUIT\r\n");
      open.socket.end("QUIT\r\n");
      await open.closed;
    } finally {
      b.stopAccepting();
      await b.dispose();
    }
  });

  it("on stop, refuses new clients at once while open sessions count as activity until they end", async () => {
    const front = await startTcpFront({ name: "stopping", protocol: "smtp", backend: `127.0.0.1:${fake.port}` }, { certs });
    const open = await rawClient(front.port);
    await open.waitFor(/^220 fake/m);
    assert.equal(front.activity.count, 1);
    front.part.stopAccepting();
    await assert.rejects(rawClient(front.port), /ECONNREFUSED/);
    open.socket.end("QUIT\r\n");
    await front.nextSession();
    assert.equal(front.activity.count, 0);
    await front.close();
  });

  it("closes an idle session with the protocol's own words, as a timeout", async () => {
    const front = await startTcpFront(
      { name: "idle", protocol: "smtp", backend: `127.0.0.1:${fake.port}`, limits: { idleTimeout: "300ms" } },
      { certs },
    );
    try {
      const c = await rawClient(front.port);
      await c.waitFor(/^220 fake/m);
      await c.waitFor(/^421 4\.4\.2 Idle for too long/m);
      await c.closed;
      const e = await front.nextSession();
      assert.equal(e.result, "timeout");
    } finally {
      await front.close();
    }
  });

  it("writes each session to the access log of a running gatehouse, naming the front and its backend", async () => {
    const port = await freePort();
    const proxy = await startProxy({
      fronts: [{ name: "mx", protocol: "smtp", listen: [`127.0.0.1:${port}`], backend: `127.0.0.1:${fake.port}` }],
    });
    try {
      const c = await rawClient(port);
      await c.waitFor(/^220 fake/m);
      c.socket.end("QUIT\r\n");
      await c.closed;
      await eventually(() => proxy.accessLines.some((l) => l.includes("SESSION_CLOSED")), 5000, "a session line");
      const line = proxy.accessLines.find((l) => l.includes("SESSION_CLOSED")) ?? "";
      assert.match(line, / 127\.0\.0\.1 SESSION_CLOSED\/000 .* SMTP smtp:\/\/mx /);
      assert.match(line, new RegExp(`FRONT/127\\.0\\.0\\.1:${fake.port}`));
    } finally {
      await proxy.close();
    }
  });

  it("shows each session on the admin's logs page, naming the front and its backend", async () => {
    const port = await freePort();
    const proxy = await startProxy({
      fronts: [{ name: "mx", protocol: "smtp", listen: [`127.0.0.1:${port}`], backend: `127.0.0.1:${fake.port}` }],
    });
    try {
      const c = await rawClient(port);
      await c.waitFor(/^220 fake/m);
      c.socket.end("QUIT\r\n");
      await c.closed;
      const logs = `http://127.0.0.1:${proxy.app.adminAddress?.port}/api/logs?name=mx`;
      type Lines = { lines: { kind: string; client: string; request: string; result: string }[] };
      let lines: Lines["lines"] = [];
      await eventually(
        async () => {
          lines = ((await (await fetch(logs)).json()) as Lines).lines;
          return lines.length > 0;
        },
        5000,
        "a session line",
      );
      assert.deepEqual(lines[0], {
        ...lines[0],
        kind: "session",
        client: "127.0.0.1",
        request: `SMTP smtp://mx → 127.0.0.1:${fake.port}`,
        result: "SESSION_CLOSED",
      });
    } finally {
      await proxy.close();
    }
  });

  it("waits by default as long as each protocol expects: IMAP at least 30 minutes (IDLE), POP3 10, SMTP 5", () => {
    assert.ok(imapProtocol(false).idleMs >= 30 * 60_000);
    assert.ok(pop3Protocol(false).idleMs >= 10 * 60_000);
    assert.ok(smtpProtocol(false).idleMs >= 5 * 60_000);
  });
});
