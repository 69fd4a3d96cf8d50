import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { ConfigError } from '../config/errors';
import type { Tx } from '../index/database';
import type { NotificationIndex } from '../index/notification-index';
import { makeEvent, type EventSource, type EventTarget } from './events';
import { EndpointFilter } from './filter';
import type { RequestFacts } from './request-facts';
import { EndpointSender, type EndpointStats, type SenderLog, type SenderOptions } from './sender';
import type { Action, EndpointSettings } from './settings';

// The registry's side of notifications: registry semantics (src/v1, src/v2) call record() inside the
// transaction of each change, which queues the event for every enabled endpoint whose filters match; one
// EndpointSender per endpoint delivers in the background. Without enabled endpoints none of this is built.

/** What registry semantics see: record an event in the transaction of the change it reports. */
export interface EventRecorder {
  /** Whether pull events are wanted by some endpoint (pulls are reads: recording one is a write). */
  readonly pulls: boolean;
  /**
   * `tx`: the transaction of the change (null for a pull, which changes nothing); `request`: the facts of the
   * request that made the change (none for background work).
   */
  record(tx: Tx | null, action: Action, repository: string, target: EventTarget, request?: () => RequestFacts): Promise<void>;
}

export interface NotificationSettings {
  endpoints: readonly EndpointSettings[];
  maxAge: number;
  pullEvents: boolean;
}

interface Active {
  settings: EndpointSettings;
  filter: EndpointFilter;
  sender: EndpointSender;
  /** A new sender for this endpoint (after a pause, the stopped one cannot start again). */
  makeSender: () => EndpointSender;
}

const PRUNE_EVERY_MS = 60_000;

export class Notifier implements EventRecorder {
  readonly pulls: boolean;
  private readonly active: Active[];
  private readonly source: EventSource;
  private wakeScheduled = new Set<Active>();
  private pruneTimer: NodeJS.Timeout | undefined;
  private state: 'new' | 'running' | 'paused' = 'new';
  /** The senders' stop by the last pause(): close() waits for it even when leadership's change began it. */
  private stopping: Promise<void> = Promise.resolve();
  private readonly maxAgeMs: number;

  constructor(
    settings: NotificationSettings,
    private readonly outbox: NotificationIndex,
    private readonly log: SenderLog,
    opts: { port: number; env?: NodeJS.ProcessEnv; sender?: Partial<SenderOptions> },
  ) {
    this.source = { addr: `${hostname()}:${opts.port}`, instanceID: randomUUID() };
    this.active = settings.endpoints.flatMap((e, i) => {
      if (!e.enabled) return [];
      const secret = loadSecret(e, `notifications.endpoints[${i}]`, opts.env ?? process.env);
      const makeSender = () => new EndpointSender(e, outbox, log, { maxAgeMs: settings.maxAge * 1000, secret, ...opts.sender });
      return [{ settings: e, filter: new EndpointFilter(e, settings.pullEvents), sender: makeSender(), makeSender }];
    });
    this.pulls = this.active.some((a) => a.filter.wantsAction('pull'));
    this.maxAgeMs = settings.maxAge * 1000;
  }

  /** Whether any endpoint is enabled (else the registry is built without a notifier at all). */
  get enabled(): boolean {
    return this.active.length > 0;
  }

  async record(tx: Tx | null, action: Action, repository: string, target: EventTarget, facts?: () => RequestFacts): Promise<void> {
    const to = this.active.filter((a) => a.filter.matches(action, repository, target.mediaType));
    if (to.length === 0) return;
    const request = facts?.();
    // A HEAD checks that a manifest is there (clients do before pushing, and to compare digests): no pull.
    if (action === 'pull' && request?.method === 'HEAD') return;
    const now = new Date();
    const event = JSON.stringify(makeEvent(action, repository, target, request, this.source, now));
    try {
      await (tx ? tx(this.outbox) : this.outbox).enqueue(
        to.map((a) => a.settings.name),
        repository,
        event,
        now.getTime(),
      );
    } catch (err) {
      // A change and its event commit together, so a failed write fails the change; a pull changes nothing
      // and is served all the same.
      if (action !== 'pull') throw err;
      this.log.warn({ err, repository }, 'pull event not recorded');
      return;
    }
    // Woken after this tick, when the transaction that wrote the rows has committed (or rolled back): a
    // SQLite transaction ends within the tick it began in (connection.ts).
    const first = this.wakeScheduled.size === 0;
    for (const a of to) this.wakeScheduled.add(a);
    if (first) setImmediate(() => this.wakeSenders());
  }

  /** Start sending (again, after pause()): on one process at a time, the leader (src/index/leader.ts). */
  start(): void {
    if (this.state === 'running') return;
    if (this.state === 'paused') for (const a of this.active) a.sender = a.makeSender();
    this.state = 'running';
    for (const a of this.active) a.sender.start();
    this.pruneTimer = setInterval(() => void this.prune(), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
    void this.prune();
  }

  /** Stop sending: an attempt in flight is aborted, its events stay queued for whoever sends next. */
  pause(): Promise<void> {
    if (this.state !== 'running') return this.stopping;
    this.state = 'paused';
    clearInterval(this.pruneTimer);
    this.stopping = Promise.all(this.active.map((a) => a.sender.stop())).then(() => undefined);
    return this.stopping;
  }

  close(): Promise<void> {
    return this.pause();
  }

  /** Per enabled endpoint: pending, oldest pending age, delivered, failed attempts, dropped, last error. */
  stats(): Promise<EndpointStats[]> {
    return Promise.all(this.active.map((a) => a.sender.stats()));
  }

  private wakeSenders(): void {
    const woken = [...this.wakeScheduled];
    this.wakeScheduled.clear();
    for (const a of woken) a.sender.wake();
  }

  /**
   * Drop what is past notifications.maxAge for endpoints no sender looks at (removed or disabled since the
   * events were made), so the table stays bounded whatever the configuration did.
   */
  private async prune(): Promise<void> {
    try {
      const active = this.active.map((a) => a.settings.name);
      for (;;) {
        const rows = await this.outbox.expired(Date.now() - this.maxAgeMs, active, 500);
        if (rows.length === 0) break;
        await this.outbox.remove(rows.map((r) => r.seq));
        for (const r of rows) this.log.warn({ endpoint: r.endpoint, seq: r.seq, repository: r.repo }, 'notification dropped: older than notifications.maxAge (endpoint not configured or disabled)');
        if (rows.length < 500) break;
      }
    } catch (err) {
      this.log.error({ err }, 'pruning old notifications failed');
    }
  }
}

/** The endpoint's HMAC key from its file or environment variable (never from the config itself, never logged). */
function loadSecret(e: EndpointSettings, at: string, env: NodeJS.ProcessEnv): Buffer | undefined {
  let secret: string | undefined;
  if (e.secretFile !== undefined) {
    try {
      secret = readFileSync(e.secretFile, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new ConfigError(`${at}.secretFile: cannot read ${e.secretFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  } else if (e.secretEnv !== undefined) {
    secret = env[e.secretEnv];
    if (secret === undefined) throw new ConfigError(`${at}.secretEnv: environment variable ${e.secretEnv} is not set`);
  } else return undefined;
  if (secret.length < 16) throw new ConfigError(`${at}: the secret must be at least 16 characters`);
  return Buffer.from(secret, 'utf8');
}
