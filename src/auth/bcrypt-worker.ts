import { Worker } from 'node:worker_threads';
import { workerEnv, workerFile } from '../worker-files';
import type { BcryptAnswer, BcryptRequest } from './bcrypt-protocol';

// bcrypt is slow on purpose (tens to hundreds of ms per compare at common costs; BENCHMARKS.md, "Design
// measurements"). On the event loop, every first login and every failed one would stall all other requests
// that long. So the compares run on one worker thread, one at a time; the event loop only waits for answers.

const WORKER_FILE = workerFile(__filename, 'bcrypt-thread');

/** The queue is full: the compare was not started. */
export class BcryptBusyError extends Error {
  override name = 'BcryptBusyError';
}

type Waiting = Map<number, { resolve: (ok: boolean) => void; reject: (err: Error) => void }>;

export class BcryptWorker {
  /** The running worker and the compares waiting on it (each worker its own: an old one's exit fails only its own). */
  private current: { worker: Worker; waiting: Waiting } | null = null;
  private nextId = 1;

  /**
   * `maxQueued`: compares waiting at most. Unbounded, a flood of bad logins queued compares for
   * seconds ahead of every good first login; past the bound a compare fails at once (BcryptBusyError).
   */
  constructor(private readonly maxQueued = Infinity) {}

  /** Compares asked for and not yet answered. */
  get pending(): number {
    return this.current?.waiting.size ?? 0;
  }

  /** Whether `password` matches the bcrypt `hash` ($2a$ or $2b$). */
  compare(password: string, hash: string): Promise<boolean> {
    if (this.pending >= this.maxQueued) return Promise.reject(new BcryptBusyError('too many password checks waiting'));
    const { worker, waiting } = this.start();
    const id = this.nextId++;
    if (waiting.size === 0) worker.ref(); // while a compare waits, the process stays up for it
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      const request: BcryptRequest = { id, password, hash };
      worker.postMessage(request);
    });
  }

  async close(): Promise<void> {
    const worker = this.current?.worker;
    this.current = null;
    await worker?.terminate();
  }

  private start(): { worker: Worker; waiting: Waiting } {
    if (this.current) return this.current;
    const worker = new Worker(WORKER_FILE, { name: 'bcrypt', env: workerEnv() });
    const waiting: Waiting = new Map();
    const current = { worker, waiting };
    worker.unref();
    worker.on('message', (answer: BcryptAnswer) => {
      const w = waiting.get(answer.id);
      if (!w) return;
      waiting.delete(answer.id);
      if (waiting.size === 0) worker.unref();
      if ('error' in answer) w.reject(new Error(`bcrypt: ${answer.error}`));
      else w.resolve(answer.ok);
    });
    // A worker that dies (or is closed) fails what waits on it; the next compare starts a new one.
    const lost = (err: Error) => {
      if (this.current === current) this.current = null;
      for (const w of waiting.values()) w.reject(err);
      waiting.clear();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`bcrypt worker exited with code ${code}`)));
    this.current = current;
    return current;
  }
}
