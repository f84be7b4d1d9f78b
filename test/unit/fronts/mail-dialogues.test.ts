import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ImapDialogue } from "../../../src/fronts/mail/imap.js";
import { Pop3Dialogue } from "../../../src/fronts/mail/pop3.js";
import { SmtpDialogue, xclientCommand } from "../../../src/fronts/mail/smtp.js";
import type { Action, Dialogue, Side } from "../../../src/fronts/tcp/dialogue.js";

// Playbooks for the mail dialogues, as mitmproxy tests its layers: a list of events (a line from a
// side, a stretch passed, TLS up) and the actions expected after each, without any socket.

type Step = [event: string, expected: string[]];

/** "C: line" / "B: line" feed a side; "passed C" / "passed B"; "tls C" / "tls B". */
function play(d: Dialogue, steps: Step[]): void {
  for (const [event, expected] of steps) {
    let actions: Action[];
    const m = /^([CB]): (.*)$/s.exec(event);
    const side = (s: string): Side => (s === "C" ? "client" : "backend");
    if (m) actions = d.line(side(m[1] as string), m[2] as string);
    else if (event.startsWith("passed ")) actions = d.passed(side(event.slice(7)));
    else if (event.startsWith("tls ")) actions = d.secured(side(event.slice(4)));
    else if (event === "backend closed") actions = d.backendClosed();
    else throw new Error(`bad step ${event}`);
    assert.deepEqual(actions.map(show), expected, `after "${event}"`);
  }
}

function show(a: Action): string {
  if ("send" in a) return `${a.send === "client" ? "C" : "B"}< ${a.line}`;
  if ("pass" in a) return `pass ${a.pass} ${a.bytes}`;
  if ("passDot" in a) return `passDot ${a.passDot}`;
  if ("tls" in a) return `tls ${a.tls}`;
  return `close ${a.close}`;
}

const smtp = (o: Partial<ConstructorParameters<typeof SmtpDialogue>[0]> = {}) =>
  new SmtpDialogue({
    clientTls: false,
    backendStarttls: false,
    xclient: undefined,
    ehloName: "gh.test",
    authNeedsTls: true,
    ...o,
  });

const EHLO_REPLY: Step[] = [
  ["B: 250-mx.office.test", []],
  ["B: 250-PIPELINING", []],
  ["B: 250-STARTTLS", []],
  ["B: 250-AUTH PLAIN LOGIN", []],
  ["B: 250-XCLIENT NAME ADDR PROTO HELO", []],
  ["B: 250-CHUNKING", []],
];

