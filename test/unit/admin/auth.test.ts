import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LOGIN_WINDOW_MS, LoginLimiter } from "../../../src/admin/auth/limiter.js";
import { hashPassword, isPasswordHash, verifyPassword } from "../../../src/admin/auth/password.js";
import { readCookie, Sessions } from "../../../src/admin/auth/sessions.js";

describe("admin password hashes", () => {
  it("verifies the password it was made from and nothing else", async () => {
    const hash = await hashPassword("sésame ouvre-toi");
    assert.equal(isPasswordHash(hash), true);
    assert.equal(await verifyPassword("sésame ouvre-toi", hash), true);
    assert.equal(await verifyPassword("sesame ouvre-toi", hash), false);
  });

  const notHashes = [
    "hunter2",
    "$scrypt$ln=15,r=8,p=1$short$x",
    "$scrypt$ln=40,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
  ];
  for (const text of notHashes) {
    it(`takes ${JSON.stringify(text.slice(0, 20))} for no hash (and never verifies against it)`, async () => {
      assert.equal(isPasswordHash(text), false);
      assert.equal(await verifyPassword("hunter2", text), false);
    });
  }
});

describe("admin sessions", () => {
  it("expires a session its idle time after its last use", () => {
    let now = 0;
    const s = new Sessions(() => now);
    const a = s.create("10.0.0.1");
    now = 50;
    assert.equal(s.use(a.id, 100)?.id, a.id);
    now = 140;
    assert.equal(s.use(a.id, 100)?.id, a.id, "each use pushes the expiry on");
    now = 241;
    assert.equal(s.use(a.id, 100), undefined);
  });

  it("ends every session when the password changes", () => {
    const s = new Sessions();
    s.bindTo("hash one");
    const a = s.create("10.0.0.1");
    s.bindTo("hash one");
    assert.ok(s.use(a.id, 1000));
    s.bindTo("hash two");
    assert.equal(s.use(a.id, 1000), undefined);
  });

  it("holds a bounded number of sessions", () => {
    const s = new Sessions();
    for (let i = 0; i < 1000; i++) s.create("10.0.0.1");
    assert.ok(s.size <= 64);
  });

  it("reads one cookie from a Cookie header", () => {
    assert.equal(readCookie("a=1; gatehouse_session=xyz; b=2", "gatehouse_session"), "xyz");
    assert.equal(readCookie("gatehouse_sessionx=1", "gatehouse_session"), undefined);
    assert.equal(readCookie(undefined, "gatehouse_session"), undefined);
  });
});

describe("login limiter", () => {
  it("makes a client wait after its limit of failures until the window ends", () => {
    let now = 0;
    const l = new LoginLimiter(
      () => 2,
      () => now,
    );
    l.failed("10.0.0.1");
    assert.equal(l.wait("10.0.0.1"), 0);
    l.failed("10.0.0.1");
    assert.equal(l.wait("10.0.0.1"), LOGIN_WINDOW_MS);
    assert.equal(l.wait("10.0.0.2"), 0, "other clients are not held up");
    now = LOGIN_WINDOW_MS;
    assert.equal(l.wait("10.0.0.1"), 0);
  });

  it("forgets failures after a successful login", () => {
    const l = new LoginLimiter(() => 1);
    l.failed("10.0.0.1");
    l.succeeded("10.0.0.1");
    assert.equal(l.wait("10.0.0.1"), 0);
  });
});
