import cluster from "node:cluster";
import { Gatehouse, type PreparedReload } from "../app.js";
import type { Config } from "../config/schema.js";
import { DNS_FILE_KINDS } from "../dns/local.js";
import type { AccessEvent, HealthEvent, QueryEvent, SessionEvent } from "../events/events.js";
import { allowFiles, blockFiles, firewallFile, interceptFiles } from "../rules/kinds.js";
import { type DiskIndexEntry, type LinkedDisk, setDiskLink } from "./disk-link.js";
import type { Call, FromWorker, ToWorker, WorkerStatus } from "./messages.js";
import { setPeerLink } from "./peer-cache.js";
import { MirroredRules } from "./rules-mirror.js";

/** How often a worker sends what happened to its supervisor: the dashboard is live within this. */
const BATCH_MS = 100;
/** A batch is sent early at this many items, so a burst never holds much in memory. */
const BATCH_ITEMS = 2000;
/** ... and at this many bytes of responses for the other workers. */
const BATCH_BYTES = 4 * 1024 * 1024;
/** A stored response waits at most this long for others to go with it to the other workers. */
const PEER_MS = 2;

/** A worker serves the proxy, DNS and fronts, never the admin: the supervisor's config for it. */
export function workerConfig(config: Config): Config {
  return { ...config, admin: { ...config.admin, listen: "" } };
}

/**
 * One worker process: waits for its supervisor's first message, serves what it says with the rules
 * it hands over, takes changes in two steps (prepare, then commit or abort), and stops when told.
 * Signals sent to the whole process group (a terminal's Ctrl-C, systemd's stop) stop it the same
 * way; reload, log reopening and worker replacement are the supervisor's to coordinate.
 */
