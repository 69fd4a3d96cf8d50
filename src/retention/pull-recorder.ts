// Last pull times for retention's keepPulledWithin, without an index write per pull: pulls are kept
// in memory (the latest per manifest and per tag) and written in one transaction every few seconds.
// A crash loses at most the last interval's pulls, which only makes retention keep less for a while.

export interface Pull {
  repo: string;
  digest: string;
  /** Set when the pull named a tag. */
  tag?: string;
  at: number;
}

export interface PullSink {
  recordPulls(pulls: readonly Pull[]): Promise<void>;
}

/** At most this many distinct manifests and tags wait for a flush; past it the batch is written early. */
const MAX_PENDING = 10_000;

export class PullRecorder {
  private pending = new Map<string, Pull>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly sink: PullSink,
    intervalMs: number,
    private readonly onError: (err: unknown) => void,
  ) {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  record(repo: string, digest: string, tag?: string, at = Date.now()): void {
    this.pending.set(`${repo}\0${digest}\0${tag ?? ''}`, { repo, digest, tag, at });
    if (this.pending.size >= MAX_PENDING) void this.flush();
  }

  /** Write what is pending; resolves when it (and any flush before it) is written. Never rejects. */
  flush(): Promise<void> {
    if (this.pending.size === 0) return this.flushing;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    this.flushing = this.flushing.then(() => this.sink.recordPulls(batch)).catch(this.onError);
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
