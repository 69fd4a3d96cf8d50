// Failed-login limiting: after `limit` failures for one (client, user name) within `windowMs`,
// further attempts for that pair are refused until the window passes. Good credentials from
// other clients, or for other users, are never slowed down.

export class FailedLoginLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  private recent(key: string, now: number): number[] {
    const list = (this.failures.get(key) ?? []).filter((t) => now - t < this.windowMs);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }

  blocked(client: string, user: string, now = Date.now()): boolean {
    return this.recent(`${client}\0${user}`, now).length >= this.limit;
  }

  fail(client: string, user: string, now = Date.now()): void {
    const key = `${client}\0${user}`;
    const list = this.recent(key, now);
    list.push(now);
    this.failures.set(key, list);
    if (this.failures.size > 100_000) this.sweep(now);
  }

  succeed(client: string, user: string): void {
    this.failures.delete(`${client}\0${user}`);
  }

  private sweep(now: number): void {
    for (const key of [...this.failures.keys()]) this.recent(key, now);
  }
}
