import { RegistryError } from '../errors';

// Password checks under way per client address. bcrypt runs one at a time on one worker, so one
// client sending many new credentials at once would queue ahead of everybody else's first login.

export class CheckGate {
  private readonly running = new Map<string, number>();

  constructor(private readonly perClient: number) {}

  /** Admit one more check for `client`, or refuse it (429); returns the release. */
  enter(client: string): () => void {
    const n = this.running.get(client) ?? 0;
    if (n >= this.perClient) {
      throw new RegistryError('TOOMANYREQUESTS', 'too many password checks under way from this address; try again shortly', {
        headers: { 'retry-after': '1' },
      });
    }
    this.running.set(client, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.running.get(client) ?? 1) - 1;
      if (left > 0) this.running.set(client, left);
      else this.running.delete(client);
    };
  }
}