describe("SMTP dialogue", () => {
  it("relays the greeting when nothing needs opening", () => play(smtp(), [["B: 220 mx ESMTP", ["C< 220 mx ESMTP"]]]));

  it("opens with XCLIENT, and the client hears the greeting that follows it", () =>
    play(smtp({ xclient: { address: "192.0.2.7", port: 40000 } }), [
      ["B: 220 mx ESMTP", ["B< EHLO gh.test"]],
      ...EHLO_REPLY,
      ["B: 250 8BITMIME", ["B< XCLIENT ADDR=192.0.2.7 PORT=40000"]],
      ["B: 220 mx ESMTP again", ["C< 220 mx ESMTP again"]],
    ]));

  it("refuses the session when the backend does not take XCLIENT from gatehouse (never relays as itself)", () =>
    play(smtp({ xclient: { address: "192.0.2.7", port: 1 } }), [
      ["B: 220 mx", ["B< EHLO gh.test"]],
      ["B: 250 mx", ["C< 421 4.3.0 The mail server is not available; try again later", "close error"]],
    ]));

  it("opens with STARTTLS to the backend before the client hears anything", () =>
    play(smtp({ backendStarttls: true }), [
      ["B: 220 mx", ["B< EHLO gh.test"]],
      ["B: 250-mx", []],
      ["B: 250 STARTTLS", ["B< STARTTLS"]],
      ["B: 220 go ahead", ["tls backend"]],
      ["tls B", ["C< 220 mx"]],
    ]));

  it("shows capabilities as the front's TLS state requires, before and after STARTTLS", () =>
    play(smtp(), [
      ["B: 220 mx", ["C< 220 mx"]],
      ["C: EHLO client.example", ["B< EHLO client.example"]],
      ...EHLO_REPLY,
      ["B: 250 SIZE 1000", ["C< 250-mx.office.test", "C< 250-PIPELINING", "C< 250-SIZE 1000", "C< 250 STARTTLS"]],
      ["C: STARTTLS", ["C< 220 2.0.0 Ready to start TLS", "tls client"]],
      ["tls C", []],
      ["C: EHLO client.example", ["B< EHLO client.example"]],
      ...EHLO_REPLY,
      ["B: 250 SIZE 1000", ["C< 250-mx.office.test", "C< 250-PIPELINING", "C< 250-AUTH PLAIN LOGIN", "C< 250 SIZE 1000"]],
    ]));

  it("refuses AUTH before TLS without asking the backend, and relays SASL after it", () =>
    play(smtp(), [
      ["B: 220 mx", ["C< 220 mx"]],
      ["C: AUTH PLAIN AGFsaWNlAHNlY3JldA==", ["C< 530 5.7.0 Must issue a STARTTLS command first"]],
      ["C: STARTTLS", ["C< 220 2.0.0 Ready to start TLS", "tls client"]],
      ["tls C", []],
      ["C: AUTH LOGIN", ["B< AUTH LOGIN"]],
      ["B: 334 VXNlcm5hbWU6", ["C< 334 VXNlcm5hbWU6"]],
      ["C: YWxpY2U=", ["B< YWxpY2U="]],
      ["B: 235 2.7.0 Authentication successful", ["C< 235 2.7.0 Authentication successful"]],
    ]));

  it("keeps replies in order when the front answers a pipelined command itself", () =>
    play(smtp(), [
      ["B: 220 mx", ["C< 220 mx"]],
      ["C: MAIL FROM:<a@b>", ["B< MAIL FROM:<a@b>"]],
      ["C: XCLIENT ADDR=10.0.0.1", []],
      ["C: BDAT 10 LAST", []],
      [
        "B: 250 2.1.0 Ok",
        [
          "C< 250 2.1.0 Ok",
          "C< 550 5.7.0 XCLIENT is not accepted from clients",
          "C< 502 5.5.1 BDAT is not offered here; use DATA",
        ],
      ],
    ]));

  it("streams DATA after 354 and waits for the reply to the final dot", () => {
    const d = smtp();
    play(d, [
      ["B: 220 mx", ["C< 220 mx"]],
      ["C: DATA", ["B< DATA"]],
    ]);
    assert.equal(d.holdClient, true, "the message waits for 354");
    play(d, [
      ["B: 354 End data with <CR><LF>.<CR><LF>", ["C< 354 End data with <CR><LF>.<CR><LF>", "passDot client"]],
      ["passed C", []],
      ["B: 250 2.0.0 Ok: queued", ["C< 250 2.0.0 Ok: queued"]],
    ]);
  });

  it("waits for pipelined replies before switching to TLS, holding what the client sends next", () => {
    const d = smtp();
    play(d, [
      ["B: 220 mx", ["C< 220 mx"]],
      ["C: NOOP", ["B< NOOP"]],
      ["C: STARTTLS", []],
    ]);
    assert.equal(d.holdClient, true);
    play(d, [["B: 250 2.0.0 Ok", ["C< 250 2.0.0 Ok", "C< 220 2.0.0 Ready to start TLS", "tls client"]]]);
  });

  it("answers control characters with an error, and closes after too many", () => {
    const d = smtp();
    play(d, [["B: 220 mx", ["C< 220 mx"]]]);
    for (let i = 0; i < 10; i++) play(d, [["C: \x00\x01", ["C< 500 5.5.2 Syntax error: control characters in the command"]]]);
    play(d, [["C: \x00", ["C< 421 4.7.0 Too many errors", "close error"]]]);
  });

  it("tells the client when the backend goes away, unless it asked to quit", () => {
    play(smtp(), [["backend closed", ["C< 421 4.4.2 The mail server closed the connection; try again later"]]]);
    play(smtp(), [
      ["B: 220 mx", ["C< 220 mx"]],
      ["C: QUIT", ["B< QUIT"]],
      ["backend closed", []],
    ]);
  });

  it("writes XCLIENT values as xtext, IPv6 with its prefix", () => {
    assert.equal(xclientCommand({ address: "2001:db8::7", port: 25 }), "XCLIENT ADDR=IPV6:2001:db8::7 PORT=25");
  });
});

const pop3 = (clientTls = false, backendStls = false) => new Pop3Dialogue({ clientTls, backendStls });

describe("POP3 dialogue", () => {
  it("corrects CAPA before and after STLS, and refuses credentials before TLS", () =>
    play(pop3(), [
      ["B: +OK Dovecot ready.", ["C< +OK Dovecot ready."]],
      ["C: CAPA", ["B< CAPA"]],
      ["B: +OK", ["C< +OK"]],
      ["B: TOP", []],
      ["B: STLS", []],
      ["B: USER", []],
      ["B: SASL PLAIN", []],
      ["B: .", ["C< TOP", "C< STLS", "C< ."]],
      ["C: USER alice", ["C< -ERR [AUTH] Log in after STLS: credentials never cross in clear"]],
      ["C: STLS", ["C< +OK Begin TLS negotiation", "tls client"]],
      ["tls C", []],
      ["C: CAPA", ["B< CAPA"]],
      ["B: +OK", ["C< +OK"]],
      ["B: STLS", []],
      ["B: USER", []],
      ["B: .", ["C< USER", "C< ."]],
      ["C: USER alice", ["B< USER alice"]],
    ]));

  it("streams RETR unread and relays LIST line by line", () =>
    play(pop3(true), [
      ["B: +OK ready", ["C< +OK ready"]],
      ["C: RETR 1", ["B< RETR 1"]],
      ["B: +OK 120 octets", ["C< +OK 120 octets", "passDot backend"]],
      ["passed B", []],
      ["C: LIST", ["B< LIST"]],
      ["B: +OK 1 messages", ["C< +OK 1 messages"]],
      ["B: 1 120", ["C< 1 120"]],
      ["B: .", ["C< ."]],
      ["C: RETR 9", ["B< RETR 9"]],
      ["B: -ERR no such message", ["C< -ERR no such message"]],
    ]));

  it("opens with STLS to the backend", () =>
    play(pop3(false, true), [
      ["B: +OK ready", ["B< STLS"]],
      ["B: +OK Begin TLS", ["tls backend"]],
      ["tls B", ["C< +OK ready"]],
    ]));
});

