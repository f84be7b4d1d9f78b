// Every part of gatehouse that holds something open (sockets, watchers, timers, threads, files)
// goes through the same life, as Caddy's modules do, so a reload can never leave half-applied state:
//
//   next = build(config, previous)   nothing acquired yet
//   await next.prepare()             bind new addresses, compile, open files; running parts untouched
//   next.commit()                    only once every part prepared: start serving, take over what
//                                    was handed on from `previous`
//   await previous.dispose()         release what the old part still owns (not what it handed on)
//
// If any part fails to prepare, every new part is aborted (releasing what its prepare acquired) and
// the running generation goes on exactly as it was.

export interface Part {
  /** Shown in reload errors: "dns.listen", "proxy.listen", "admin.listen". */
  readonly name: string;
  /** Acquire what the part needs. Throws an Error whose message says what failed and what to do. */
  prepare(): Promise<void>;
  /** Start serving with what was prepared. Synchronous and never throws: the reload is decided. */
  commit(): void;
  /** Release what prepare acquired; the part it would have replaced is untouched. */
  abort(): Promise<void>;
  /** Release everything the part owns, and nothing it handed on to its successor. */
  dispose(): Promise<void>;
}

/** A part error with the part's name in front, so a failed reload says which key to look at. */
export class PrepareError extends Error {
  constructor(
    readonly part: string,
    cause: unknown,
  ) {
    super(`${part}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = "PrepareError";
  }
}

/**
 * Prepares every part; if one fails, aborts all of them (prepared or not, abort is safe on both)
 * and throws every failure at once.
 */
export async function prepareAll(parts: readonly Part[]): Promise<void> {
  const results = await Promise.allSettled(parts.map((p) => p.prepare()));
  const failures = results.flatMap((r, i) =>
    r.status === "rejected" ? [new PrepareError((parts[i] as Part).name, r.reason)] : [],
  );
  if (failures.length === 0) return;
  await Promise.allSettled(parts.map((p) => p.abort()));
  throw new AggregateError(failures, failures.map((f) => f.message).join("; "));
}

export function commitAll(parts: readonly Part[]): void {
  for (const p of parts) p.commit();
}

/** Disposes every part; a failure to release one is reported but never stops the others. */
export async function disposeAll(parts: readonly Part[], report: (part: string, err: unknown) => void): Promise<void> {
  const results = await Promise.allSettled(parts.map((p) => p.dispose()));
  results.forEach((r, i) => {
    if (r.status === "rejected") report((parts[i] as Part).name, r.reason);
  });
}
