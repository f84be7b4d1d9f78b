// The floor for bench/connect.sh: the least a Node process can do for a CONNECT tunnel. A bare
// node:http 'connect' handler that dials the target and pipes the two sockets, nothing else (no
// access checks, no timers, no log). Usage: node bench/connect-floor.mjs PORT
import { createServer } from "node:http";
import { connect } from "node:net";

const port = Number(process.argv[2]);
const server = createServer();
server.on("connect", (req, client, head) => {
  const i = req.url.lastIndexOf(":");
  const host = req.url.slice(0, i).replace(/^\[|\]$/g, "");
  const upstream = connect({ host, port: Number(req.url.slice(i + 1)) }, () => {
    client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });
  upstream.on("error", () => client.destroy());
  client.on("error", () => upstream.destroy());
  upstream.on("close", () => client.destroy());
  client.on("close", () => upstream.destroy());
});
server.listen(port, "127.0.0.1");
