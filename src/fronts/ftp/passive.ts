import { createServer, type Server, type Socket } from "node:net";
import { normalizeAddress } from "../../net/address.js";

/**
 * The front's own passive ports (config `passive: "50000-50099"`): each PASV/EPSV gets a listener on
 * a free one, on the address the client reached, for one data connection from that client only.
 */
export class PassivePorts {
  private cursor: number;

  constructor(
    private readonly low: number,
    private readonly high: number,
  ) {
    this.cursor = low + Math.floor(Math.random() * (high - low + 1));
  }

  static parse(range: string): PassivePorts {
    const [low = 0, high = 0] = range.split("-").map(Number);
    return new PassivePorts(low, high);
  }

  /**
   * Listens on the next free port. `accept` gets the connection from `client`; any other address is
   * refused at once and reported through `foreign`.
   */
  async open(
    host: string,
    client: string,
    accept: (socket: Socket) => void,
    foreign: (address: string, port: number) => void,
  ): Promise<{ server: Server; port: number }> {
    const span = this.high - this.low + 1;
    for (let i = 0; i < span; i++) {
      const port = this.low + ((this.cursor - this.low + i) % span);
      const server = createServer({ pauseOnConnect: true }, (socket) => {
        const from = normalizeAddress(socket.remoteAddress ?? "");
        if (from !== client) {
          socket.destroy();
          foreign(from, port);
          return;
        }
        server.close();
        accept(socket);
      });
      if (await bind(server, host, port)) {
        this.cursor = port + 1 > this.high ? this.low : port + 1;
        return { server, port };
      }
    }
    throw new Error(`every port of the passive range ${this.low}-${this.high} is in use`);
  }
}

function bind(server: Server, host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => {
      server.removeAllListeners("error");
      server.on("error", () => {});
      resolve(true);
    });
  });
}