export async function runWorker(): Promise<number> {
  const send = (m: FromWorker) => {
    if (process.connected) process.send?.(m);
  };
  const outbox = new Outbox(send);
  const disks = new Set<LinkedDisk>();
  const caches = new Set<{ adopt(bytes: Buffer): void }>();
  setPeerLink({
    share: (bytes) => outbox.cached(bytes),
    attach: (cache) => {
      caches.add(cache);
      return () => caches.delete(cache);
    },
  });
  setDiskLink({
    role: "worker",
    stored: (key, entry) => outbox.stored(key, entry),
    touched: (key) => outbox.touched(key),
    evicted: () => {},
    attach: (disk) => {
      disks.add(disk);
      return () => disks.delete(disk);
    },
  });

  let app: Gatehouse | undefined;
  let rules: MirroredRules | undefined;
  const prepared = new Map<number, { reload?: PreparedReload }>();
  let stopping: Promise<number> | undefined;
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  const stop = () => {
    stopping ??= (app ? app.stop() : Promise.resolve()).then(
      () => 0,
      () => 1,
    );
    stopping.then(finish);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  for (const sig of ["SIGHUP", "SIGUSR1", "SIGUSR2"] as const) process.on(sig, () => {});
  // The supervisor is gone (killed): nobody can coordinate this worker any more.
  process.on("disconnect", stop);

  const onMessage = async (m: ToWorker): Promise<void> => {
    switch (m.t) {
      case "init": {
        try {
          const mirror = new MirroredRules([blockFiles, allowFiles, firewallFile, interceptFiles, ...DNS_FILE_KINDS], () => [
            app?.config.rules ?? m.config.rules,
            app?.config.listsDir ?? m.config.listsDir,
          ]);
          mirror.prepare(m.rules);
          mirror.commit();
          rules = mirror;
          app = await Gatehouse.start({
            config: workerConfig(m.config),
            configFile: m.file,
            role: { kind: "worker", rules: mirror },
            logFields: { worker: cluster.worker?.id },
          });
          if (m.relay) outbox.relay(app);
          outbox.start(() => statusOf(app as Gatehouse));
          send({
            t: "ready",
            addresses: { proxy: app.proxyAddresses, dns: app.dnsAddresses, fronts: app.frontAddresses },
            status: statusOf(app),
          });
        } catch (err) {
          send({ t: "failed", error: (err as Error).message });
          finish(1);
        }
        return;
      }
      case "prepare": {
        try {
          if (m.rules) rules?.prepare(m.rules);
          const step: { reload?: PreparedReload } = {};
          if (m.config && app) {
            step.reload = await app.prepareReload({ config: workerConfig(m.config.config), file: m.config.file });
            if (!step.reload) throw new Error("the configuration did not prepare in this worker (its log says why)");
          }
          prepared.set(m.id, step);
          send({ t: "prepared", id: m.id });
        } catch (err) {
          rules?.abort();
          send({ t: "prepared", id: m.id, error: (err as Error).message });
        }
        return;
      }
      case "commit": {
        const step = prepared.get(m.id);
        prepared.delete(m.id);
        rules?.commit();
        if (step?.reload) await app?.commitReload(step.reload);
        return;
      }
      case "abort": {
        const step = prepared.get(m.id);
        prepared.delete(m.id);
        rules?.abort();
        if (step?.reload) await app?.abortReload(step.reload);
        return;
      }
      case "call":
        if (!app) return;
        try {
          send({ t: "result", id: m.id, value: await answer(app, m.call) });
        } catch (err) {
          send({ t: "result", id: m.id, error: (err as Error).message });
        }
        return;
      case "disk-learn":
        for (const d of disks) for (const [key, entry] of m.entries) d.learn(key, entry);
        return;
      case "cache-adopt":
        for (const bytes of m.entries) {
          const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
          for (const c of caches) c.adopt(buf);
        }
        return;
      case "disk-forget":
        for (const d of disks) d.forget(m.keys);
        return;
      case "stop":
        stop();
        return;
    }
  };
  // One message at a time, in order: a commit never overtakes the prepare before it.
  let queue = Promise.resolve();
  process.on("message", (m: ToWorker) => {
    queue = queue
      .then(() => onMessage(m))
      .catch((err: unknown) => {
        process.stderr.write(`gatehouse worker: ${(err as Error).message}\n`);
      });
  });
  send({ t: "hello" });
  const code = await done;
  outbox.stop();
  return code;
}

function statusOf(app: Gatehouse): WorkerStatus {
  return { cache: app.cache.stats(), fronts: app.frontHealth, tls: app.tlsStatus };
}

async function answer(app: Gatehouse, call: Call): Promise<unknown> {
  switch (call.op) {
    case "explain":
      return app.explain(call.target, call.client);
    case "purge":
      return app.cache.purge(call.url);
    case "purgePrefix":
      return app.cache.purgePrefix(call.prefix);
    case "reopenLogs":
      return app.reopenLogs();
  }
}

/**
 * What a worker tells its supervisor, sent in batches: one IPC message per interval instead of
 * one per request or query (the events are what the dashboard and metrics count).
 */
class Outbox {
  private access: AccessEvent[] = [];
  private query: QueryEvent[] = [];
  private session: SessionEvent[] = [];
  private health: HealthEvent[] = [];
  private storedEntries: [string, DiskIndexEntry][] = [];
  private touchedKeys = new Set<string>();
  private cachedEntries: Buffer[] = [];
  private cachedBytes = 0;
  private soon: NodeJS.Timeout | undefined;
  private items = 0;
  private timer: NodeJS.Timeout | undefined;
  private status: () => WorkerStatus | undefined = () => undefined;

  constructor(private readonly send: (m: FromWorker) => void) {}

  relay(app: Gatehouse): void {
    app.events.access.subscribe((e) => this.add(this.access, e));
    app.events.query.subscribe((e) => this.add(this.query, e));
    app.events.session.subscribe((e) => this.add(this.session, e));
    app.events.health.subscribe((e) => this.add(this.health, e));
  }

  start(status: () => WorkerStatus): void {
    this.status = status;
    this.timer = setInterval(() => this.flush(), BATCH_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.flush();
  }

  stored(key: string, entry: DiskIndexEntry): void {
    this.add(this.storedEntries, [key, entry]);
  }

  cached(bytes: Buffer): void {
    this.cachedEntries.push(bytes);
    this.cachedBytes += bytes.length;
    if (this.cachedBytes >= BATCH_BYTES) this.flush();
    // Soon, not at the next interval: the other workers should hit what this one just fetched.
    else this.soon ??= setTimeout(() => this.flush(), PEER_MS);
  }

  touched(key: string): void {
    if (this.touchedKeys.size < BATCH_ITEMS) this.touchedKeys.add(key);
  }

  private add<T>(list: T[], item: T): void {
    list.push(item);
    if (++this.items >= BATCH_ITEMS) this.flush();
  }

  private flush(): void {
    const status = this.status();
    if (!status) return;
    this.send({
      t: "batch",
      access: this.access,
      query: this.query,
      session: this.session,
      health: this.health,
      stored: this.storedEntries,
      touched: [...this.touchedKeys],
      cached: this.cachedEntries,
      status,
    });
    this.access = [];
    this.query = [];
    this.session = [];
    this.health = [];
    this.storedEntries = [];
    this.touchedKeys.clear();
    this.cachedEntries = [];
    this.cachedBytes = 0;
    clearTimeout(this.soon);
    this.soon = undefined;
    this.items = 0;
  }
}
