// Response bodies on the hot path are pushed chunk by chunk from the origin's parser to the client
// socket, with back-pressure, and without Node streams: measured here, stream.pipeline() between an
// undici body and the response halved the proxy's throughput. A consumer attaches once; chunks that
// arrive before it does are held (the parser often delivers headers and body in one tick).

export interface BodyConsumer {
  /** Returns false when the consumer wants no more until it calls resume(). */
  data(chunk: Buffer): boolean;
  end(): void;
  error(err: Error): void;
}

/** Observes a body without consuming it: the cache uses this to store what it relays. */
export interface BodyTap {
  data(chunk: Buffer): void;
  end(): void;
  error(err: Error): void;
}

export interface BodyProducer {
  /** Ask the producer to stop delivering until resume(). */
  pause(): void;
  resume(): void;
  /** The consumer is gone: stop and release the origin connection. */
  abort(err: Error): void;
}

const HOLD_LIMIT = 64 * 1024;

export class PushBody {
  private consumer: BodyConsumer | undefined;
  private held: Buffer[] | undefined;
  private heldBytes = 0;
  private state: "open" | "ended" | "failed" = "open";
  private failure: Error | undefined;
  private paused = false;
  private taps: BodyTap[] | undefined;

  constructor(private readonly producer: BodyProducer) {}

  // Producer side.

  /** Returns false when the producer should pause. */
  push(chunk: Buffer): boolean {
    if (this.taps) for (const t of this.taps) t.data(chunk);
    if (this.consumer && !this.held) {
      if (this.consumer.data(chunk)) return true;
      this.paused = true;
      return false;
    }
    (this.held ??= []).push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes < HOLD_LIMIT) return true;
    this.paused = true;
    return false;
  }

  finish(): void {
    if (this.state !== "open") return;
    this.state = "ended";
    if (this.taps) for (const t of this.taps) t.end();
    if (this.consumer && !this.held) this.consumer.end();
  }

  fail(err: Error): void {
    if (this.state !== "open") return;
    this.state = "failed";
    this.failure = err;
    if (this.taps) for (const t of this.taps) t.error(err);
    this.consumer?.error(err);
  }

  // Consumer side.

  /**
   * Observe every chunk. Call before attach(): what arrived already (the parser often delivers a
   * whole small response before anyone looks) is replayed from the held chunks.
   */
  tap(t: BodyTap): void {
    if (this.held) for (const chunk of this.held) t.data(chunk);
    if (this.state === "ended") t.end();
    else if (this.state === "failed") t.error(this.failure as Error);
    else (this.taps ??= []).push(t);
  }

  attach(consumer: BodyConsumer): void {
    this.consumer = consumer;
    if (this.state === "failed") {
      consumer.error(this.failure as Error);
      return;
    }
    this.flushHeld();
  }

  private flushHeld(): void {
    const consumer = this.consumer as BodyConsumer;
    const held = this.held;
    if (held) {
      while (held.length > 0) {
        const chunk = held.shift() as Buffer;
        this.heldBytes -= chunk.length;
        if (!consumer.data(chunk)) return;
      }
      this.held = undefined;
    }
    if (this.state === "ended") consumer.end();
    else if (this.paused) {
      this.paused = false;
      this.producer.resume();
    }
  }

  /** The consumer drained: deliver what is held, then let the producer go on. */
  resume(): void {
    if (this.held) this.flushHeld();
    else if (this.paused) {
      this.paused = false;
      this.producer.resume();
    }
  }

  abort(err: Error): void {
    if (this.state !== "open") return;
    this.state = "failed";
    this.failure = err;
    if (this.taps) for (const t of this.taps) t.error(err);
    this.producer.abort(err);
  }
}
