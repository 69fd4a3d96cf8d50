import { compareSync } from 'bcryptjs';
import { isMainThread, parentPort } from 'node:worker_threads';
import type { BcryptAnswer, BcryptRequest } from './bcrypt-protocol';

// The bcrypt worker thread: one compare at a time, off the event loop (see bcrypt-worker.ts).

function answer(request: BcryptRequest): BcryptAnswer {
  try {
    return { id: request.id, ok: compareSync(request.password, request.hash) };
  } catch (err) {
    return { id: request.id, error: String((err as Error)?.message ?? err) };
  }
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  port.on('message', (request: BcryptRequest) => port.postMessage(answer(request)));
}
