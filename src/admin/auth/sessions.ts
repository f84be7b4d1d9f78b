import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** One browser's login: the cookie names it, the CSRF token must come back on every change. */
export interface Session {
  readonly id: string;
  readonly csrf: string;
  readonly client: string;
  lastUsed: number;
}

/** At most this many sessions at once; a new login past it pushes out the least recently used. */
const MAX_SESSIONS = 64;

export const COOKIE = "gatehouse_session";

/**
 * Logins held in memory (a restart logs everyone out, which is what an admin expects of it). A
 * session expires `idleMs` after its last use; the map is bounded, so nobody can grow it by
 * logging in over and over.
 */
export class Sessions {
  private readonly byId = new Map<string, Session>();
  /** Sessions belong to the password they were opened with: a new admin.password ends them all. */
  private passwordKey = "";

  constructor(private readonly now: () => number = Date.now) {}

  create(client: string): Session {
    const s: Session = { id: token(), csrf: token(), client, lastUsed: this.now() };
    if (this.byId.size >= MAX_SESSIONS) {
      const oldest = [...this.byId.values()].sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (oldest) this.byId.delete(oldest.id);
    }
    this.byId.set(s.id, s);
    return s;
  }

  /** The live session named by the cookie, its expiry pushed on; undefined if none or expired. */
  use(id: string | undefined, idleMs: number): Session | undefined {
    if (!id) return undefined;
    const s = this.byId.get(id);
    if (!s) return undefined;
    const now = this.now();
    if (now - s.lastUsed > idleMs) {
      this.byId.delete(id);
      return undefined;
    }
    s.lastUsed = now;
    return s;
  }

  end(id: string): void {
    this.byId.delete(id);
  }

  /** Ends every session when the password hash changed since the last call. */
  bindTo(passwordHash: string): void {
    const key = createHash("sha256").update(passwordHash).digest("hex");
    if (key === this.passwordKey) return;
    this.passwordKey = key;
    this.byId.clear();
  }

  get size(): number {
    return this.byId.size;
  }
}

export function token(): string {
  return randomBytes(32).toString("base64url");
}

/** Compares two secrets without leaking where they differ. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The value of one cookie from a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
