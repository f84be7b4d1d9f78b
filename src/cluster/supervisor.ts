import cluster, { type Worker } from "node:cluster";
import { fmtAddress, Gatehouse } from "../app.js";
import { type DiagnosticsError, formatDiagnostic } from "../config/diagnostic.js";
import { type LoadedConfig, loadConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { within } from "../lifecycle/within.js";
import { createLogger, type Logger } from "../log/logger.js";
import { Rules } from "../rules/rules.js";
import type { SnapshotEntry } from "../rules/store.js";
import { type LinkedDisk, setDiskLink } from "./disk-link.js";
import type { Addresses, Call, FromWorker, ToWorker, WorkerStatus } from "./messages.js";
import type { RulesDelta } from "./rules-mirror.js";
import { ClusterView } from "./view.js";

/** A worker has this long to bind its listeners and say it is ready. */
const READY_TIMEOUT_MS = 60_000;
/** A worker has this long to prepare a change (a big list arrives compiled; a config binds sockets). */
const PREPARE_TIMEOUT_MS = 60_000;
/** Crashes counted over this window decide the backoff before the next replacement. */
const CRASH_WINDOW_MS = 60_000;
const BACKOFF_MAX_MS = 30_000;
/** Removals the owner of the disk tier announces at once. */
const FORGET_BATCH_MS = 100;

interface Handle {
  worker: Worker;
  /** Set when the worker said it is ready; until then it takes no part in changes. */
  addresses: Addresses | undefined;
  status: WorkerStatus | undefined;
  summary: { id: number; pid: number; since: number };
  /** Told to stop (shutdown, replacement): its exit is expected. */
  retiring: boolean;
  exited: Promise<void>;
  waiting: Map<number, (reply: { value?: unknown; error?: string; gone?: boolean }) => void>;
}

/** `workers` as configured: auto is one per core. */
export function workerCount(config: Config, cores: number): number {
  return config.workers === "auto" ? Math.max(1, cores) : config.workers;
}

/** The supervisor serves only the admin: its own generation binds nothing else. */
function supervisorConfig(config: Config): Config {
  return { ...config, proxy: { ...config.proxy, listen: [] }, dns: { ...config.dns, listen: [] }, fronts: [] };
}

/**
 * The supervisor of `workers` processes (node:cluster). It owns the config, the rules files and the
 * remote lists (compiled once here and handed to every worker), the admin listener (the dashboard
 * counts what the workers report), and the disk cache's index and eviction. It serves no traffic,
 * so no request can take it down. Changes reach every worker in two steps, prepare then commit, so
 * no worker runs rules or a config the others do not. A worker that dies is replaced (with a
 * backoff when they crash in a loop); SIGUSR2 replaces them one at a time.
 */
export class Supervisor {
  private inner!: Gatehouse;
  private readonly handles = new Map<number, Handle>();
  private readonly log: Logger;
  private readonly view: ClusterView<Handle>;
  /** Rules changes, reloads, replacements: one at a time, so a new worker gets what the others hold. */
  private changes: Promise<unknown> = Promise.resolve();
  private nextId = 0;
  /** The rules files every worker holds, as handed over: what a new worker starts with. */
  private committed = new Map<string, SnapshotEntry>();
  private crashes: number[] = [];
  /** Replacements waiting out their backoff. */
  private readonly respawns = new Set<NodeJS.Timeout>();
  private stopping = false;
  private readonly ownerDisks = new Set<LinkedDisk>();
  private forgets: string[] = [];
  private forgetTimer: NodeJS.Timeout | undefined;

  private constructor(
    private loaded: LoadedConfig,
    private readonly configFile: string | undefined,
    private readonly count: number,
  ) {
    this.log = createLogger(loaded.config.log.level, { supervisor: true });
    this.view = new ClusterView({
      config: () => this.loaded.config,
      inner: () => this.inner,
      workers: () => [...this.handles.values()].filter((h) => h.addresses !== undefined && !h.retiring),
      callAll: (call) => this.callAll(call),
      settled: () => this.settled(),
    });
  }

  static async start(loaded: LoadedConfig, configFile: string | undefined, count: number): Promise<Supervisor> {
    const s = new Supervisor(loaded, configFile, count);
    await s.begin();
    return s;
  }

  private async begin(): Promise<void> {
    setDiskLink({
      role: "owner",
      stored: () => {},
      touched: () => {},
      evicted: (key) => this.forget(key),
      attach: (disk) => {
        this.ownerDisks.add(disk);
        return () => this.ownerDisks.delete(disk);
      },
    });
    // Each worker accepts on the shared listening sockets itself, unless NODE_CLUSTER_SCHED_POLICY
    // says otherwise (the tests deal connections round-robin to reach every worker). Measured here
    // (2 cores, 2 workers, cache hits through the proxy): on 50 keep-alive connections both ways
    // serve alike (40.7k vs 39.1k rps), but with a new connection per request the supervisor's
    // accept-and-hand-over costs 2.3x (4.5k vs 10.6k rps), and browsers and tunnels open many.
    if (!process.env.NODE_CLUSTER_SCHED_POLICY) cluster.schedulingPolicy = cluster.SCHED_NONE;
    // Compiled lists cross as typed arrays; JSON would turn them into huge objects.
    cluster.setupPrimary({ serialization: "advanced" });
    this.inner = await Gatehouse.start({
      config: supervisorConfig(this.loaded.config),
      configFile: this.configFile,
      role: {
        kind: "supervisor",
        admin: (self) => {
          this.inner = self;
          return this.view;
        },
      },
      logFields: { supervisor: true },
    });
    this.committed = new Map(this.rulesNow().entries.map((e) => [e.abs, e]));
    this.inner.events.rules.subscribe(() => {
      this.queue(() => this.shareRules());
    });
    cluster.on("exit", (worker, code, signal) => this.exited(worker, code, signal));
    // Queued first: a rules change seen meanwhile reaches the workers after they serve.
    const starting = Promise.allSettled(Array.from({ length: this.count }, () => this.spawn()));
    this.changes = starting;
    const started = await starting;
    const failed = started.find((r) => r.status === "rejected");
    if (failed) {
      await this.stop();
      throw (failed as PromiseRejectedResult).reason;
    }
    const first = this.view.first();
    this.log.info(
      {
        config: this.loaded.file ?? "(embedded defaults)",
        workers: this.count,
        pids: this.pids,
        proxy: first?.addresses?.proxy.map(fmtAddress) ?? [],
        fronts: first?.addresses?.fronts.map(fmtAddress) ?? [],
        dns: first?.addresses?.dns.map((a) => fmtAddress({ ...a, family: a.address.includes(":") ? "IPv6" : "IPv4" })) ?? [],
        admin: this.inner.adminAddress ? fmtAddress(this.inner.adminAddress) : "off",
        rules: Object.fromEntries(this.inner.rules.summary().map((f) => [f.file, f.entries])),
      },
      "gatehouse started",
    );
  }

  /** The workers serving now, for the log lines that say who serves. */
  private get pids(): number[] {
    return [...this.handles.values()].filter((h) => !h.retiring).map((h) => h.worker.process.pid ?? 0);
  }

  private queue<T>(job: () => Promise<T>): Promise<T | undefined> {
    const run = this.changes.then(job).catch((err: unknown) => {
      this.log.error({ err: (err as Error).message }, "a change to the workers failed");
      return undefined;
    });
    this.changes = run;
    return run;
  }

  /** Resolves when every change seen so far has reached the workers (the admin's rules edits wait for it). */
  private async settled(): Promise<void> {
    for (let seen: Promise<unknown> | undefined; seen !== this.changes; ) {
      seen = this.changes;
      await seen;
    }
  }

  private rulesNow(known?: ReadonlyMap<string, string>): { entries: SnapshotEntry[]; stamps: Map<string, string> } {
    const rules = this.inner.rules;
    return rules instanceof Rules ? rules.snapshot(known) : { entries: [], stamps: new Map() };
  }

  private committedDelta(): RulesDelta {
    return { entries: [...this.committed.values()], stamps: [...this.committed].map(([abs, e]) => [abs, e.stamp]) };
  }

  /** Starts a worker with the config and rules every other worker holds; resolves when it serves. */
  private spawn(): Promise<Handle> {
    const worker = cluster.fork();
    let exitedResolve: () => void = () => {};
    const handle: Handle = {
      worker,
      addresses: undefined,
      status: undefined,
      summary: { id: worker.id, pid: worker.process.pid ?? 0, since: 0 },
      retiring: false,
      exited: new Promise<void>((resolve) => {
        exitedResolve = resolve;
      }),
      waiting: new Map(),
    };
    worker.once("exit", () => {
      exitedResolve();
      for (const reply of handle.waiting.values()) reply({ gone: true });
      handle.waiting.clear();
    });
    this.handles.set(worker.id, handle);
    worker.on("message", (m: FromWorker) => this.onMessage(handle, m));
    worker.on("error", (err) => this.log.warn({ worker: worker.id, err: err.message }, "worker channel error"));
    return new Promise<Handle>((resolve, reject) => {
      const timer = setTimeout(() => {
        fail(new Error(`worker ${worker.id} did not start within ${READY_TIMEOUT_MS / 1000} s`));
        worker.kill("SIGKILL");
      }, READY_TIMEOUT_MS);
      const fail = (err: Error) => {
        clearTimeout(timer);
        worker.off("message", ready);
        worker.off("exit", early);
        // Its exit is this failure, already reported to whoever started it.
        handle.retiring = true;
        if (!worker.isDead()) worker.kill("SIGKILL");
        this.handles.delete(worker.id);
        reject(err);
      };
      const early = (code: number, signal: string) =>
        fail(new Error(`worker ${worker.id} exited while starting (${signal ?? code})`));
      const ready = (m: FromWorker) => {
        if (m.t === "ready") {
          clearTimeout(timer);
          worker.off("message", ready);
          worker.off("exit", early);
          resolve(handle);
        } else if (m.t === "failed") fail(new Error(m.error));
      };
      worker.on("message", ready);
      worker.once("exit", early);
      const hello = (m: FromWorker) => {
        if (m.t !== "hello") return;
        worker.off("message", hello);
        this.send(handle, {
          t: "init",
          config: this.loaded.config,
          file: this.loaded.file,
          rules: this.committedDelta(),
          relay: this.loaded.config.admin.listen !== "",
        });
      };
      worker.on("message", hello);
    });
  }

  private send(h: Handle, m: ToWorker): void {
    if (h.worker.isConnected()) h.worker.send(m);
  }

  private onMessage(h: Handle, m: FromWorker): void {
    switch (m.t) {
      case "ready":
        h.summary.since = Date.now();
        h.addresses = m.addresses;
        h.status = m.status;
        return;
      case "prepared":
        h.waiting.get(m.id)?.({ error: m.error });
        h.waiting.delete(m.id);
        return;
      case "result":
        h.waiting.get(m.id)?.({ value: m.value, error: m.error });
        h.waiting.delete(m.id);
        return;
      case "batch": {
        h.status = m.status;
        const events = this.inner.events;
        for (const e of m.access) events.access.emit(e);
        for (const e of m.query) events.query.emit(e);
        for (const e of m.session) events.session.emit(e);
        for (const e of m.health) events.health.emit(e);
        if (m.stored.length > 0) {
          for (const d of this.ownerDisks) for (const [key, entry] of m.stored) d.learn(key, entry);
          for (const other of this.handles.values())
            if (other !== h && other.addresses) this.send(other, { t: "disk-learn", entries: m.stored });
        }
        for (const d of this.ownerDisks) for (const key of m.touched) d.touch(key);
        if (m.cached.length > 0)
          for (const other of this.handles.values())
            if (other !== h && other.addresses) this.send(other, { t: "cache-adopt", entries: m.cached });
        return;
      }
      case "failed":
      case "hello":
        return;
    }
  }

  private ask(
    h: Handle,
    m: ToWorker & { id: number },
    timeoutMs: number,
  ): Promise<{ value?: unknown; error?: string; gone?: boolean }> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        h.waiting.delete(m.id);
        resolve({ error: `worker ${h.worker.id} did not answer within ${timeoutMs / 1000} s` });
      }, timeoutMs);
      h.waiting.set(m.id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.send(h, m);
    });
  }

  private async callAll(call: Call): Promise<unknown[]> {
    const live = this.view.live();
    const id = ++this.nextId;
    const replies = await Promise.all(live.map((h) => this.ask(h, { t: "call", id, call }, 30_000)));
    const failed = replies.find((r) => r.error);
    if (failed) throw new Error(failed.error);
    return replies.filter((r) => !r.gone).map((r) => r.value);
  }

  /**
   * One change, every worker or none: each prepares it beside what it serves and says so; only
   * when all have does each commit. A worker that dies meanwhile is out of it (its replacement
   * starts with what the others hold once this is decided).
   */
  private async transaction(change: Omit<Extract<ToWorker, { t: "prepare" }>, "t" | "id">, what: string): Promise<boolean> {
    const id = ++this.nextId;
    const live = this.view.live();
    const replies = await Promise.all(live.map((h) => this.ask(h, { t: "prepare", id, ...change }, PREPARE_TIMEOUT_MS)));
    const failures = replies.flatMap((r, i) => (r.error ? [`worker ${live[i]?.worker.id}: ${r.error}`] : []));
    for (const h of live) this.send(h, { t: failures.length > 0 ? "abort" : "commit", id });
    if (failures.length > 0) {
      this.log.error(
        { problems: failures },
        `${what} not applied: a worker could not prepare it; every worker keeps what it had`,
      );
      return false;
    }
    return true;
  }

  private async shareRules(): Promise<void> {
    const known = new Map([...this.committed].map(([abs, e]) => [abs, e.stamp]));
    const { entries, stamps } = this.rulesNow(known);
    if (entries.length === 0 && stamps.size === known.size && [...stamps.keys()].every((k) => known.has(k))) return;
    const ok = await this.transaction({ rules: { entries, stamps: [...stamps] } }, "rules change");
    if (!ok) return;
    const changed = new Map(entries.map((e) => [e.abs, e]));
    const next = new Map<string, SnapshotEntry>();
    for (const [abs] of stamps) {
      const entry = changed.get(abs) ?? this.committed.get(abs);
      if (entry) next.set(abs, entry);
    }
    this.committed = next;
  }

  /** SIGHUP: the config is read and checked once here; the supervisor and every worker take it, or none does. */
  reload(): Promise<unknown> {
    return this.queue(async () => {
      let loaded: LoadedConfig;
      try {
        loaded = loadConfig(this.configFile);
      } catch (err) {
        const problems = (err as DiagnosticsError).diagnostics?.map(formatDiagnostic) ?? [(err as Error).message];
        this.log.error({ problems }, "reload failed; the previous configuration stays in force");
        return;
      }
      const mine = await this.inner.prepareReload({ config: supervisorConfig(loaded.config), file: loaded.file });
      if (!mine) return;
      const ok = await this.transaction({ config: { config: loaded.config, file: loaded.file } }, "configuration");
      if (!ok) {
        await this.inner.abortReload(mine);
        return;
      }
      if (workerCount(loaded.config, this.count) !== workerCount(this.loaded.config, this.count))
        this.log.warn("workers: a new number of workers applies when gatehouse is restarted");
      this.loaded = loaded;
      await this.inner.commitReload(mine);
      // Files read again on reload, as a single process does.
      this.inner.rules.rescan();
    });
  }

  /** SIGUSR1: every worker reopens its log files (they append to them themselves); said once all have. */
  reopenLogs(): void {
    this.callAll({ op: "reopenLogs" }).then(
      () => this.log.info("log files reopened"),
      (err: unknown) => this.log.error({ err: (err as Error).message }, "log files not reopened by every worker"),
    );
  }

  /**
   * SIGUSR2: each worker in turn is replaced by a new one (new code after an upgrade), which serves
   * before the old one stops taking work and finishes what it has.
   */
  replaceWorkers(): Promise<unknown> {
    return this.queue(async () => {
      const old = this.view.live();
      this.log.info({ workers: old.length }, "replacing the workers one at a time");
      for (const h of old) {
        try {
          await this.spawn();
        } catch (err) {
          this.log.error(
            { err: (err as Error).message },
            "a new worker did not start; the running workers stay (fix the problem and send SIGUSR2 again)",
          );
          return;
        }
        await this.retire(h);
      }
      this.log.info({ pids: this.pids }, "workers replaced");
    });
  }

  private async retire(h: Handle): Promise<void> {
    h.retiring = true;
    this.send(h, { t: "stop" });
    if (!(await within(h.exited, this.loaded.config.shutdownGrace + 5000))) {
      this.log.warn({ worker: h.worker.id }, "worker did not stop within shutdownGrace; killed");
      h.worker.kill("SIGKILL");
    }
    this.handles.delete(h.worker.id);
  }

  private exited(worker: Worker, code: number | null, signal: string | null): void {
    const h = this.handles.get(worker.id);
    if (!h || h.retiring || this.stopping) return;
    this.handles.delete(worker.id);
    this.replaceLater(signal ? `worker killed by ${signal}` : `worker exited with code ${code}`, worker);
  }

  /** A worker is gone or did not start: another one, at once the first time, then backing off. */
  private replaceLater(how: string, worker?: Worker): void {
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < CRASH_WINDOW_MS), now];
    const n = this.crashes.length;
    const delay = n <= 1 ? 0 : Math.min(BACKOFF_MAX_MS, 250 * 2 ** (n - 2));
    const who = { worker: worker?.id, pid: worker?.process.pid, nextInMs: delay };
    if (n >= 5)
      this.log.error(
        { ...who, crashes: n },
        `${how}; workers are crashing in a loop (${n} in the last minute): the program log above says why`,
      );
    else this.log.error(who, `${how}; the other workers go on serving and a new one is started`);
    const timer = setTimeout(() => {
      this.respawns.delete(timer);
      if (this.stopping) return;
      this.queue(() => this.spawn()).then((started) => {
        if (started) this.log.info({ worker: started.worker.id, pid: started.worker.process.pid }, "worker replaced");
        else if (!this.stopping) this.replaceLater("a new worker did not start");
      });
    }, delay);
    this.respawns.add(timer);
  }

  /** The owner of the disk tier removed entries for room: the workers forget them, in batches. */
  private forget(key: string): void {
    this.forgets.push(key);
    this.forgetTimer ??= setTimeout(() => {
      this.forgetTimer = undefined;
      const keys = this.forgets;
      this.forgets = [];
      for (const h of this.handles.values()) if (h.addresses) this.send(h, { t: "disk-forget", keys });
    }, FORGET_BATCH_MS);
  }

  /** SIGTERM: every worker stops taking work and finishes within shutdownGrace; then the admin stops. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of this.respawns) clearTimeout(t);
    await Promise.all([...this.handles.values()].map((h) => this.retire(h)));
    clearTimeout(this.forgetTimer);
    await this.inner?.stop();
  }
}
