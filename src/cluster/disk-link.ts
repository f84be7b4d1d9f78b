// When several processes share one disk cache directory, exactly one of them (the supervisor, the
// "owner") keeps the index that is bounded in bytes and deletes files to make room; the workers
// write entries (temp file + rename, so a reader never sees half of one), announce them, and only
// forget entries when their own index is full. A worker never deletes a file for room, so no
// worker removes what another is reading (and an unlinked file stays readable to whoever has it
// open). Purges delete in every process; deleting a file twice is harmless.

/** An entry of the disk tier as an index knows it. */
export interface DiskIndexEntry {
  file: string;
  size: number;
  url: string;
  varyNames: string[];
}

/** What a disk tier offers its link: entries others wrote, and entries the owner removed. */
export interface LinkedDisk {
  learn(key: string, entry: DiskIndexEntry): void;
  forget(keys: readonly string[]): void;
  /** Counts an entry as recently used (the owner's eviction order). */
  touch(key: string): void;
}

export interface DiskLink {
  readonly role: "worker" | "owner";
  /** A worker wrote an entry (the owner indexes it; the other workers learn of it). */
  stored(key: string, entry: DiskIndexEntry): void;
  /** A worker served an entry from disk: the owner counts it as recently used. */
  touched(key: string): void;
  /** The owner removed entries to make room: the workers forget them. */
  evicted(key: string): void;
  /** The disk tier of this process starts (or stops, with the returned function) taking messages. */
  attach(disk: LinkedDisk): () => void;
}

let link: DiskLink | undefined;

/** Set once when a process takes its place in a cluster, before any cache is made. */
export function setDiskLink(l: DiskLink): void {
  link = l;
}

/** Undefined in a single process: the disk tier then owns its directory alone. */
export function diskLink(): DiskLink | undefined {
  return link;
}
