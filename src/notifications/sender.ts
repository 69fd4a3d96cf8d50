import http from 'node:http';
import https from 'node:https';
import type { NotificationIndex, OutboxRow } from '../index/notification-index';
import { backoffDelay, retryable } from './backoff';
import { ENVELOPE_MEDIA_TYPE, envelope } from './events';
import type { EndpointSettings } from './settings';
import { SIGNATURE_HEADER, signatureHeader } from './signature';

// Delivers one endpoint's outbox: oldest first, a batch per POST, the next batch only once the previous one is
// delivered or dropped, so every receiver sees each repository's events in order (all of them in fact, in the
// order they were made). At least once: a row goes only after a 2xx, so a crash between the answer and the
// delete sends it again (receivers deduplicate by event id). Each endpoint has its own loop; a receiver that
// hangs costs its own loop one timeout per attempt and nothing else.

export interface SenderLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface EndpointStats {
  endpoint: string;
  /** Events waiting for this endpoint (in the outbox). */
  pending: number;
  /** Seconds since the oldest waiting event was made (0: none waiting). */
  oldestPendingAgeSeconds: number;
  /** Events delivered since start. */
  delivered: number;
  /** POSTs that failed since start (error status, network error, timeout). */
  failedAttempts: number;
  /** Events dropped since start (past maxAge or maxRetries, or refused with a non-retryable status). */
  dropped: number;
  lastError: string | null;
}

export interface SenderOptions {
  maxAgeMs: number;
  secret?: Buffer;
  /** Events per POST at most. */
  batch?: number;
  /** How often an idle loop looks at the outbox without being woken (rows written by another process). */
  idleMs?: number;
  /** How long a woken sender waits for more events before it reads them. */
  lingerMs?: number;
  now?: () => number;
  random?: () => number;
}

const DEFAULT_BATCH = 50;
const DEFAULT_IDLE_MS = 2000;
/**
 * Woken by new events, a sender waits this long before reading them: the events of requests arriving meanwhile
 * go in the same POST (one POST per push, not one per blob, under load).
 */
const DEFAULT_LINGER_MS = 100;

type Outcome = { ok: true } | { ok: false; error: string; retry: boolean };

export class EndpointSender {
  private delivered = 0;
  private failedAttempts = 0;
  private dropped = 0;
  private lastError: string | null = null;
  /** Failed POSTs in a row: the backoff exponent. */
  private failures = 0;
  /**
   * After a batch was refused for good: its events (the next ones in order) go one per POST, so only the refused
   * one is dropped. A count, not a seq: seq values are reused once the highest rows are gone.
   */
  private sendSingly = 0;
  private stopped = false;
  /** The POST in flight, aborted by stop(). */
  private inFlight: http.ClientRequest | undefined;
  /** Keep-alive connections to the receiver: one POST at a time, so one socket. */
  private readonly agent: http.Agent;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private loop: Promise<void> | undefined;
  private readonly batch: number;
  private readonly idleMs: number;
  private readonly lingerMs: number;
  private readonly now: () => number;

