import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type FtpAction, FtpDialogue, type FtpOptions, parseEprt, parsePort } from "../../../src/fronts/ftp/control.js";
import type { Action } from "../../../src/fronts/tcp/dialogue.js";

// Playbooks for the FTP control dialogue: lines from each side and data-side results in, actions
// out, without sockets.

type Step = [event: string, expected: string[]];

function show(a: Action<FtpAction>): string {
  if ("send" in a) return `${a.send === "client" ? "C" : "B"}< ${a.line}`;
  if ("tls" in a) return `tls ${a.tls}`;
  if ("close" in a) return `close ${a.close}`;
  if ("data" in a) {
    if (a.data === "open") return `open ${a.mode} ${a.backendPort}${a.target ? ` -> ${a.target.host}:${a.target.port}` : ""}`;
    if (a.data === "transfer") return `transfer ${a.direction}${a.clientTls ? " tls" : ""}`;
    if (a.data === "finish") return `finish ${a.line}`;
    return `abort`;
  }
  return JSON.stringify(a);
}

function play(d: FtpDialogue, steps: Step[]): void {
  for (const [event, expected] of steps) {
    let actions: Action<FtpAction>[];
    const m = /^([CB]): (.*)$/s.exec(event);
    if (m) actions = d.line(m[1] === "C" ? "client" : "backend", m[2] as string);
    else if (event.startsWith("ready ")) actions = d.dataReady({ port: Number(event.slice(6)) });
    else if (event.startsWith("failed ")) actions = d.dataReady({ error: event.slice(7) });
    else if (event === "tls C") actions = d.secured("client");
    else if (event === "tls B") actions = d.secured("backend");
    else throw new Error(event);
    assert.deepEqual(actions.map(show), expected, `after "${event}"`);
  }
}

const ftp = (o: Partial<FtpOptions> = {}) =>
  new FtpDialogue({ clientTls: false, backendTls: "plain", client: "198.51.100.7", local: "203.0.113.1", ...o });
const open = (d: FtpDialogue) => play(d, [["B: 220 vsFTPd", ["C< 220 vsFTPd"]]]);

