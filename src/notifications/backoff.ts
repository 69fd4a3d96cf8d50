// Delay before the next attempt after `failures` failed ones in a row: exponential from `initialMs`, capped at
// `maxMs`, with jitter (the upper half of the range at random) so that registries restarted together do not
// retry in step against a receiver that is coming back.

export function backoffDelay(failures: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const exp = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(failures - 1, 0), 30));
  return Math.round(exp / 2 + (random() * exp) / 2);
}

/** Whether an HTTP status is worth another attempt: server errors, 408 and 429; other 4xx (and 3xx) will not change. */
export function retryable(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}