  constructor(
    readonly endpoint: EndpointSettings,
    private readonly outbox: NotificationIndex,
    private readonly log: SenderLog,
    private readonly opts: SenderOptions,
  ) {
    this.batch = opts.batch ?? DEFAULT_BATCH;
    this.idleMs = opts.idleMs ?? DEFAULT_IDLE_MS;
    this.lingerMs = opts.lingerMs ?? DEFAULT_LINGER_MS;
    const Agent = endpoint.url.startsWith('https:') ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: 1 });
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** New events were committed: look now if idle (a backoff wait is not cut short). */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Stop: an attempt in flight is aborted (its events stay and go out after the next start). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.inFlight?.destroy();
    this.wakeUp?.();
    await this.loop;
    this.agent.destroy();
  }

  async stats(): Promise<EndpointStats> {
    const b = await this.outbox.endpointBacklog(this.endpoint.name);
    return {
      endpoint: this.endpoint.name,
      pending: b.pending,
      oldestPendingAgeSeconds: b.oldest === null ? 0 : Math.max(0, (this.now() - b.oldest) / 1000),
      delivered: this.delivered,
      failedAttempts: this.failedAttempts,
      dropped: this.dropped,
      lastError: this.lastError,
    };
  }

  /** Drop events with a log line each (and count them). */
  async drop(rows: readonly OutboxRow[], reason: string): Promise<void> {
    if (rows.length === 0) return;
    await this.outbox.remove(rows.map((r) => r.seq));
    this.dropped += rows.length;
    for (const r of rows) this.log.warn({ endpoint: this.endpoint.name, ...describe(r), attempts: r.attempts }, `notification dropped: ${reason}`);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let wait: { ms: number; wakeable: boolean };
      try {
        wait = await this.step();
      } catch (err) {
        // The index itself failed (disk full, closed): try again later, never crash the server.
        this.log.error({ err, endpoint: this.endpoint.name }, 'notification sender failed; retrying');
        wait = { ms: this.idleMs, wakeable: false };
      }
      if (this.stopped || wait.ms === 0) continue;
      const woken = await this.sleep(wait.ms, wait.wakeable);
      if (woken && this.lingerMs > 0 && !this.stopped) await this.sleep(this.lingerMs, false);
    }
  }

  /** One round: send the next batch if there is one; returns how long to wait before the next round. */
  private async step(): Promise<{ ms: number; wakeable: boolean }> {
    this.woken = false;
    const rows = await this.outbox.next(this.endpoint.name, this.sendSingly > 0 ? 1 : this.batch);
    if (rows.length === 0) {
      this.sendSingly = 0;
      return { ms: this.idleMs, wakeable: true };
    }
    const tooOld = this.now() - this.opts.maxAgeMs;
    const expired = rows.filter((r) => r.createdAt < tooOld);
    if (expired.length > 0) {
      await this.drop(expired, 'older than notifications.maxAge');
      return { ms: 0, wakeable: false };
    }
    const outcome = await this.post(rows);
    if (this.stopped) return { ms: 0, wakeable: false };
    if (outcome.ok) {
      if (this.sendSingly > 0) this.sendSingly--;
      await this.outbox.remove(rows.map((r) => r.seq));
      this.delivered += rows.length;
      this.failures = 0;
      return { ms: 0, wakeable: false };
    }
    this.failedAttempts++;
    this.lastError = outcome.error;
    const attempts = await this.outbox.failed(
      rows.map((r) => r.seq),
      outcome.error,
    );
    if (!outcome.retry) {
      // Refused for good. A batch may be refused for one event in it: find that one, one event per POST.
      if (rows.length > 1) this.sendSingly = rows.length;
      else {
        if (this.sendSingly > 0) this.sendSingly--;
        await this.drop(rows, `the receiver refused it (${outcome.error})`);
      }
      return { ms: 0, wakeable: false };
    }
    const max = this.endpoint.maxRetries;
    if (max > 0) await this.drop(rows.filter((r) => (attempts.get(r.seq) ?? 0) > max).map((r) => ({ ...r, attempts: attempts.get(r.seq) ?? r.attempts })), `failed ${max + 1} times (maxRetries ${max})`);
    this.failures++;
    const ms = backoffDelay(this.failures, this.endpoint.backoff.initialMs, this.endpoint.backoff.maxMs, this.opts.random);
    this.log.warn({ endpoint: this.endpoint.name, events: rows.length, error: outcome.error, retryInMs: ms }, 'notification delivery failed; will retry');
    return { ms, wakeable: false };
  }

  /**
   * One POST with node's own client (a fraction of fetch's CPU per request; this runs on the event loop that
   * serves pushes). Resolves on the answer's status line: its body means nothing to us and is drained, or the
   * connection closed if it is long (a receiver could stream forever). Never rejects.
   */
  private post(rows: readonly OutboxRow[]): Promise<Outcome> {
    const body = envelope(rows.map((r) => r.event));
    const headers: Record<string, string> = { ...this.endpoint.headers, 'content-type': ENVELOPE_MEDIA_TYPE, 'content-length': String(Buffer.byteLength(body)) };
    if (this.opts.secret) headers[SIGNATURE_HEADER] = signatureHeader(this.opts.secret, body, Math.floor(this.now() / 1000));
    const client = this.endpoint.url.startsWith('https:') ? https : http;
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const settle = (o: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.inFlight = undefined;
        resolve(o);
      };
      const req = client.request(this.endpoint.url, { method: 'POST', headers, agent: this.agent }, (res) => {
        const status = res.statusCode ?? 0;
        if (Number(res.headers['content-length'] ?? Infinity) <= 65536) res.resume();
        else res.destroy();
        settle(status >= 200 && status < 300 ? { ok: true } : { ok: false, error: `HTTP ${status}`, retry: retryable(status) });
      });
      const timer = setTimeout(() => {
        req.destroy();
        settle({ ok: false, error: `no answer within ${this.endpoint.timeoutMs} ms`, retry: true });
      }, this.endpoint.timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => settle({ ok: false, error: err.code ?? err.message, retry: true }));
      this.inFlight = req;
      req.end(body);
    });
  }

  /** Resolves true if woken by new events (wakeable waits only), false when the time is up or on stop. */
  private sleep(ms: number, wakeable: boolean): Promise<boolean> {
    if (wakeable && this.woken) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (woken: boolean) => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        resolve(woken && !this.stopped);
      };
      const timer = setTimeout(() => done(false), ms);
      timer.unref();
      this.wakeUp = wakeable ? () => done(true) : () => this.stopped && done(false);
    });
  }
}

/** What a log line says of a dropped event: its id, action and target, never its request details. */
export function describe(row: OutboxRow): object {
  try {
    const e = JSON.parse(row.event) as { id?: string; action?: string; target?: { digest?: string; tag?: string } };
    return { eventId: e.id, action: e.action, repository: row.repo, digest: e.target?.digest, tag: e.target?.tag, ageMs: Date.now() - row.createdAt };
  } catch {
    return { repository: row.repo };
  }
}
