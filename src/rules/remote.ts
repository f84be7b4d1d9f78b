import { createHash } from "node:crypto";
import { mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Agent, interceptors, request } from "undici";
import type { Config } from "../config/schema.js";
import { Tasks } from "../lifecycle/tasks.js";
import type { Logger } from "../log/logger.js";
import { compileInWorker } from "./kinds.js";

type RemoteList = Config["lists"][number];

const MAX_BYTES = 256 * 1024 * 1024;

/** Where a remote list's last good copy lives: <listsDir>/<type>/<host>-<hash>.txt. */
export function remoteListPath(dir: string, list: RemoteList): string {
  const url = new URL(list.url);
  const hash = createHash("sha256").update(list.url).digest("hex").slice(0, 10);
  return join(dir, list.type, `${url.hostname.replace(/[^a-z0-9.-]/gi, "_")}-${hash}.txt`);
}

/**
 * Downloads the configured lists on their schedules into listsDir, where the rules store reads them
 * like local files. A failed or malformed download is logged and the last good copy stays. Each
 * download is checked by compiling it on a worker thread (a million-line list takes about a second
 * to compile, which must not stall the proxy and the DNS).
 */
export class RemoteLists {
  private timers: NodeJS.Timeout[] = [];
  private readonly tasks: Tasks;
  private readonly stopping = new AbortController();
  private readonly dispatcher = new Agent({ headersTimeout: 30_000, bodyTimeout: 60_000, connect: { timeout: 10_000 } }).compose(
    interceptors.redirect({ maxRedirections: 5 }),
  );

  constructor(
    private readonly lists: readonly RemoteList[],
    private readonly dir: string,
    private readonly log: Logger,
  ) {
    this.tasks = new Tasks(log, "remote lists");
  }

  start(onUpdated: () => void): void {
    for (const list of this.lists) {
      const run = () =>
        this.tasks.run(`download ${list.url}`, async () => {
          if (await this.fetch(list)) onUpdated();
        });
      run();
      const t = setInterval(run, list.refresh);
      t.unref();
      this.timers.push(t);
    }
  }

  /** Downloads one list; true if a new good copy was stored. */
  async fetch(list: RemoteList): Promise<boolean> {
    const path = remoteListPath(this.dir, list);
    const metaPath = `${path}.meta`;
    let meta: { etag?: string; lastModified?: string } = {};
    try {
      meta = JSON.parse(await readFile(metaPath, "utf8")) as typeof meta;
    } catch {
      // First download.
    }
    try {
      const headers: Record<string, string> = { "user-agent": "gatehouse list updater" };
      if (meta.etag) headers["if-none-match"] = meta.etag;
      if (meta.lastModified) headers["if-modified-since"] = meta.lastModified;
      const res = await request(list.url, { dispatcher: this.dispatcher, headers, signal: this.stopping.signal });
      if (res.statusCode === 304) {
        await res.body.dump();
        return false;
      }
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`HTTP ${res.statusCode}`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > MAX_BYTES) throw new Error(`larger than ${MAX_BYTES / 1024 / 1024} MiB`);
        chunks.push(chunk as Buffer);
      }
      const text = Buffer.concat(chunks).toString("utf8");
      const { value: compiled, diagnostics } = await compileInWorker(list.url, list.type, text);
      const usable = compiled.stats.entries + compiled.stats.exceptions;
      if (usable === 0) throw new Error("no usable entries (an HTML error page, or an empty file?)");
      if (diagnostics.length > usable) throw new Error(`malformed: ${diagnostics.length} bad lines, ${usable} usable`);
      if (this.stopping.signal.aborted) return false;
      await mkdir(join(this.dir, list.type), { recursive: true });
      const tmp = `${path}.${process.pid}.tmp`;
      try {
        await writeFile(tmp, text);
        await rename(tmp, path);
      } catch (err) {
        await unlink(tmp).catch(() => {});
        throw err;
      }
      await writeFile(metaPath, JSON.stringify({ etag: res.headers.etag, lastModified: res.headers["last-modified"] }));
      this.log.info({ url: list.url, entries: usable, file: path }, `remote list ${list.url} updated (${usable} entries)`);
      return true;
    } catch (err) {
      if (this.stopping.signal.aborted) return false;
      this.log.warn(
        { url: list.url, err: (err as Error).message },
        `remote list ${list.url} not updated (${(err as Error).message}); the last good copy stays in force`,
      );
      return false;
    }
  }

  settle(): Promise<void> {
    return this.tasks.settle();
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.stopping.abort();
    await this.tasks.settle();
    await this.dispatcher.close();
  }
}
