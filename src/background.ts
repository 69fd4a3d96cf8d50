import type { FastifyInstance } from 'fastify';

/**
 * Run `job` every `intervalSeconds` (0: never) in the server, one run at a time (a tick while one runs is
 * skipped), only while this process leads (app.registry.leadership), and stop it with the server: close() aborts the signal and waits for the run under way.
 */
export function repeatInBackground(app: FastifyInstance, intervalSeconds: number, job: (signal: AbortSignal) => Promise<void>): void {
  if (intervalSeconds === 0) return;
  const stop = new AbortController();
  let running: Promise<void> | null = null;
  const leadership = app.registry.leadership;
  const tick = () => {
    if (running || !leadership.held) return;
    // Asked just before the run: a replica that lost the lock without noticing yet does not run it too.
    running = leadership
      .confirm()
      .then((leads) => (leads ? job(stop.signal) : undefined))
      .finally(() => (running = null));
  };
  const timer = setInterval(tick, intervalSeconds * 1000);
  timer.unref();
  app.addHook('onClose', async () => {
    clearInterval(timer);
    stop.abort();
    await running;
  });
}
