import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import {
  type Dovecot,
  eventually,
  MAIL_DOMAIN,
  MAIL_PASSWORD,
  MAIL_USER,
  type Postfix,
  python,
  run,
  startDovecot,
  startPostfix,
} from "../helpers/servers.js";
import { type OfficeCerts, officeCerts, type RunningFront, rawClient, startTcpFront } from "../helpers/tcp-fronts.js";

// The mail fronts in front of the real Postfix and Dovecot from Debian, driven by real clients
// (swaks, curl, openssl s_client, Python's smtplib/poplib/imaplib). Test clients connect from
// 127.0.0.2, gatehouse from 127.0.0.1, so the servers' logs show whose address they got.

const CLIENT = "127.0.0.2";

const PY_PRELUDE = `
import sys, ssl, socket, smtplib, poplib, imaplib
port = int(sys.argv[1]); cafile = sys.argv[2]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False
def src(host, p, timeout=30):
    return socket.create_connection((host, p), timeout, source_address=("${CLIENT}", 0))
class POP3(poplib.POP3):
    def _create_socket(self, timeout): return src(self.host, self.port, timeout)
class IMAP4(imaplib.IMAP4):
    def _create_socket(self, timeout=None): return src(self.host, self.port, timeout)
`;

describe("mail fronts with Postfix and Dovecot", { timeout: 180_000 }, () => {
  let certs: OfficeCerts;
  let dovecot: Dovecot;
  let postfix: Postfix;
  const f: Record<string, RunningFront> = {};
  const mail = (name: string) => ({ certs, firewall: name === "denied" ? "deny from 127.0.0.2\n" : undefined });

  before(async () => {
    certs = officeCerts();
    dovecot = await startDovecot();
    postfix = await startPostfix(dovecot);
    const office = { tls: { cert: "office" } };
    const fronts: [string, Record<string, unknown>][] = [
      ["smtp", { protocol: "smtp", backend: `127.0.0.1:${postfix.ports.smtp}`, clientAddress: "xclient" }],
      ["submission", { protocol: "submission", backend: `127.0.0.1:${postfix.ports.submission}`, backendTls: "starttls" }],
      ["smtps", { protocol: "smtps", backend: `127.0.0.1:${postfix.ports.smtp}`, clientAddress: "xclient" }],
      [
        "pop3",
        { protocol: "pop3", backend: `127.0.0.1:${dovecot.ports.pop3Proxy}`, clientAddress: "proxy-v1", backendTls: "starttls" },
      ],
      ["pop3s", { protocol: "pop3s", backend: `127.0.0.1:${dovecot.ports.pop3}` }],
      [
        "imap",
        { protocol: "imap", backend: `127.0.0.1:${dovecot.ports.imapProxy}`, clientAddress: "proxy-v2", backendTls: "starttls" },
      ],
      ["imaps", { protocol: "imaps", backend: `127.0.0.1:${dovecot.ports.imaps}`, backendTls: "tls" }],
      ["denied", { protocol: "smtp", backend: `127.0.0.1:${postfix.ports.smtp}` }],
      ["slow", { protocol: "smtp", backend: `127.0.0.1:${postfix.ports.smtp}`, limits: { idleTimeout: "1s", perClient: 2 } }],
    ];
    for (const [name, cfg] of fronts) f[name] = await startTcpFront({ name, ...cfg, ...office }, mail(name));
  });

  after(async () => {
    for (const front of Object.values(f)) await front.close();
    await postfix?.stop();
    await dovecot?.stop();
  });

  const delivered = () => readdirSync(join(dovecot.maildir, "new"), { withFileTypes: true }).filter((e) => e.isFile());
  const messages = () => {
    try {
      return delivered().map((e) => readFileSync(join(dovecot.maildir, "new", e.name), "utf8"));
    } catch {
      return [];
    }
  };
  const waitForMessage = (subject: string) =>
    eventually(
      () => messages().find((m) => m.includes(`Subject: ${subject}`)),
      20_000,
      () => `no message "${subject}" in ${dovecot.maildir}; Postfix log:\n${postfix.log().slice(-2000)}`,
    );

  it("accepts a message for the local domain over the SMTP front with STARTTLS (swaks), with the client's own address", async () => {
    const r = await run(
      "swaks",
      [
        ["--server", `127.0.0.1:${f.smtp?.port}`],
        ["--local-interface", CLIENT],
        ["--to", `${MAIL_USER}@${MAIL_DOMAIN}`],
        ["--from", "sender@example.net"],
        ["--header", "Subject: first through gatehouse"],
        ["--body", "hello from the front"],
        "--tls",
      ].flat(),
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /STARTTLS/);
    const msg = await waitForMessage("first through gatehouse");
    assert.match(msg, /hello from the front/);
    // XCLIENT: Postfix saw 127.0.0.2, not gatehouse's 127.0.0.1.
    assert.match(msg, /Received: from .*\[127\.0\.0\.2\]/);
    assert.match(postfix.log(), /client=unknown\[127\.0\.0\.2\]/);
    const e = await f.smtp?.nextSession((s) => s.client === CLIENT);
    assert.equal(e?.tls, "TLSv1.3");
    assert.equal(e?.result, "closed");
    assert.ok((e?.bytesIn ?? 0) > 0 && (e?.bytesOut ?? 0) > 0);
  });

  it("refuses relaying to a foreign domain (the backend applies its rules to the real client)", async () => {
    const r = await python(
      `${PY_PRELUDE}
class SMTP(smtplib.SMTP):
    def _get_socket(self, host, p, timeout): return src(host, p, timeout)
s = SMTP("127.0.0.1", port)
s.starttls(context=ctx); s.ehlo()
s.mail("sender@example.net")
print(s.rcpt("someone@elsewhere.example")[0])
s.quit()`,
      [f.smtp?.port ?? 0, certs.caFile],
    );
    assert.equal(r.stdout.trim(), "554", r.stderr);
  });

  it("submission: AUTH is hidden and refused before STARTTLS, offered and accepted after it", async () => {
    const r = await python(
      `${PY_PRELUDE}
import base64
class SMTP(smtplib.SMTP):
    def _get_socket(self, host, p, timeout): return src(host, p, timeout)
s = SMTP("127.0.0.1", port)
s.ehlo()
print("before", s.has_extn("auth"), s.has_extn("starttls"))
print("refused", s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\\0${MAIL_USER}\\0${MAIL_PASSWORD}").decode())[0])
s.starttls(context=ctx); s.ehlo()
print("after", s.has_extn("auth"), s.has_extn("starttls"))
print("login", s.login("${MAIL_USER}", "${MAIL_PASSWORD}")[0])
s.sendmail("${MAIL_USER}@${MAIL_DOMAIN}", ["${MAIL_USER}@${MAIL_DOMAIN}"], "Subject: submitted\\r\\n\\r\\nby submission\\r\\n")
s.quit()`,
      [f.submission?.port ?? 0, certs.caFile],
    );
    assert.equal(r.stdout, "before False True\nrefused 530\nafter True False\nlogin 235\n", r.stderr);
    await waitForMessage("submitted");
  });

  it("smtps: implicit TLS with the office certificate (curl verifies it)", async () => {
    const r = await run(
      "curl",
      [
        "-sS",
        "--cacert",
        certs.caFile,
        "--interface",
        CLIENT,
        `smtps://127.0.0.1:${f.smtps?.port}`,
        "--mail-from",
        "sender@example.net",
        "--mail-rcpt",
        `${MAIL_USER}@${MAIL_DOMAIN}`,
        "-T",
        "-",
      ],
      { input: "Subject: over smtps\r\n\r\nimplicit TLS\r\n" },
    );
    assert.equal(r.code, 0, r.stderr);
    await waitForMessage("over smtps");
  });

  it("streams a 5 MiB message through DATA unchanged", async () => {
    const line = "0123456789".repeat(7);
    const body = Array.from({ length: (5 * 1024 * 1024) / 72 }, (_, i) => `${i} ${line}`).join("\r\n");
    const file = join(certs.dir, "big.eml");
    writeFileSync(file, `Subject: big one\r\n\r\n${body}\r\n`);
    const r = await run(
      "swaks",
      [
        ["--server", `127.0.0.1:${f.smtp?.port}`],
        ["--local-interface", CLIENT],
        ["--to", `${MAIL_USER}@${MAIL_DOMAIN}`],
        ["--data", `@${file}`],
        "--tls",
        "--suppress-data",
      ].flat(),
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const msg = await waitForMessage("big one");
    assert.ok(msg.includes(body.slice(-1000).replace(/\r\n/g, "\n")), "the end of the message arrived");
    assert.ok(msg.length > 5 * 1024 * 1024);
  });

  it("discards plaintext pipelined after STARTTLS (CVE-2011-0411)", async () => {
    const c = await rawClient(f.smtp?.port ?? 0, CLIENT);
    await c.waitFor(/^220 .*\r\n/m);
    c.socket.write("EHLO attacker.example\r\n");
    await c.waitFor(/250 .*\r\n/);
    // The injected commands ride in the same packet as STARTTLS.
    c.socket.write("STARTTLS\r\nRSET\r\nMAIL FROM:<injected@evil.example>\r\n");
    await c.waitFor(/220 2\.0\.0 Ready to start TLS\r\n/);
    const tls = await secure(c.socket);
    const reply = await exchange(tls, "EHLO attacker.example\r\n", /^250 .*\r\n/m);
    assert.match(reply, /^250-/);
    assert.doesNotMatch(reply, /^2\.0\.0 Ok|Sender/m, "no reply to the injected commands");
    // Had MAIL FROM been read as a command, RCPT would be accepted.
    const rcpt = await exchange(tls, `RCPT TO:<${MAIL_USER}@${MAIL_DOMAIN}>\r\n`, /^\d{3} .*\r\n/m);
    assert.match(rcpt, /^503 /);
    tls.end("QUIT\r\n");
    assert.ok(f.smtp?.logLines.some((l) => /discarded \d+ bytes of plaintext sent after STARTTLS/.test(l)));
  });

  it("cuts a client that never starts TLS after STARTTLS, with a log line, and keeps serving", async () => {
    const c = await rawClient(f.slow?.port ?? 0, CLIENT);
    await c.waitFor(/^220 /m);
    c.socket.write("EHLO quiet.example\r\nSTARTTLS\r\n");
    await c.waitFor(/220 2\.0\.0 Ready/);
    await c.closed;
    const e = await f.slow?.nextSession((s) => s.result === "timeout");
    assert.match(e?.detail ?? "", /no TLS handshake/);
    const again = await rawClient(f.slow?.port ?? 0, CLIENT);
    await again.waitFor(/^220 /m);
    again.socket.end("QUIT\r\n");
  });

  it("answers an overlong command line and binary garbage with errors, and the session ends cleanly", async () => {
    const c = await rawClient(f.smtp?.port ?? 0, CLIENT);
    await c.waitFor(/^220 /m);
    c.socket.write("\x00\x01\x02\xff garbage\r\n");
    await c.waitFor(/500 5\.5\.2 Syntax error: control characters/);
    c.socket.write(`HELO ${"x".repeat(70_000)}\r\n`);
    await c.waitFor(/500 5\.5\.2 Line too long/);
    await c.closed;
    const e = await f.smtp?.nextSession((s) => s.result === "error");
    assert.match(e?.detail ?? "", /longer than \d+ bytes/);
  });

  it("turns away a client the firewall denies, naming the rule and counting the reply in the session event", async () => {
    const c = await rawClient(f.denied?.port ?? 0, CLIENT);
    await c.waitFor(/^554 5\.7\.1 Access denied/);
    await c.closed;
    const e = await f.denied?.nextSession();
    assert.equal(e?.result, "refused");
    assert.equal(e?.decision?.rule?.line, 1);
    assert.equal(e?.bytesOut, Buffer.byteLength(c.received()));
  });

  it("limits connections per client address", async () => {
    const a = await rawClient(f.slow?.port ?? 0, CLIENT);
    const b = await rawClient(f.slow?.port ?? 0, CLIENT);
    await a.waitFor(/^220 /m);
    await b.waitFor(/^220 /m);
    const c = await rawClient(f.slow?.port ?? 0, CLIENT);
    await c.waitFor(/^421 4\.7\.0 Too many connections/);
    a.socket.destroy();
    b.socket.destroy();
  });

  it("POP3 with STLS retrieves the message; credentials and USER are refused and hidden before TLS", async () => {
    const r = await python(
      `${PY_PRELUDE}
p = POP3("127.0.0.1", port)
caps = p.capa()
print("before", "STLS" in caps, "USER" in caps)
try:
    p.user("${MAIL_USER}")
except poplib.error_proto as e:
    print("refused", e.args[0].decode()[:10])
p.stls(context=ctx)
caps = p.capa()
print("after", "STLS" in caps, "USER" in caps)
p.user("${MAIL_USER}"); p.pass_("${MAIL_PASSWORD}")
n = p.stat()[0]
body = b"\\n".join(p.retr(1)[1])
print("first", b"Subject: first through gatehouse" in body or n > 1)
p.quit()`,
      [f.pop3?.port ?? 0, certs.caFile],
    );
    assert.equal(r.stdout, "before True False\nrefused -ERR [AUTH\nafter False True\nfirst True\n", r.stderr);
    // PROXY v1: Dovecot logged the client's address.
    assert.match(dovecot.log(), /pop3-login: Info: Login: user=<alice>.*rip=127\.0\.0\.2/);
  });

  it("pop3s retrieves the message over implicit TLS", async () => {
    const r = await python(
      `${PY_PRELUDE}
p = poplib.POP3_SSL("127.0.0.1", port, context=ctx)
p.user("${MAIL_USER}"); p.pass_("${MAIL_PASSWORD}")
msgs = [b"\\n".join(p.retr(i + 1)[1]) for i in range(p.stat()[0])]
print(any(b"Subject: first through gatehouse" in m for m in msgs))
p.quit()`,
      [f.pop3s?.port ?? 0, certs.caFile],
    );
    assert.equal(r.stdout.trim(), "True", r.stderr);
  });

  it("IMAP with STARTTLS: LOGIN disabled before TLS, capabilities corrected, list and fetch after", async () => {
    const r = await python(
      `${PY_PRELUDE}
m = IMAP4("127.0.0.1", port)
caps = m.capabilities
print("before", "STARTTLS" in caps, "LOGINDISABLED" in caps, any(c.startswith("AUTH=") for c in caps))
try:
    m.login("${MAIL_USER}", "${MAIL_PASSWORD}")
except imaplib.IMAP4.error as e:
    print("refused", "PRIVACYREQUIRED" in str(e))
m.starttls(ssl_context=ctx)
caps = m.capabilities
print("after", "STARTTLS" in caps, "LOGINDISABLED" in caps, "AUTH=PLAIN" in caps)
m.login("${MAIL_USER}", "${MAIL_PASSWORD}")
print("list", b"INBOX" in b" ".join(m.list()[1]))
m.select("INBOX")
typ, data = m.search(None, '(SUBJECT "first through gatehouse")')
n = data[0].split()[0]
typ, data = m.fetch(n, "(RFC822)")
print("fetch", b"hello from the front" in data[0][1])
m.logout()`,
      [f.imap?.port ?? 0, certs.caFile],
    );
    assert.equal(r.stdout, "before True True False\nrefused True\nafter False False True\nlist True\nfetch True\n", r.stderr);
    assert.match(dovecot.log(), /imap-login: Info: Login: user=<alice>.*rip=127\.0\.0\.2/);
  });

  it("imaps lists and fetches the message over implicit TLS (TLS to the backend too)", async () => {
    const r = await python(
      `${PY_PRELUDE}
m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
m.login("${MAIL_USER}", "${MAIL_PASSWORD}")
m.select("INBOX", readonly=True)
typ, data = m.search(None, '(SUBJECT "first through gatehouse")')
typ, data = m.fetch(data[0].split()[0], "(BODY[TEXT])")
print(b"hello from the front" in data[0][1])
m.logout()`,
      [f.imaps?.port ?? 0, certs.caFile],
    );
    assert.equal(r.stdout.trim(), "True", r.stderr);
  });

  it("IMAP IDLE through the front sees a new message delivered through the SMTP front", async () => {
    const tls = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ host: "127.0.0.1", port: f.imaps?.port, ca: readFileSync(certs.caFile), servername: "localhost" });
      s.once("secureConnect", () => resolve(s));
      s.once("error", reject);
    });
    await exchange(tls, "", /^\* OK/m);
    await exchange(tls, `a LOGIN ${MAIL_USER} ${MAIL_PASSWORD}\r\n`, /^a OK/m);
    await exchange(tls, "b SELECT INBOX\r\n", /^b OK/m);
    await exchange(tls, "c IDLE\r\n", /^\+ /m);
    const seen = exchange(tls, "", /^\* \d+ EXISTS/m);
    const r = await run(
      "swaks",
      [
        ["--server", `127.0.0.1:${f.smtp?.port}`],
        ["--local-interface", CLIENT],
        ["--to", `${MAIL_USER}@${MAIL_DOMAIN}`],
        ["--header", "Subject: while idling"],
      ].flat(),
    );
    assert.equal(r.code, 0, r.stdout);
    await seen;
    await exchange(tls, "DONE\r\n", /^c OK/m);
    tls.end("d LOGOUT\r\n");
  });

  it("openssl s_client speaks STARTTLS to the IMAP front and gets the office certificate", async () => {
    const r = await run(
      "openssl",
      [
        "s_client",
        "-connect",
        `127.0.0.1:${f.imap?.port}`,
        "-starttls",
        "imap",
        "-CAfile",
        certs.caFile,
        "-verify_return_error",
        "-ign_eof",
      ],
      { input: "a CAPABILITY\r\nb LOGOUT\r\n", timeoutMs: 20_000 },
    );
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
    assert.match(r.stdout, /\* CAPABILITY .*AUTH=PLAIN/);
    assert.doesNotMatch(r.stdout, /\* CAPABILITY .*STARTTLS/);
  });

  it("says the backend is not available when it is down, and logs why", async () => {
    const down = await startTcpFront(
      { name: "gone", protocol: "pop3", backend: "127.0.0.1:9", tls: { cert: "office" } },
      { certs },
    );
    try {
      const c = await rawClient(down.port, CLIENT);
      await c.waitFor(/^-ERR \[SYS\/TEMP\] The mail server is not available/);
      const e = await down.nextSession();
      assert.equal(e.result, "backend-down");
      assert.match(e.detail ?? "", /cannot connect to 127\.0\.0\.1:9/);
    } finally {
      await down.close();
    }
  });
});

function secure(socket: import("node:net").Socket): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    socket.removeAllListeners("data");
    const tls = tlsConnect({ socket, rejectUnauthorized: false });
    tls.once("secureConnect", () => resolve(tls));
    tls.once("error", reject);
  });
}

/** Sends `text` and resolves with what arrives until it matches. */
function exchange(socket: TLSSocket, text: string, until: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const onData = (c: Buffer) => {
      got += c.toString("latin1");
      if (until.test(got)) {
        socket.removeListener("data", onData);
        resolve(got);
      }
    };
    socket.on("data", onData);
    socket.once("close", () => reject(new Error(`closed; got ${got}`)));
    if (text) socket.write(text);
  });
}
