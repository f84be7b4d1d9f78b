import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { run, startVsftpd, type Vsftpd } from "../helpers/servers.js";
import {
  type OfficeCerts,
  officeCerts,
  type RawClient,
  type RunningFront,
  rawClient,
  startTcpFront,
} from "../helpers/tcp-fronts.js";

// The FTP fronts in front of Debian's vsftpd, driven by curl and lftp (and a raw client for the
// hostile cases). Test clients connect from 127.0.0.2; gatehouse reaches vsftpd from 127.0.0.1.

const CLIENT = "127.0.0.2";
const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("FTP fronts with vsftpd", { timeout: 180_000 }, () => {
  let certs: OfficeCerts;
  let vsftpd: Vsftpd;
  let ftp: RunningFront;
  let ftps: RunningFront;
  const file = randomBytes(MiB);
  let passive = 52000;

  before(async () => {
    certs = officeCerts();
    vsftpd = await startVsftpd({ "one.bin": file, "big.bin": randomBytes(24 * MiB) });
    // Passive ranges of their own per run, so parallel test files never compete for one.
    passive = 40000 + Math.floor(Math.random() * 200) * 100;
    ftp = await startTcpFront(
      {
        name: "files",
        protocol: "ftp",
        backend: `127.0.0.1:${vsftpd.port}`,
        passive: `${passive}-${passive + 49}`,
        tls: { cert: "office" },
      },
      { certs },
    );
    ftps = await startTcpFront(
      {
        name: "files-tls",
        protocol: "ftps",
        backend: `127.0.0.1:${vsftpd.port}`,
        backendTls: "starttls",
        passive: `${passive + 50}-${passive + 99}`,
        tls: { cert: "office" },
      },
      { certs },
    );
  });

  after(async () => {
    await ftp?.close();
    await ftps?.close();
    await vsftpd?.stop();
  });

  const curl = (args: string[]) => run("curl", ["-sS", "--interface", CLIENT, "--cacert", certs.caFile, ...args]);
  const out = (name: string) => join(certs.dir, name);

  it("passive mode (EPSV and PASV): a 1 MiB binary file arrives whole (SHA-256)", async () => {
    for (const extra of [[], ["--disable-epsv"]]) {
      const r = await curl([...extra, `ftp://127.0.0.1:${ftp.port}/one.bin`, "-o", out("p.bin")]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256(readFileSync(out("p.bin"))), sha256(file));
    }
    const e = await ftp.nextSession((s) => s.client === CLIENT);
    assert.ok(e.bytesOut > MiB, "the data connection's bytes count");
  });

  it("active mode (PORT and EPRT) to the client's own address", async () => {
    for (const extra of [["--disable-eprt"], []]) {
      const r = await curl(["-P", CLIENT, ...extra, `ftp://127.0.0.1:${ftp.port}/one.bin`, "-o", out("a.bin")]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256(readFileSync(out("a.bin"))), sha256(file));
    }
  });

  it("explicit FTPS with PROT P (lftp): upload, LIST and download, verified against the office CA", async () => {
    writeFileSync(out("up.bin"), file);
    const script = [
      "set ftp:ssl-force true",
      "set ftp:ssl-protect-data true",
      `set ssl:ca-file ${certs.caFile}`,
      "set ssl:check-hostname false",
      "set net:max-retries 1",
      "cd incoming",
      `put ${out("up.bin")} -o lftp.bin`,
      "ls",
      `get lftp.bin -o ${out("lftp-back.bin")}`,
      "bye",
    ].join("; ");
    const r = await run("lftp", ["-u", "anonymous,", "-e", script, `ftp://127.0.0.1:${ftp.port}`], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /lftp\.bin/);
    assert.equal(sha256(readFileSync(join(vsftpd.root, "incoming", "lftp.bin"))), sha256(file));
    assert.equal(sha256(readFileSync(out("lftp-back.bin"))), sha256(file));
    const e = await ftp.nextSession((s) => s.tls !== "none");
    assert.equal(e.tls, "TLSv1.3");
  });

  it("implicit FTPS (ftps://) with the backend over AUTH TLS: download, upload and APPE", async () => {
    const url = `ftps://127.0.0.1:${ftps.port}`;
    let r = await curl([`${url}/one.bin`, "-o", out("i.bin")]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256(readFileSync(out("i.bin"))), sha256(file));
    writeFileSync(out("half.bin"), file.subarray(0, MiB / 2));
    writeFileSync(out("rest.bin"), file.subarray(MiB / 2));
    r = await curl(["-T", out("half.bin"), `${url}/incoming/appended.bin`]);
    assert.equal(r.code, 0, r.stderr);
    r = await curl(["--append", "-T", out("rest.bin"), `${url}/incoming/appended.bin`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256(readFileSync(join(vsftpd.root, "incoming", "appended.bin"))), sha256(file));
  });

  it("REST resumes a download where the client left off", async () => {
    writeFileSync(out("resume.bin"), file.subarray(0, 300_000));
    const r = await curl(["-C", "-", `ftp://127.0.0.1:${ftp.port}/one.bin`, "-o", out("resume.bin")]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256(readFileSync(out("resume.bin"))), sha256(file));
  });

  it("lists a directory with LIST; an MLSD the backend lacks (vsftpd) is refused cleanly and LIST still works", async () => {
    const list = await curl([`ftp://127.0.0.1:${ftp.port}/`]);
    assert.match(list.stdout, /one\.bin/);
    const c = await login(ftp.port);
    await send(c, "EPSV", /^229 /m);
    await send(c, "MLSD", /^5\d\d /m);
    const reply = await send(c, "EPSV", /^229 .*\r\n/m);
    const data = connect({ host: "127.0.0.1", port: Number(/\(\|\|\|(\d+)\|\)/.exec(reply)?.[1]), localAddress: CLIENT });
    const got = collect(data);
    await send(c, "LIST", /^226 /m);
    assert.match(await got, /one\.bin/);
    c.socket.end("QUIT\r\n");
  });

  it("streams a 24 MiB download to a slow reader with back-pressure, whole", async () => {
    const r = await curl(["--limit-rate", "20M", `ftp://127.0.0.1:${ftp.port}/big.bin`, "-o", out("big.bin")]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256(readFileSync(out("big.bin"))), sha256(readFileSync(join(vsftpd.root, "big.bin"))));
  });

  it("refuses a PORT naming another address (FTP bounce) or a privileged port", async () => {
    const c = await login(ftp.port);
    await send(c, "PORT 127,0,0,1,200,10", /^501 PORT must name your own address/m);
    await send(c, "EPRT |1|10.1.2.3|6275|", /^501 EPRT must name your own address/m);
    await send(c, "PORT 127,0,0,2,0,25", /^501 PORT to a port below 1024/m);
    await send(c, "NOOP", /^200 /m);
    c.socket.end("QUIT\r\n");
  });

  it("refuses a data connection to the passive port from any address but the client's", async () => {
    const c = await login(ftp.port);
    const reply = await send(c, "EPSV", /^229 .*\(\|\|\|(\d+)\|\)/m);
    const port = Number(/\(\|\|\|(\d+)\|\)/.exec(reply)?.[1]);
    const stranger = connect({ host: "127.0.0.1", port, localAddress: "127.0.0.3" });
    stranger.on("error", () => {});
    await new Promise((r) => stranger.once("close", r));
    assert.ok(ftp.logLines.some((l) => l.includes("refused a data connection from 127.0.0.3")));
    // The client that asked still gets its listing.
    const data = connect({ host: "127.0.0.1", port, localAddress: CLIENT });
    const got = collect(data);
    await send(c, "LIST", /^226 /m);
    assert.match(await got, /one\.bin/);
    c.socket.end("QUIT\r\n");
  });

  it("ABOR during a download stops it and the session goes on", async () => {
    const c = await login(ftp.port);
    const reply = await send(c, "EPSV", /^229 /m);
    const port = Number(/\(\|\|\|(\d+)\|\)/.exec(reply)?.[1]);
    const data = connect({ host: "127.0.0.1", port, localAddress: CLIENT });
    data.on("error", () => {});
    await send(c, "RETR big.bin", /^150 /m);
    await new Promise((r) => data.once("data", r));
    data.pause();
    await send(c, "ABOR", /^2\d\d .*\r\n/m);
    assert.doesNotMatch(c.received(), /^226 Transfer complete/m);
    await send(c, "NOOP", /^200 /m);
    data.destroy();
    c.socket.end("QUIT\r\n");
  });

  it("answers binary garbage and ends the session on an overlong line, logged", async () => {
    const c = await rawClient(ftp.port, CLIENT);
    await c.waitFor(/^220 /m);
    c.socket.write("\x01\x02\x03 junk\r\n");
    await c.waitFor(/^500 Syntax error: control characters/m);
    c.socket.write(`CWD ${"a".repeat(9000)}\r\n`);
    await c.waitFor(/^500 Line too long/m);
    await c.closed;
    const e = await ftp.nextSession((s) => s.result === "error");
    assert.match(e.detail ?? "", /longer than 8192 bytes/);
  });

  it("a backend that closes mid-transfer: the client gets no 226, the front keeps serving", async () => {
    const broken = await halfFileServer(file);
    const front = await startTcpFront(
      { name: "broken", protocol: "ftp", backend: `127.0.0.1:${broken.port}`, passive: `${passive + 100}-${passive + 109}` },
      { certs },
    );
    try {
      const c = await login(front.port);
      const reply = await send(c, "EPSV", /^229 /m);
      const port = Number(/\(\|\|\|(\d+)\|\)/.exec(reply)?.[1]);
      const data = connect({ host: "127.0.0.1", port, localAddress: CLIENT });
      const got = collect(data).catch(() => "");
      c.socket.write("RETR one.bin\r\n");
      await c.closed;
      await got;
      assert.doesNotMatch(c.received(), /^226 /m);
      assert.match(c.received(), /^421 /m);
      const again = await rawClient(front.port, CLIENT);
      await again.waitFor(/^220 /m);
      again.socket.destroy();
    } finally {
      await front.close();
      broken.server.close();
    }
  });
});

async function login(port: number): Promise<RawClient> {
  const c = await rawClient(port, CLIENT);
  await c.waitFor(/^220 /m);
  // vsftpd lets anonymous in without asking for a password (no_anon_password).
  if (/^331 /m.test(await send(c, "USER anonymous", /^(331|230) /m))) await send(c, "PASS x", /^230 /m);
  await send(c, "TYPE I", /^200 /m);
  return c;
}

/** Sends a command and waits for the reply that matches, looking only at what arrived after it. */
async function send(c: RawClient, line: string, until: RegExp): Promise<string> {
  const from = c.received().length;
  c.socket.write(`${line}\r\n`);
  return c.waitFor(until, from);
}

function collect(s: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    s.on("data", (c: Buffer) => {
      text += c.toString("latin1");
    });
    s.once("end", () => resolve(text));
    s.once("error", reject);
  });
}

