import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";
import { issue, makeCa } from "./tls.js";

// The real servers an office runs behind gatehouse's FTP and mail fronts (Debian's vsftpd, Postfix
// and Dovecot), each started by a test with its own config in a temp dir, on 127.0.0.1 only, and
// stopped by its PID. Postfix delivers only to a local test domain and never relays or looks up
// anything outside.

export const MAIL_DOMAIN = "office.test";
export const MAIL_USER = "alice";
export const MAIL_PASSWORD = "s3cret-test-pw";
/** Unprivileged owner of the test mailboxes and FTP files (Dovecot refuses root). */
const NOBODY = { uid: 65534, gid: 65534 };

export interface Server {
  dir: string;
  pid: number;
  log(): string;
  stop(): Promise<void>;
}

/** Waits until something accepts on 127.0.0.1:port, or throws after `ms` with the server's log. */
export async function waitForPort(port: number, ms: number, log: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: "127.0.0.1", port });
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms; log:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stopProcess(child: ChildProcess, dir: string): () => Promise<void> {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
}

function readLog(file: string): () => string {
  return () => (existsSync(file) ? readFileSync(file, "utf8") : "");
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/** The backend servers' own certificate (self-signed CA; gatehouse does not verify backends). */
function backendPair(dir: string): { cert: string; key: string } {
  const pair = issue(makeCa("test backend CA"), ["localhost", "127.0.0.1"]);
  const cert = join(dir, "server.crt");
  const key = join(dir, "server.key");
  writeFileSync(cert, pair.cert);
  writeFileSync(key, pair.key, { mode: 0o600 });
  return { cert, key };
}

export interface Dovecot extends Server {
  ports: { imap: number; imapProxy: number; imaps: number; pop3: number; pop3Proxy: number; pop3s: number; auth: number };
  /** Maildir of the test user, where Postfix delivers too. */
  maildir: string;
}

/** Dovecot with IMAP and POP3 (plain, PROXY protocol, implicit TLS), a static test user, and a SASL port for Postfix. */
export async function startDovecot(mailRoot?: string): Promise<Dovecot> {
  const dir = tempDir("gatehouse-dovecot-");
  const mail = mailRoot ?? join(dir, "mail");
  mkdirSync(join(mail, MAIL_USER), { recursive: true });
  for (const d of [mail, join(mail, MAIL_USER)]) execFileSync("chown", [`${NOBODY.uid}:${NOBODY.gid}`, d]);
  const { cert, key } = backendPair(dir);
  const ports = {
    imap: await freePort(),
    imapProxy: await freePort(),
    imaps: await freePort(),
    pop3: await freePort(),
    pop3Proxy: await freePort(),
    pop3s: await freePort(),
    auth: await freePort(),
  };
  const logFile = join(dir, "dovecot.log");
  const conf = `
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${logFile}
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <${cert}
ssl_key = <${key}
auth_mechanisms = plain login
haproxy_trusted_networks = 127.0.0.0/8
# gatehouse (127.0.0.1) enforces TLS to clients itself; test clients come from 127.0.0.2.
login_trusted_networks = 127.0.0.1/32
mail_location = maildir:${mail}/%n
imap_idle_notify_interval = 2 mins
passdb {
  driver = static
  args = password=${MAIL_PASSWORD}
}
userdb {
  driver = static
  args = uid=${NOBODY.uid} gid=${NOBODY.gid} home=${mail}/%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${ports.imap}
  }
  inet_listener imap_proxy {
    address = 127.0.0.1
    port = ${ports.imapProxy}
    haproxy = yes
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${ports.imaps}
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = ${ports.pop3}
  }
  inet_listener pop3_proxy {
    address = 127.0.0.1
    port = ${ports.pop3Proxy}
    haproxy = yes
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = ${ports.pop3s}
    ssl = yes
  }
}
service auth {
  inet_listener {
    address = 127.0.0.1
    port = ${ports.auth}
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0600
  }
  unix_listener stats-writer {
    mode = 0600
  }
}
`;
  const confFile = join(dir, "dovecot.conf");
  writeFileSync(confFile, conf);
  const child = spawn("/usr/sbin/dovecot", ["-F", "-c", confFile], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const log = () => `${stderr}${readLog(logFile)()}`;
  try {
    await waitForPort(ports.imaps, 15_000, log);
    await waitForPort(ports.auth, 15_000, log);
  } catch (err) {
    await stopProcess(child, dir)();
    throw err;
  }
  return { dir, pid: child.pid ?? 0, ports, maildir: join(mail, MAIL_USER), log, stop: stopProcess(child, dir) };
}

export interface Postfix extends Server {
  /** smtpd with XCLIENT from gatehouse (127.0.0.1); submission with SASL through Dovecot, STARTTLS offered. */
  ports: { smtp: number; submission: number };
}

/**
 * Postfix on 127.0.0.1 that delivers every address of office.test into the test user's Maildir and
 * nothing else: no relayhost, no DNS, and any other destination goes to the error transport, so no
 * test can ever send mail out. Only 127.0.0.1 (gatehouse) is in mynetworks and may send XCLIENT;
 * test clients come from 127.0.0.2, so relaying for them is refused.
 */
export async function startPostfix(dovecot: Dovecot): Promise<Postfix> {
  const dir = tempDir("gatehouse-postfix-");
  for (const d of ["etc", "spool", "data"]) mkdirSync(join(dir, d));
  execFileSync("chown", ["postfix", join(dir, "data")]);
  const { cert, key } = backendPair(dir);
  const ports = { smtp: await freePort(), submission: await freePort() };
  const mailRoot = join(dovecot.maildir, "..");
  const logFile = join(dir, "maillog");
  const nowhere = "error:5.7.1 delivery outside the test domain is off";
  writeFileSync(
    join(dir, "etc", "main.cf"),
    `compatibility_level = 3.6
queue_directory = ${dir}/spool
data_directory = ${dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.${MAIL_DOMAIN}
mydomain = ${MAIL_DOMAIN}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
smtpd_authorized_xclient_hosts = 127.0.0.1
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
relayhost =
default_transport = ${nowhere}
relay_transport = ${nowhere}
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
virtual_mailbox_domains = ${MAIL_DOMAIN}
virtual_mailbox_base = ${mailRoot}
virtual_mailbox_maps = static:${MAIL_USER}/
virtual_uid_maps = static:${NOBODY.uid}
virtual_gid_maps = static:${NOBODY.gid}
virtual_minimum_uid = 100
alias_maps =
alias_database =
message_size_limit = 0
mailbox_size_limit = 0
virtual_mailbox_limit = 0
smtpd_tls_cert_file = ${cert}
smtpd_tls_key_file = ${key}
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:${dovecot.ports.auth}
maillog_file = ${logFile}
maillog_file_prefixes = ${tmpdir()}
`,
  );
  writeFileSync(
    join(dir, "etc", "master.cf"),
    `127.0.0.1:${ports.smtp} inet n - n - - smtpd
127.0.0.1:${ports.submission} inet n - n - - smtpd -o smtpd_sasl_auth_enable=yes -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
tlsmgr unix - - n 1000 1 tlsmgr
postlog unix-dgram n - n - 1 postlogd
`,
  );
  const etc = join(dir, "etc");
  // Creates the queue directories with their owners (and fails on a config error, said in the log).
  try {
    execFileSync("/usr/sbin/postfix", ["-c", etc, "check"], { stdio: "ignore" });
  } catch {
    throw new Error(`postfix check failed for ${etc}; log:\n${readLog(logFile)()}`);
  }
  const child = spawn("/usr/lib/postfix/sbin/master", ["-c", etc, "-d"], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const log = () => `${stderr}${readLog(logFile)()}`;
  try {
    await waitForPort(ports.smtp, 15_000, log);
    await waitForPort(ports.submission, 15_000, log);
  } catch (err) {
    await stopProcess(child, dir)();
    throw err;
  }
  return { dir, pid: child.pid ?? 0, ports, log, stop: stopProcess(child, dir) };
}

/** Waits until `check` passes, polling every 50 ms, or throws after `ms` with `describe()`. */
export async function eventually<T>(check: () => T | undefined, ms: number, describe: () => string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`not reached within ${ms} ms: ${describe()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs a client program (never blocking the event loop: gatehouse runs in this process). */
export function run(
  cmd: string,
  args: string[],
  opts: { input?: string | Buffer; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...opts.env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input);
  });
}

/** A Python 3 script run with `args` in sys.argv[1:]. */
export function python(script: string, args: (string | number)[], timeoutMs = 60_000) {
  return run("python3", ["-c", script, ...args.map(String)], { timeoutMs });
}

export interface Vsftpd extends Server {
  port: number;
  /** The anonymous FTP root (read-only); uploads go to its incoming/. */
  root: string;
}

/**
 * vsftpd with anonymous downloads from `root` and uploads to `root`/incoming, passive mode only on
 * 127.0.0.1, and explicit FTPS (AUTH TLS) offered with session reuse required for data connections,
 * as Debian ships it.
 */
export async function startVsftpd(files: Record<string, Buffer>): Promise<Vsftpd> {
  const dir = tempDir("gatehouse-vsftpd-");
  const root = join(dir, "ftp");
  const empty = join(dir, "empty");
  mkdirSync(join(root, "incoming"), { recursive: true });
  mkdirSync(empty);
  for (const [name, data] of Object.entries(files)) writeFileSync(join(root, name), data);
  execFileSync("chown", ["ftp:ftp", join(root, "incoming")]);
  const { cert, key } = backendPair(dir);
  const port = await freePort();
  const pasv = await freePort();
  const logFile = join(dir, "vsftpd.log");
  const confFile = join(dir, "vsftpd.conf");
  writeFileSync(
    confFile,
    `listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=${port}
background=NO
anonymous_enable=YES
no_anon_password=YES
anon_root=${root}
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_umask=022
local_enable=NO
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=${pasv}
pasv_max_port=${pasv + 20}
connect_from_port_20=NO
secure_chroot_dir=${empty}
vsftpd_log_file=${logFile}
log_ftp_protocol=YES
seccomp_sandbox=NO
isolate_network=NO
ssl_enable=YES
allow_anon_ssl=YES
force_local_data_ssl=NO
force_local_logins_ssl=NO
force_anon_data_ssl=NO
force_anon_logins_ssl=NO
ssl_ciphers=HIGH
rsa_cert_file=${cert}
rsa_private_key_file=${key}
`,
  );
  const child = spawn("/usr/sbin/vsftpd", [confFile], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const log = () => `${stderr}${readLog(logFile)()}`;
  try {
    await waitForPort(port, 15_000, log);
  } catch (err) {
    await stopProcess(child, dir)();
    throw err;
  }
  return { dir, pid: child.pid ?? 0, port, root, log, stop: stopProcess(child, dir) };
}
