import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { type AddressInfo, connect, createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { testHash } from "../helpers/admin.js";
import { runGatehouse, spawnGatehouse } from "../helpers/cli.js";
import { startOrigin } from "../helpers/origin.js";
import { freePort } from "../helpers/ports.js";
import { eventually, viaProxy } from "../helpers/proxy.js";
import { rulesDir } from "../helpers/rules.js";

function tempConfig(yaml: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-cli-"));
  const file = join(dir, "gatehouse.yaml");
  writeFileSync(file, yaml);
  return { dir, file };
}

const QUIET = 'log:\n  access:\n    file: ""\ndns:\n  listen: []\nadmin:\n  listen: "127.0.0.1:0"\n';

describe("gatehouse command", () => {
  it("prints its version", async () => {
    const r = await runGatehouse(["--version"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
  });

  it("prints usage for --help", async () => {
    const r = await runGatehouse(["--help"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /gatehouse start \[-c FILE\]/);
  });

  it("check passes on a good config", async () => {
    const { dir, file } = tempConfig(QUIET);
    const r = await runGatehouse(["check", "-c", file], dir);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it("check counts the records of the hosts file and of each zone file", async () => {
    const rules = rulesDir({
      hosts: "10.0.0.5 nas nas.office.lan\n10.0.0.6 printer\n",
      "zones/office.lan.zone": "$ORIGIN office.lan.\n$TTL 300\nwww IN A 10.0.0.7\nmail IN A 10.0.0.8\n@ IN MX 10 mail\n",
    });
    const { dir, file } = tempConfig(`${QUIET}rules: ${rules}\n`);
    const r = await runGatehouse(["check", "-c", file], dir);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // Records as served: a hosts line makes an address record per name and the reverse one.
    assert.match(r.stdout, /\/hosts: [1-9]\d* hosts entries$/m);
    assert.match(r.stdout, /\/zones\/office\.lan\.zone: [1-9]\d* zone entries$/m);
  });

  it("check lists every problem with file:line and exits 1", async () => {
    const { file } = tempConfig("proxy:\n  cache:\n    memory: lots\n  bogus: 1\n");
    const r = await runGatehouse(["check", "-c", file]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`${file.replace(/[.]/g, "\\.")}:3: proxy\\.cache\\.memory: expected a size like 256MiB`));
    assert.match(r.stdout, /:4: proxy\.bogus: unknown key/);
  });

  it("start refuses a bad config with every error and exit 1", async () => {
    const { file } = tempConfig('proxy:\n  listen: ["nonsense"]\n  limits:\n    idleTimeout: never\n');
    const run = spawnGatehouse(["-c", file]);
    assert.equal(await run.exited, 1);
    assert.match(run.stderr(), /:2: proxy\.listen\[0\]/);
    assert.match(run.stderr(), /:4: proxy\.limits\.idleTimeout/);
  });

  it("start exits 1 with a clear message when the config file is missing", async () => {
    const run = spawnGatehouse(["-c", "/nonexistent/gatehouse.yaml"]);
    assert.equal(await run.exited, 1);
    assert.match(run.stderr(), /cannot read the config file \(ENOENT\)/);
  });

  it("SIGHUP with a bad config keeps the old one serving; a good one is applied", async () => {
    const origin = await startOrigin((_q, s) => s.end("up"));
    const { dir, file } = tempConfig(`${QUIET}proxy:\n  listen: ["127.0.0.1:0"]\n`);
    const run = spawnGatehouse(["-c", file], dir);
    try {
      const started = await run.waitFor(/gatehouse started/);
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(started)?.[1]);
      writeFileSync(file, `${QUIET}proxy:\n  listen: ["127.0.0.1:0"]\n  limits:\n    idleTimeout: never\n`);
      run.child.kill("SIGHUP");
      await run.waitFor(/reload failed; the previous configuration stays in force/);
      assert.match(run.stderr(), /gatehouse\.yaml:11: proxy\.limits\.idleTimeout: expected a duration/);
      assert.equal((await viaProxy(port, `${origin.url}/`)).body.toString(), "up");

      writeFileSync(file, `${QUIET}proxy:\n  listen: ["127.0.0.1:${port}"]\n  clients: ["10.0.0.0/8"]\n`);
      run.child.kill("SIGHUP");
      await run.waitFor(/configuration reloaded/);
      assert.equal((await viaProxy(port, `${origin.url}/`)).status, 403);
    } finally {
      run.child.kill("SIGTERM");
      await run.exited;
      await origin.close();
    }
  });

  it("SIGTERM lets an open request finish, then exits 0", async () => {
    let release: () => void = () => {};
    const origin = await startOrigin((_q, s) => {
      s.write("part one, ");
      release = () => s.end("part two");
    });
    const { dir, file } = tempConfig(`${QUIET}proxy:\n  listen: ["127.0.0.1:0"]\n`);
    const run = spawnGatehouse(["-c", file], dir);
    try {
      const started = await run.waitFor(/gatehouse started/);
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(started)?.[1]);
      const pending = viaProxy(port, `${origin.url}/slow`);
      while (origin.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
      run.child.kill("SIGTERM");
      setTimeout(() => release(), 200);
      const r = await pending;
      assert.equal(r.body.toString(), "part one, part two");
      assert.equal(await run.exited, 0);
    } finally {
      run.child.kill("SIGKILL");
      await origin.close();
    }
  });
});

describe("gatehouse start: stopping", () => {
  it("SIGTERM refuses new connections at once and cuts what is still open after shutdownGrace, saying how many", async () => {
    const origin = await startOrigin((_q, s) => s.write("never finishes"));
    const { dir, file } = tempConfig(`${QUIET}shutdownGrace: 500ms\nproxy:\n  listen: ["127.0.0.1:0"]\n`);
    const run = spawnGatehouse(["-c", file], dir);
    try {
      const started = await run.waitFor(/gatehouse started/);
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(started)?.[1]);
      const pending = viaProxy(port, `${origin.url}/forever`).catch(() => "cut");
      while (origin.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
      run.child.kill("SIGTERM");
      // A new connection right after the signal is refused, not queued behind the open request.
      const refused = await new Promise<boolean>((resolve) => {
        const tryOnce = () => {
          const s = connect(port, "127.0.0.1");
          s.once("connect", () => {
            s.destroy();
            setTimeout(tryOnce, 10);
          });
          s.once("error", () => resolve(true));
        };
        tryOnce();
      });
      assert.equal(refused, true);
      assert.equal(await run.exited, 0);
      assert.equal(await pending, "cut");
      assert.match(run.stderr(), /closed 1 request\(s\) and tunnel\(s\) still open after shutdownGrace/);
    } finally {
      run.child.kill("SIGKILL");
      await origin.close();
    }
  });
});

describe("gatehouse start: stopping with tunnels and front sessions", () => {
  it("counts an open tunnel and a mail session once each, and tells the mail client in its protocol's words", async () => {
    // A TCP server that greets like SMTP and then never closes: both the tunnel and the session reach it.
    const sink = createTcpServer((c) => {
      c.on("error", () => {});
      c.write("220 sink ESMTP\r\n");
    });
    await new Promise<void>((r) => sink.listen(0, "127.0.0.1", r));
    const sinkPort = (sink.address() as AddressInfo).port;
    const smtp = await freePort();
    const { dir, file } = tempConfig(
      // One process: with workers, each says what it cut (the tunnel and the session may land apart).
      `${QUIET}workers: 1\nshutdownGrace: 300ms\nproxy:\n  listen: ["127.0.0.1:0"]\n  connectPorts: [${sinkPort}]\nfronts:\n  - { name: mx, protocol: smtp, listen: ["127.0.0.1:${smtp}"], backend: "127.0.0.1:${sinkPort}" }\n`,
    );
    const run = spawnGatehouse(["-c", file], dir);
    try {
      const started = await run.waitFor(/gatehouse started/);
      const port = Number(/"proxy":\["127\.0\.0\.1:(\d+)"/.exec(started)?.[1]);
      const tunnel = connect(port, "127.0.0.1");
      tunnel.on("error", () => {});
      tunnel.write(`CONNECT 127.0.0.1:${sinkPort} HTTP/1.1\r\nHost: 127.0.0.1:${sinkPort}\r\n\r\n`);
      await new Promise<void>((r) => tunnel.once("data", () => r()));
      const mail = connect(smtp, "127.0.0.1");
      mail.on("error", () => {});
      let said = "";
      mail.on("data", (d: Buffer) => {
        said += d.toString();
      });
      await eventually(() => said.includes("220"), 5000, "the greeting");
      run.child.kill("SIGTERM");
      assert.equal(await run.exited, 0);
      await eventually(() => said.includes("421 4.3.2"), 5000, `a 421 goodbye (got ${JSON.stringify(said)})`);
      assert.match(run.stderr(), /closed 2 request\(s\) and tunnel\(s\) still open after shutdownGrace/);
      tunnel.destroy();
      mail.destroy();
    } finally {
      run.child.kill("SIGKILL");
      sink.close();
    }
  });
});

describe("gatehouse start: log rotation", () => {
  it("SIGUSR1 after logrotate moved the access log: earlier lines stay in the moved file, later ones go to a new one", async () => {
    const origin = await startOrigin((_q, s) => s.end("up"));
    const { dir, file } = tempConfig(
      `log:\n  access:\n    file: access.log\ndns:\n  listen: []\nproxy:\n  listen: ["127.0.0.1:0"]\n`,
    );
    const log = join(dir, "access.log");
    const run = spawnGatehouse(["-c", file], dir);
    try {
      const started = await run.waitFor(/gatehouse started/);
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(started)?.[1]);
      await viaProxy(port, `${origin.url}/before`);
      await eventually(() => existsSync(log) && readFileSync(log, "utf8").includes("/before"), 5000, "first line written");
      renameSync(log, `${log}.1`);
      run.child.kill("SIGUSR1");
      await run.waitFor(/log files reopened/);
      await viaProxy(port, `${origin.url}/after`);
      await eventually(() => existsSync(log) && readFileSync(log, "utf8").includes("/after"), 5000, "line in the new file");
      assert.doesNotMatch(readFileSync(log, "utf8"), /\/before/);
      assert.doesNotMatch(readFileSync(`${log}.1`, "utf8"), /\/after/);
      assert.doesNotMatch(run.stderr(), /Debugger listening/);
    } finally {
      run.child.kill("SIGTERM");
      await run.exited;
      await origin.close();
    }
  });
});

describe("gatehouse start: what it says", () => {
  it("logs every listener, the admin one included, and the entries of each rules file", async () => {
    const rules = rulesDir({ "block/ads.txt": "a.example\nb.example\n" });
    const { dir, file } = tempConfig(
      `log:\n  access:\n    file: ""\nrules: ${rules}\ndns:\n  listen: []\nadmin:\n  listen: "127.0.0.1:0"\nproxy:\n  listen: ["127.0.0.1:0"]\n`,
    );
    const run = spawnGatehouse(["-c", file], dir);
    try {
      const started = await run.waitFor(/gatehouse started/);
      assert.match(started, /"proxy":\["127\.0\.0\.1:\d+"\]/);
      assert.match(started, /"admin":"127\.0\.0\.1:\d+"/);
      assert.match(started, /block\/ads\.txt":2/);
    } finally {
      run.child.kill("SIGTERM");
      await run.exited;
    }
  });

  it("reports a missing config file without a line number", async () => {
    const r = await runGatehouse(["check", "-c", "/nonexistent/gatehouse.yaml"]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^\/nonexistent\/gatehouse\.yaml: cannot read the config file \(ENOENT\)$/m);
    assert.doesNotMatch(r.stdout, /:0:/);
  });

  it("warns in check when the rules directory does not exist", async () => {
    const { dir, file } = tempConfig(`${QUIET}rules: ./no-such-rules\n`);
    const r = await runGatehouse(["check", "-c", file], dir);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /warning: rules directory .*no-such-rules does not exist/);
  });

  it("reads relative paths in the config file from the file's directory", async () => {
    const { dir, file } = tempConfig(`${QUIET}rules: ./my-rules\n`);
    mkdirSync(join(dir, "my-rules/block"), { recursive: true });
    writeFileSync(join(dir, "my-rules/block/x.txt"), "relative.example\n");
    const r = await runGatehouse(["explain", "relative.example", "-c", file], tmpdir());
    assert.match(r.stdout, /^relative\.example: BLOCK$/m);
  });
});

describe("gatehouse explain against a running gatehouse", () => {
  it("explains what is in force, which may be the last good version of a file", async () => {
    const rules = rulesDir({ "block/ads.txt": "served.example\n" });
    const { dir, file } = tempConfig(
      `log:\n  access:\n    file: ""\nrules: ${rules}\ndns:\n  listen: []\n  upstreams: ["127.0.0.1:9"]\nadmin:\n  listen: "127.0.0.1:${await freePort()}"\nproxy:\n  listen: ["127.0.0.1:0"]\n`,
    );
    const run = spawnGatehouse(["-c", file], dir);
    try {
      await run.waitFor(/gatehouse started/);
      // A broken edit: the running process keeps the last good version; the files alone would not.
      writeFileSync(join(rules, "block/ads.txt"), "other.example\nnot a domain\n");
      await run.waitFor(/has errors; its last good version stays in force/);
      const r = await runGatehouse(["explain", "served.example", "-c", file], dir);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^served\.example: BLOCK$/m);
      assert.doesNotMatch(r.stderr, /explained from the files/);
    } finally {
      run.child.kill("SIGTERM");
      await run.exited;
    }
  });

  it("says so when it explains from the files because nothing runs", async () => {
    const { dir, file } = tempConfig(`dns:\n  listen: []\nadmin:\n  listen: "127.0.0.1:${await freePort()}"\n`);
    const r = await runGatehouse(["explain", "example.com", "-c", file], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /no running gatehouse answers on http:\/\/127\.0\.0\.1:\d+; explained from the files/);
    assert.match(r.stdout, /^example\.com: ALLOW$/m);
  });
});

describe("gatehouse cache", () => {
  it("prints the running proxy's cache stats and purges a URL", async () => {
    const free = await freePort();
    const origin = await startOrigin((_q, s) => {
      s.writeHead(200, { "cache-control": "max-age=600" });
      s.end("cacheable");
    });
    const { dir, file } = tempConfig(
      // One process: which worker takes the second request is the kernel's choice (see cluster.test.ts).
      `workers: 1\nlog:\n  access:\n    file: ""\ndns:\n  listen: []\nadmin:\n  listen: "127.0.0.1:${free}"\nproxy:\n  listen: ["127.0.0.1:0"]\n`,
    );
    const run = spawnGatehouse(["-c", file], dir);
    try {
      const started = await run.waitFor(/gatehouse started/);
      const port = Number(/"proxy":\["127\.0\.0\.1:(\d+)"/.exec(started)?.[1]);
      await viaProxy(port, `${origin.url}/page`);
      await viaProxy(port, `${origin.url}/page`);
      const stats = await runGatehouse(["cache", "stats", "-c", file], dir);
      assert.equal(stats.code, 0, stats.stderr);
      assert.match(stats.stdout, /^memory: 1 entries, /m);
      assert.match(stats.stdout, /hits: 1, misses: 1, hit ratio: 50\.0%/);
      const purge = await runGatehouse(["cache", "purge", `${origin.url}/page`, "-c", file], dir);
      assert.match(purge.stdout, /purged 1 stored response$/m);
    } finally {
      run.child.kill("SIGTERM");
      await run.exited;
      await origin.close();
    }
  });

  it("refuses to purge something that is not a URL, with exit 2", async () => {
    const { dir, file } = tempConfig(QUIET);
    const r = await runGatehouse(["cache", "purge", "not a url", "-c", file], dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /"not a url" is not a URL/);
  });

  it("says so when no gatehouse is running", async () => {
    const { dir, file } = tempConfig('admin:\n  listen: "127.0.0.1:9"\n');
    const r = await runGatehouse(["cache", "stats", "-c", file], dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no gatehouse answers on http:\/\/127\.0\.0\.1:9/);
  });
});

describe("gatehouse CLI and the admin it cannot ask", () => {
  it("explain says admin.listen is off, in plain words, and explains from the files", async () => {
    const { dir, file } = tempConfig('dns:\n  listen: []\nadmin:\n  listen: ""\n');
    const r = await runGatehouse(["explain", "example.com", "-c", file], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stderr,
      "gatehouse explain: admin.listen is off, so there is no running gatehouse to ask; explained from the files\n",
    );
    assert.match(r.stdout, /^example\.com: ALLOW$/m);
  });

  it("with admin.password set and admin.state off, says the CLI has no token and what to do; explain falls back to the files", async () => {
    const { dir, file } = tempConfig(
      `log:\n  access:\n    file: ""\ndns:\n  listen: []\nproxy:\n  listen: ["127.0.0.1:0"]\nadmin:\n  listen: "127.0.0.1:${await freePort()}"\n  state: ""\n  password: "${await testHash()}"\n`,
    );
    const run = spawnGatehouse(["-c", file], dir);
    try {
      await run.waitFor(/gatehouse started/);
      for (const args of [["status"], ["cache", "stats"]]) {
        const r = await runGatehouse([...args, "-c", file], dir);
        assert.equal(r.code, 1, r.stdout);
        assert.match(r.stderr, /the CLI reads its token from admin\.state, which is off \(admin\.state: ""\); set admin\.state/);
        assert.doesNotMatch(r.stderr, /log in first/);
      }
      const e = await runGatehouse(["explain", "example.com", "-c", file], dir);
      assert.equal(e.code, 0, e.stderr);
      assert.match(e.stderr, /cannot ask the running gatehouse: .*admin\.state, which is off.*; explained from the files$/m);
      assert.match(e.stdout, /^example\.com: ALLOW$/m);
    } finally {
      run.child.kill("SIGTERM");
      await run.exited;
    }
  });
});

describe("gatehouse status", () => {
  it("shows each front with its listeners and its backends up or down", async () => {
    const origin = await startOrigin((_q, s) => s.end("ok"));
    const frontPort = await freePort();
    const { dir, file } = tempConfig(
      `log:\n  access:\n    file: ""\ndns:\n  listen: []\nproxy:\n  listen: ["127.0.0.1:0"]\nadmin:\n  listen: "127.0.0.1:${await freePort()}"\nfronts:\n  - name: intranet\n    protocol: http\n    listen: ["127.0.0.1:${frontPort}"]\n    hosts: [intranet.test]\n    backend: ["${origin.url}", "http://127.0.0.1:9"]\n    health: { interval: 50ms, fall: 1 }\n`,
    );
    const run = spawnGatehouse(["-c", file], dir);
    try {
      await run.waitFor(/gatehouse started/);
      let out = "";
      await eventually(
        async () => {
          const r = await runGatehouse(["status", "-c", file], dir);
          out = r.stdout + r.stderr;
          return / 127\.0\.0\.1:9 DOWN \(connect ECONNREFUSED/.test(out);
        },
        10_000,
        "the refusing backend shown down",
      );
      assert.match(out, new RegExp(`^  fronts 127\\.0\\.0\\.1:${frontPort}$`, "m"));
      assert.match(
        out,
        new RegExp(
          `^  intranet http on 127\\.0\\.0\\.1:${frontPort}: ${new URL(origin.url).host.replace(/[.]/g, "\\.")} up, 127\\.0\\.0\\.1:9 DOWN`,
          "m",
        ),
      );
    } finally {
      run.child.kill("SIGTERM");
      await run.exited;
      await origin.close();
    }
  });
});

describe("gatehouse check and start: fronts that could not work", () => {
  const cases: [what: string, front: string, expected: RegExp][] = [
    [
      "a tls.cert naming no pair in certs/",
      '    protocol: https\n    listen: ["127.0.0.1:0"]\n    tls: { cert: nope }\n',
      /^.*gatehouse\.yaml:\d+: fronts\[0\]\.tls\.cert: certs\/nope\.crt and certs\/nope\.key not found; put the certificate/m,
    ],
    [
      "a listen address the proxy has",
      '    protocol: http\n    listen: ["127.0.0.1:21568"]\n',
      /^.*gatehouse\.yaml:\d+: fronts\[0\]\.listen\[0\]: 127\.0\.0\.1:21568 and proxy\.listen\[0\] \(127\.0\.0\.1:21568\) would listen on the same address and port; give one of them another port$/m,
    ],
  ];
  for (const [what, front, expected] of cases) {
    it(`refuses ${what}, in check and in start, with the line and the key`, async () => {
      const { dir, file } = tempConfig(
        `log:\n  access:\n    file: ""\ndns:\n  listen: []\nadmin:\n  listen: ""\nproxy:\n  listen: ["127.0.0.1:21568"]\ncerts: ./certs\nfronts:\n  - name: intranet\n    hosts: [intranet.test]\n    backend: "http://127.0.0.1:9"\n${front}`,
      );
      const check = await runGatehouse(["check", "-c", file], dir);
      assert.equal(check.code, 1, check.stdout);
      assert.match(check.stdout, expected);
      const start = await runGatehouse(["start", "-c", file], dir);
      assert.equal(start.code, 1, start.stderr);
      assert.match(start.stderr, expected);
      assert.match(start.stderr, /gatehouse: not started; fix the problems above/);
    });
  }
});
