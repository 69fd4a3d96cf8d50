// Failed-login limiting: after `limit` failures for one (client, user name), or `perClient` failures
// from one client whatever the user names, within `windowMs`, further attempts from there are refused
// until the window passes. Per name alone, random user names were never limited. Good credentials
// from other clients are never slowed down.

export class FailedLoginLimiter {
  /** Recent failure times per key, oldest first, at most as many as the key's limit. */
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly perClient = Infinity,
  ) {}

  private recent(key: string, now: number): number[] {
    const list = (this.failures.get(key) ?? []).filter((t) => now - t < this.windowMs);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }

  /** Milliseconds until `key` may try again (0: now). */
  private wait(key: string, max: number, now: number): number {
    const list = this.recent(key, now);
    return list.length >= max ? list[list.length - max]! + this.windowMs - now : 0;
  }

  /** Seconds until this client may try this user name again; 0 when it may now. */
  retryAfter(client: string, user: string, now = Date.now()): number {
    const ms = Math.max(this.wait(pairKey(client, user), this.limit, now), this.wait(clientKey(client), this.perClient, now));
    return Math.ceil(ms / 1000);
  }

  blocked(client: string, user: string, now = Date.now()): boolean {
    return this.retryAfter(client, user, now) > 0;
  }

  fail(client: string, user: string, now = Date.now()): void {
    this.add(pairKey(client, user), this.limit, now);
    if (Number.isFinite(this.perClient)) this.add(clientKey(client), this.perClient, now);
    if (this.failures.size > 100_000) this.sweep(now);
  }

  /** A good login clears that name's count; the client's count stays, or one account would reset it. */
  succeed(client: string, user: string): void {
    this.failures.delete(pairKey(client, user));
  }

  private add(key: string, max: number, now: number): void {
    const list = this.recent(key, now);
    list.push(now);
    if (list.length > max) list.splice(0, list.length - max);
    this.failures.set(key, list);
  }

  private sweep(now: number): void {
    for (const key of [...this.failures.keys()]) this.recent(key, now);
  }
}

const pairKey = (client: string, user: string) => `${client}\0${user}`;
const clientKey = (client: string) => `${client}\u0001`; // never a pair key: addresses hold neither character