/** An FTP server that sends half of `file` on RETR and then drops every connection, as a crashing one would. */
async function halfFileServer(file: Buffer): Promise<{ server: Server; port: number }> {
  const server = createServer((control) => {
    control.on("error", () => {});
    let dataServer: Server | undefined;
    let dataSocket: Promise<Socket> | undefined;
    control.write("220 fake ready\r\n");
    let buf = "";
    control.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        const cmd = line.split(" ")[0]?.toUpperCase();
        if (cmd === "USER") control.write("331 ok\r\n");
        else if (cmd === "PASS") control.write("230 ok\r\n");
        else if (cmd === "TYPE") control.write("200 ok\r\n");
        else if (cmd === "EPSV" || cmd === "PASV") {
          const ds = createServer();
          dataServer = ds;
          dataSocket = new Promise((r) => ds.once("connection", r));
          ds.listen(0, "127.0.0.1", () => {
            const p = (ds.address() as AddressInfo).port;
            control.write(cmd === "EPSV" ? `229 ok (|||${p}|)\r\n` : `227 ok (127,0,0,1,${p >> 8},${p & 255})\r\n`);
          });
        } else if (cmd === "RETR") {
          control.write("150 here it comes\r\n");
          void dataSocket?.then((s) => {
            s.on("error", () => {});
            s.write(file.subarray(0, file.length / 2), () => {
              s.destroy();
              control.destroy();
              dataServer?.close();
            });
          });
        } else control.write("502 no\r\n");
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as AddressInfo).port };
}
