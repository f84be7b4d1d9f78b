/** Failed logins are counted per client over this window. */
export const LOGIN_WINDOW_MS = 15 * 60_000;
/** Clients tracked at once; a flood of addresses past it drops the oldest windows, never grows memory. */
const MAX_CLIENTS = 10_000;

interface Window {
  start: number;
  failures: number;
}

/**
 * Failed password checks per client address in a fixed window (as fail2ban counts them). Over the
 * limit a client is told to wait until its window ends, before its password is even looked at, so
 * guessing costs the guesser time and costs us no scrypt work.
 */
export class LoginLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly limit: () => number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds the client must wait before another attempt, 0 if it may try now. */
  wait(client: string): number {
    const w = this.current(client);
    return w && w.failures >= this.limit() ? w.start + LOGIN_WINDOW_MS - this.now() : 0;
  }

  failed(client: string): void {
    let w = this.current(client);
    if (!w) {
      if (this.windows.size >= MAX_CLIENTS) {
        const first = this.windows.keys().next();
        if (!first.done) this.windows.delete(first.value);
      }
      w = { start: this.now(), failures: 0 };
      this.windows.set(client, w);
    }
    w.failures++;
  }

  succeeded(client: string): void {
    this.windows.delete(client);
  }

  private current(client: string): Window | undefined {
    const w = this.windows.get(client);
    if (w && this.now() - w.start >= LOGIN_WINDOW_MS) {
      this.windows.delete(client);
      return undefined;
    }
    return w;
  }
}
