import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
  type CounterConfiguration,
  type GaugeConfiguration,
  type HistogramConfiguration,
} from 'prom-client';

/**
 * The registry's Prometheus series: the one owner of prom-client's Registry, which every subsystem adds
 * its series to without knowing about the others (docs/metrics.md lists them all).
 *
 * For a subsystem (notifications, the proxy cache, ...): take a `Metrics` (a constructor argument; the
 * server passes `app.registry.metrics`) and create your series on it once, at construction:
 *
 *   const sent = metrics.counter({ name: 'registry_notifications_sent_total', help: '...', labelNames: ['endpoint'] });
 *   sent.inc({ endpoint: 'ci' });                        // keep label objects you reuse in a constant
 *   metrics.gauge({ name: 'registry_notifications_pending', help: '...', collect() { this.set(outbox.pending()) } });
 *   metrics.beforeScrape(async () => { ... });          // refresh several gauges from one query per scrape
 *
 * Rules: names start with `registry_`; base units (seconds, bytes) named in the suffix; label values from a
 * small fixed set (never repository names, tags or digests); counting on a hot path must not allocate.
 * Code without a server (the CLI, unit tests) passes `Metrics.disabled()`, or nothing where the argument
 * defaults to it: the series work as usual and are exposed nowhere.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly refreshers: (() => void | Promise<void>)[] = [];

  private constructor(readonly enabled: boolean) {}

  /** Series that are served: with the process's own (RSS, heap, event-loop lag, GC, file descriptors). */
  static create(): Metrics {
    const m = new Metrics(true);
    collectDefaultMetrics({ register: m.registry });
    return m;
  }

  /** Series that count as usual and are never served (the CLI, tests, metrics.enabled false). */
  static disabled(): Metrics {
    return new Metrics(false);
  }

  counter<L extends string>(config: Omit<CounterConfiguration<L>, 'registers'>): Counter<L> {
    return new Counter({ ...checked(config), registers: [this.registry] });
  }

  gauge<L extends string>(config: Omit<GaugeConfiguration<L>, 'registers'>): Gauge<L> {
    return new Gauge({ ...checked(config), registers: [this.registry] });
  }

  histogram<L extends string>(config: Omit<HistogramConfiguration<L>, 'registers'>): Histogram<L> {
    return new Histogram({ ...checked(config), registers: [this.registry] });
  }

  /** Run `fn` before each scrape (all of them together, before any series is read). */
  beforeScrape(fn: () => void | Promise<void>): void {
    this.refreshers.push(fn);
  }

  /** Content type of `scrape()`'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every series in the Prometheus text format (0.0.4). */
  async scrape(): Promise<string> {
    await Promise.all(this.refreshers.map((fn) => fn()));
    return this.registry.metrics();
  }
}

/** The same name twice is a programming error prom-client reports; our own prefix is checked here. */
export function checkedName(name: string): string {
  if (!/^registry_[a-z0-9_]+$/.test(name)) throw new Error(`metric ${name}: names are registry_ and lower-case words`);
  return name;
}

function checked<T extends { name: string }>(config: T): T {
  checkedName(config.name);
  return config;
}

/** Latency buckets from 1 ms (a cached manifest) to 2 min (a large layer), in seconds. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Short operations (index transactions, fsyncs, small storage calls): 50 us to 10 s. */
export const FAST_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/** Seconds since `start` (a process.hrtime.bigint() reading). */
export function secondsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** A counter whose value is read from `read` at each scrape (the count is kept elsewhere, and only grows). */
export function mirrored<L extends string>(counter: Counter<L>, read: () => [Partial<Record<L, string>>, number][]): void {
  (counter as unknown as { collect: () => void }).collect = () => {
    counter.reset();
    for (const [labels, value] of read()) counter.inc(labels, value);
  };
}
