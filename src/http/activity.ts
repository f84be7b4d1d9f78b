import type { Server } from "node:http";
import type { Socket } from "node:net";

/**
 * Requests and tunnels in progress across every HTTP listener and every generation of the config,
 * so that a stop can wait for them (up to shutdownGrace) and then close exactly what is left.
 */
export class Activity {
  private active = 0;
  private waiters: (() => void)[] = [];
  /**
   * Client sockets of open tunnels and front sessions (node's server no longer tracks them after
   * CONNECT), each with how to end it when the grace is over: a front's session says goodbye in its
   * protocol's words, anything else is cut.
   */
  private readonly tunnels = new Map<Socket, (() => void) | undefined>();
  /** Every server still open, including ones a reload retired that are finishing their requests. */
  readonly servers = new Set<Server>();
  /** Connections of servers that cannot cut them themselves (node:http2's). */
  private readonly connections = new Set<Socket>();

  addConnection(socket: Socket): void {
    this.connections.add(socket);
    socket.once("close", () => this.connections.delete(socket));
  }

  begin(): void {
    this.active++;
  }

  end(): void {
    this.active--;
    if (this.active === 0 && this.tunnels.size === 0) this.wake();
  }

  /** Counts a tunnel or session until removeTunnel; called again, it updates how to end it. */
  addTunnel(client: Socket, cut?: () => void): void {
    this.tunnels.set(client, cut);
  }

  removeTunnel(client: Socket): void {
    this.tunnels.delete(client);
    if (this.active === 0 && this.tunnels.size === 0) this.wake();
  }

  /** Requests in progress plus open tunnels. */
  get count(): number {
    return this.active + this.tunnels.size;
  }

  /** Resolves true when nothing is in progress, or false once `ms` have passed. */
  idle(ms: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(false);
      }, ms);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.waiters.push(done);
    });
  }

  /** Closes every connection still open; returns how many requests and tunnels were cut. */
  destroyAll(): number {
    const cut = this.count;
    for (const s of this.servers) s.closeAllConnections();
    for (const c of this.connections) c.destroy();
    for (const [t, cut] of this.tunnels) {
      if (!cut || t.destroyed) t.destroy();
      else cut();
    }
    return cut;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}
