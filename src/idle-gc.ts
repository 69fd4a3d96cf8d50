import type { Server } from 'node:http';

/**
 * Hands memory back once a burst of traffic is over.
 *
 * npm start gives V8 a 64 MB floor under its old-space limit, so uploads no longer set off a full
 * collection every ~30 MiB received (docs/storage.md, "Memory and garbage collection"). The price is that the
 * garbage of a burst (request-body buffers that waited for a write long enough to be promoted, and
 * per-request objects) stays until the heap fills, which on a server that goes quiet may be never.
 * So when no request is in flight and none started during the last check interval, drop what is kept for
 * reuse (spare upload slabs), and if that dropped anything, or the heap plus buffers hold `thresholdBytes`
 * more than after the last collection, run one full collection (its cost: BENCHMARKS.md, "Design
 * measurements"). Under steady load it never runs; V8's own heuristics stay in charge there.
 */

export interface MemoryUse {
  heapUsed: number;
  arrayBuffers: number;
}

export interface IdleCollectorOptions {
  /** A full, synchronous collection: `globalThis.gc` under `node --expose-gc`. */
  gc: () => void;
  /** Drops what is kept for reuse (spare upload slabs) and returns its bytes: only a collection frees them. */
  release?: () => number;
  memory: () => MemoryUse;
  thresholdBytes: number;
}

/** The decision, apart from timers and the HTTP server so it can be tested alone. */
export class IdleCollector {
  private inFlight = 0;
  private started = 0;
  private startedAtLastCheck = 0;
  private baseline: number;

  constructor(private readonly opts: IdleCollectorOptions) {
    this.baseline = this.used();
  }

  requestStarted(): void {
    this.inFlight++;
    this.started++;
  }

  requestEnded(): void {
    this.inFlight--;
  }

  /** Called every interval; says what the collection freed (and what was dropped for it), or null when it did not collect. */
  check(): { freedBytes: number; releasedBytes: number } | null {
    const quiet = this.inFlight === 0 && this.started === this.startedAtLastCheck;
    this.startedAtLastCheck = this.started;
    if (!quiet) return null;
    const releasedBytes = this.opts.release?.() ?? 0;
    const before = this.used();
    if (releasedBytes === 0 && before - this.baseline < this.opts.thresholdBytes) return null;
    this.opts.gc();
    this.baseline = this.used();
    return { freedBytes: before - this.baseline, releasedBytes };
  }

  private used(): number {
    const m = this.opts.memory();
    return m.heapUsed + m.arrayBuffers;
  }
}

const CHECK_EVERY_MS = 1000;
const THRESHOLD_BYTES = 16 * 1024 * 1024;

export interface IdleGcLog {
  info(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/**
 * Watch `server` and collect when it goes quiet (see IdleCollector; `release` drops what is kept for reuse
 * and returns its bytes). Does nothing (and says so at info level, since the operator can fix it) when node was started
 * without --expose-gc. Returns a function that stops watching.
 */
export function startIdleGc(server: Server, log: IdleGcLog, release: () => number = () => 0): () => void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') {
    log.info({ idleGc: false }, 'idle collection off: node was started without --expose-gc (see docs/storage.md, Memory and garbage collection)');
    return () => undefined;
  }
  const collector = new IdleCollector({ gc, release, memory: () => process.memoryUsage(), thresholdBytes: THRESHOLD_BYTES });
  // 'close' follows every response, finished or aborted, so the in-flight count cannot drift.
  const onRequest = (_req: unknown, res: NodeJS.EventEmitter) => {
    collector.requestStarted();
    res.once('close', () => collector.requestEnded());
  };
  server.on('request', onRequest);
  const timer = setInterval(() => {
    const started = performance.now();
    const done = collector.check();
    if (done === null) return;
    const ms = Math.round(performance.now() - started);
    log.debug({ freedMiB: Math.round(done.freedBytes / 2 ** 20), releasedKiB: Math.round(done.releasedBytes / 1024), ms }, 'idle collection');
  }, CHECK_EVERY_MS);
  timer.unref();
  log.debug({ idleGc: true }, 'idle collection on');
  return () => {
    clearInterval(timer);
    server.off('request', onRequest);
  };
}