describe("FTP control dialogue", () => {
  it("PASV: the backend's port is used, the client gets the front's own address and passive port", () => {
    const d = ftp();
    open(d);
    play(d, [
      ["C: PASV", ["B< PASV"]],
      ["B: 227 Entering Passive Mode (10,0,0,30,195,80).", ["open pasv 50000"]],
      ["ready 50001", ["C< 227 Entering Passive Mode (203,0,113,1,195,81)."]],
      ["C: RETR one.bin", ["B< RETR one.bin", "transfer download"]],
      ["B: 150 Opening BINARY mode data connection", ["C< 150 Opening BINARY mode data connection"]],
      ["B: 226 Transfer complete.", ["finish 226 Transfer complete."]],
    ]);
  });

  it("EPSV answers 229 with the front's port; a failed data side answers 425", () => {
    const d = ftp();
    open(d);
    play(d, [
      ["C: EPSV", ["B< EPSV"]],
      ["B: 229 Entering Extended Passive Mode (|||6446|)", ["open epsv 6446"]],
      ["ready 50007", ["C< 229 Entering Extended Passive Mode (|||50007|)"]],
      ["C: EPSV", ["B< EPSV"]],
      ["B: 229 Entering Extended Passive Mode (|||6447|)", ["open epsv 6447"]],
      [
        "failed every port of the passive range is in use",
        ["C< 425 Cannot open a data connection: every port of the passive range is in use"],
      ],
      ["C: LIST", ["C< 425 Use PASV, EPSV, PORT or EPRT first"]],
    ]);
  });

  const bounce: [string, string, string][] = [
    ["PORT to a third party", "PORT 192,0,2,99,31,64", "C< 501 PORT must name your own address (198.51.100.7)"],
    ["EPRT to a third party", "EPRT |1|192.0.2.99|8000|", "C< 501 EPRT must name your own address (198.51.100.7)"],
    ["PORT to a privileged port of the client", "PORT 198,51,100,7,0,25", "C< 501 PORT to a port below 1024 is refused"],
    ["PORT that cannot be read", "PORT 1,2,3", "C< 501 Cannot read the PORT argument"],
    ["EPRT with an unknown protocol", "EPRT |3|x|1|", "C< 501 Cannot read the EPRT argument"],
  ];
  for (const [name, line, reply] of bounce) {
    it(`refuses ${name} (FTP bounce, RFC 2577)`, () => {
      const d = ftp();
      open(d);
      play(d, [[`C: ${line}`, [reply]]]);
    });
  }

  it("PORT to the client's own address: the backend is still reached passively", () => {
    const d = ftp();
    open(d);
    play(d, [
      ["C: PORT 198,51,100,7,31,64", ["B< PASV"]],
      ["B: 227 Entering Passive Mode (10,0,0,30,4,1)", ["open active 1025 -> 198.51.100.7:8000"]],
      ["ready 0", ["C< 200 PORT command successful"]],
      ["C: STOR up.bin", ["B< STOR up.bin", "transfer upload"]],
      ["B: 150 Ok to send data.", ["C< 150 Ok to send data."]],
      ["B: 553 Could not create file.", ["abort", "C< 553 Could not create file."]],
    ]);
  });

  it("AUTH TLS, PBSZ and PROT are the front's; PROT P makes data connections TLS", () => {
    const d = ftp();
    open(d);
    play(d, [
      ["C: PROT P", ["C< 503 Send AUTH TLS first"]],
      ["C: AUTH TLS", ["C< 234 Proceed with TLS negotiation", "tls client"]],
      ["tls C", []],
      ["C: PBSZ 0", ["C< 200 PBSZ=0"]],
      ["C: PROT P", ["C< 200 Protection level set to Private"]],
      ["C: CCC", ["C< 534 CCC is not offered: the control connection stays protected"]],
      ["C: EPSV", ["B< EPSV"]],
      ["B: 229 (|||7000|)", ["open epsv 7000"]],
      ["ready 50010", ["C< 229 Entering Extended Passive Mode (|||50010|)"]],
      ["C: NLST", ["B< NLST", "transfer download tls"]],
    ]);
  });

  it("shows FEAT with TLS features as the front offers them", () => {
    const d = ftp();
    open(d);
    play(d, [
      ["C: FEAT", ["B< FEAT"]],
      ["B: 211-Features:", []],
      ["B:  EPSV", []],
      ["B:  AUTH SSL", []],
      ["B:  PROT", []],
      ["B:  REST STREAM", []],
      ["B: 211 End", ["C< 211-Features:", "C<  EPSV", "C<  REST STREAM", "C<  AUTH TLS", "C<  PBSZ", "C<  PROT", "C< 211 End"]],
    ]);
  });

  it("opens with AUTH TLS, PBSZ and PROT P to the backend when it is configured so", () => {
    const d = ftp({ backendTls: "starttls" });
    play(d, [
      ["B: 220-Welcome", []],
      ["B: 220 to the server", ["B< AUTH TLS"]],
      ["B: 234 Proceed", ["tls backend"]],
      ["tls B", ["B< PBSZ 0"]],
      ["B: 200 PBSZ=0", ["B< PROT P"]],
      ["B: 200 PROT now Private.", ["C< 220-Welcome", "C< 220 to the server"]],
    ]);
  });

  it("reads ABOR after Telnet IP and Synch bytes, and drops the data connection", () => {
    const d = ftp();
    open(d);
    play(d, [["C: \xff\xf4\xff\xf2ABOR", ["abort", "B< ABOR"]]]);
  });

  it("relays multi-line replies as they come", () => {
    const d = ftp();
    open(d);
    play(d, [
      ["C: HELP", ["B< HELP"]],
      ["B: 214-The following commands", ["C< 214-The following commands"]],
      ["B: 214 text 214 inside", ["C< 214 text 214 inside"]],
      ["C: NOOP", ["B< NOOP"]],
      ["B: 200 NOOP ok.", ["C< 200 NOOP ok."]],
    ]);
  });

  it("refuses PASV on an IPv6 control connection and after EPSV ALL", () => {
    const d = ftp({ local: "2001:db8::1", client: "2001:db8::7" });
    open(d);
    play(d, [
      ["C: PASV", ["C< 522 PASV needs IPv4; use EPSV"]],
      ["C: EPSV ALL", ["C< 200 EPSV ALL accepted"]],
      ["C: PORT 1,2,3,4,5,6", ["C< 503 EPSV ALL was sent: use EPSV"]],
    ]);
  });

  const ports: [string, ReturnType<typeof parsePort>][] = [
    ["127,0,0,1,195,80", { host: "127.0.0.1", port: 50000 }],
    ["127,0,0,1,256,80", undefined],
    ["127,0,0,1,195", undefined],
  ];
  for (const [arg, expected] of ports) it(`reads PORT ${arg}`, () => assert.deepEqual(parsePort(arg), expected));

  const eprts: [string, ReturnType<typeof parseEprt>][] = [
    ["|1|132.235.1.2|6275|", { host: "132.235.1.2", port: 6275 }],
    ["|2|1080::8:800:200C:417A|5282|", { host: "1080::8:800:200C:417A", port: 5282 }],
    ["!1!132.235.1.2!6275!", { host: "132.235.1.2", port: 6275 }],
    ["|1|1080::1|5282|", undefined],
    ["|1|1.2.3.4|0|", undefined],
  ];
  for (const [arg, expected] of eprts) it(`reads EPRT ${arg}`, () => assert.deepEqual(parseEprt(arg), expected));
});

describe("FTP behind NAT", () => {
  it("announces passiveAddress in 227 replies instead of the address the client reached", () => {
    const d = ftp({ local: "192.168.1.2", announce: "203.0.113.10" });
    open(d);
    play(d, [
      ["C: PASV", ["B< PASV"]],
      ["B: 227 Entering Passive Mode (10,0,0,30,195,80).", ["open pasv 50000"]],
      ["ready 50001", ["C< 227 Entering Passive Mode (203,0,113,10,195,81)."]],
    ]);
  });
});
