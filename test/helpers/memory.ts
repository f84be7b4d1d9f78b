import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

// RSS says little in a test: the GC frees when it likes, and Node 20 and 24 like differently. What
// a part really holds is what survives a full collection.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Bytes of heap and Buffers still reachable after a full collection. */
export function retainedBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}
