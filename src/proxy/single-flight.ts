// Concurrent requests for the same missing thing share one piece of work: the first caller (the leader)
// starts it, the others (followers) wait for its outcome. The key is forgotten once the work settles,
// so a failure is not remembered: the next request tries again.

export class SingleFlight<T> {
  private readonly flights = new Map<string, Promise<T>>();

  /** Work in flight for `key`, if any. */
  get(key: string): Promise<T> | undefined {
    return this.flights.get(key);
  }

  get size(): number {
    return this.flights.size;
  }

  /**
   * Join the work for `key`, or start it with `work` when none is in flight.
   * `leader` tells the caller whether its own `work` runs (it may then stream as the work goes).
   */
  run(key: string, work: () => Promise<T>): { leader: boolean; done: Promise<T> } {
    const existing = this.flights.get(key);
    if (existing) return { leader: false, done: existing };
    const done = (async () => work())();
    this.flights.set(key, done);
    const forget = () => {
      if (this.flights.get(key) === done) this.flights.delete(key);
    };
    done.then(forget, forget);
    return { leader: true, done };
  }
}
