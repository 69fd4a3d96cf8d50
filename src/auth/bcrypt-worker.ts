import { Worker } from 'node:worker_threads';

// bcrypt is slow on purpose: bcryptjs compares in 2.5 ms at cost 5 (`htpasswd -B`'s default), 79 ms at
// cost 10 and 286 ms at cost 12 (measured here). On the event loop, every first login and every failed one
// would stall all other requests that long, and a stream of bad passwords from many clients would stall the
// registry. So the compares run on one worker thread, one at a time; the event loop only waits for answers.

// Evaluated (not a file) so that it loads the same under the tests' TypeScript loader and from dist/.
const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const bcrypt = require(workerData.bcryptjs);
parentPort.on('message', ({ id, password, hash }) => {
  try {
    parentPort.postMessage({ id, ok: bcrypt.compareSync(password, hash) });
  } catch (err) {
    parentPort.postMessage({ id, error: String((err && err.message) || err) });
  }
});
`;

interface Answer {
  id: number;
  ok?: boolean;
  error?: string;
}

export class BcryptWorker {
  private worker: Worker | null = null;
  private readonly waiting = new Map<number, { resolve: (ok: boolean) => void; reject: (err: Error) => void }>();
  private nextId = 1;

  /** Whether `password` matches the bcrypt `hash` ($2a$ or $2b$). */
  compare(password: string, hash: string): Promise<boolean> {
    const worker = this.start();
    const id = this.nextId++;
    if (this.waiting.size === 0) worker.ref(); // while a compare waits, the process stays up for it
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ id, password, hash });
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    await worker?.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(SOURCE, { eval: true, name: 'bcrypt', workerData: { bcryptjs: require.resolve('bcryptjs') } });
    worker.unref();
    worker.on('message', (answer: Answer) => {
      const w = this.waiting.get(answer.id);
      if (!w) return;
      this.waiting.delete(answer.id);
      if (this.waiting.size === 0) worker.unref();
      if (answer.error !== undefined) w.reject(new Error(`bcrypt: ${answer.error}`));
      else w.resolve(answer.ok === true);
    });
    // A worker that dies (or is closed) fails what waits on it; the next compare starts a new one.
    const lost = (err: Error) => {
      if (this.worker === worker) this.worker = null;
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`bcrypt worker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }
}