const imap = (clientTls = false, backendStarttls = false) => new ImapDialogue({ clientTls, backendStarttls });

describe("IMAP dialogue", () => {
  it("corrects capabilities in the greeting, CAPABILITY and tagged OK", () =>
    play(imap(), [
      [
        "B: * OK [CAPABILITY IMAP4rev1 SASL-IR STARTTLS AUTH=PLAIN COMPRESS=DEFLATE IDLE] ready",
        ["C< * OK [CAPABILITY IMAP4rev1 SASL-IR IDLE STARTTLS LOGINDISABLED] ready"],
      ],
      ["C: a STARTTLS", ["C< a OK Begin TLS negotiation now", "tls client"]],
      ["tls C", []],
      ["C: b CAPABILITY", ["B< b CAPABILITY"]],
      ["B: * CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN", ["C< * CAPABILITY IMAP4rev1 AUTH=PLAIN"]],
      ["B: b OK done", ["C< b OK done"]],
      ["C: c LOGIN alice pw", ["B< c LOGIN alice pw"]],
      ["B: c OK [CAPABILITY IMAP4rev1 IDLE COMPRESS=DEFLATE] Logged in", ["C< c OK [CAPABILITY IMAP4rev1 IDLE] Logged in"]],
    ]));

  it("refuses LOGIN, AUTHENTICATE and COMPRESS where they cannot be allowed", () =>
    play(imap(), [
      ["B: * OK ready", ["C< * OK ready"]],
      ["C: a LOGIN alice pw", ["C< a NO [PRIVACYREQUIRED] Log in after STARTTLS: credentials never cross in clear"]],
      ["C: b AUTHENTICATE PLAIN", ["C< b NO [PRIVACYREQUIRED] Log in after STARTTLS: credentials never cross in clear"]],
      ["C: c COMPRESS DEFLATE", ["C< c NO Compression is not offered here"]],
      ["C: \x00\x01", ["C< * BAD Expected a tag and a command"]],
    ]));

  it("passes literals unread both ways: synchronizing ones after the backend's +", () => {
    const d = imap(true);
    play(d, [
      ["B: * OK ready", ["C< * OK ready"]],
      ["C: a APPEND INBOX {11}", ["B< a APPEND INBOX {11}"]],
    ]);
    assert.equal(d.holdClient, true, "the literal waits for the backend's go-ahead");
    play(d, [
      ["B: + Ready for literal data", ["C< + Ready for literal data", "pass client 11"]],
      ["passed C", []],
      ["C: ", ["B< "]],
      ["B: a OK Append completed", ["C< a OK Append completed"]],
      ["C: b APPEND INBOX {5+}", ["B< b APPEND INBOX {5+}", "pass client 5"]],
      ["passed C", []],
      ["C:  a STARTTLS", ["B<  a STARTTLS"]],
      ["C: c FETCH 1 BODY[]", ["B< c FETCH 1 BODY[]"]],
      ["B: * 1 FETCH (BODY[] {2048}", ["C< * 1 FETCH (BODY[] {2048}", "pass backend 2048"]],
      ["passed B", []],
      ["B: * CAPABILITY looks like one but continues the FETCH)", ["C< * CAPABILITY looks like one but continues the FETCH)"]],
    ]);
  });

  it("forgets a synchronizing literal the backend refuses", () => {
    const d = imap(true);
    play(d, [
      ["B: * OK ready", ["C< * OK ready"]],
      ["C: a APPEND INBOX {99999999}", ["B< a APPEND INBOX {99999999}"]],
      ["B: a NO too big", ["C< a NO too big"]],
    ]);
    assert.equal(d.holdClient, false);
  });

  it("relays IDLE and its DONE without reading DONE as a command", () =>
    play(imap(true), [
      ["B: * OK ready", ["C< * OK ready"]],
      ["C: a IDLE", ["B< a IDLE"]],
      ["B: + idling", ["C< + idling"]],
      ["B: * 4 EXISTS", ["C< * 4 EXISTS"]],
      ["C: DONE", ["B< DONE"]],
      ["B: a OK Idle completed", ["C< a OK Idle completed"]],
    ]));

  it("opens with STARTTLS to the backend and hides the capabilities it gave in clear", () =>
    play(imap(false, true), [
      ["B: * OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready", ["B< gh0 STARTTLS"]],
      ["B: gh0 OK Begin TLS", ["tls backend"]],
      ["tls B", ["C< * OK ready"]],
    ]));
});
