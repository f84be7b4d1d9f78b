// Workers each keep their own memory tier; without this, a response one worker fetched would be a
// miss on every other one (wrk's connections, an office's browsers, are spread over all of them).
// A worker that stores a response hands its bytes (the disk tier's encoding) to the supervisor,
// which passes them on to the other workers' memory tiers. Bigger responses are left to each worker
// (and to the shared disk tier): copying them through every process would cost more than a fetch.

/** The largest body handed to the other workers. */
export const PEER_MAX_BODY = 256 * 1024;

export interface PeerLink {
  share(bytes: Buffer): void;
  attach(cache: { adopt(bytes: Buffer): void }): () => void;
}

let link: PeerLink | undefined;

/** Set once in a worker, before any cache is made. */
export function setPeerLink(l: PeerLink): void {
  link = l;
}

/** Undefined outside a worker: a single process has one memory tier. */
export function peerLink(): PeerLink | undefined {
  return link;
}
