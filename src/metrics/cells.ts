import type { Counter, Metric } from 'prom-client';
import { checkedName, type Metrics } from './metrics';

// Series for the per-request hot path, where prom-client's inc()/observe() (a label hash and validation per
// call, ~0.5 us each) would be most of what metrics cost: a caller keeps one cell per label set and bumps
// plain numbers in it; the totals reach Prometheus at scrape time.

/** A counter's value for one label set, added up here and handed to prom-client when scraped. */
export interface CountCell {
  readonly labels: Record<string, string>;
  pending: number;
}

/** A counter whose label sets are cells: `cell(labels)` once, then `cell.pending += n` per event. */
export class CellCounter {
  private readonly cells: CountCell[] = [];
  private readonly counter: Counter<string>;

  constructor(metrics: Metrics, name: string, help: string, labelNames: readonly string[]) {
    const cells = this.cells;
    this.counter = metrics.counter({
      name,
      help,
      labelNames,
      collect() {
        for (const c of cells) {
          if (c.pending === 0) continue;
          this.inc(c.labels, c.pending);
          c.pending = 0;
        }
      },
    });
  }

  cell(labels: Record<string, string>): CountCell {
    const c = { labels, pending: 0 };
    this.cells.push(c);
    this.counter.inc(labels, 0); // shown from now on, at 0 until something is counted
    return c;
  }
}

/** One label set of a CellHistogram: observe() is a bucket search and three additions. */
export class HistogramCell {
  /** Non-cumulative: counts[i] holds observations in (bounds[i-1], bounds[i]]; the last, above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Record<string, string>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/** A histogram whose label sets are HistogramCells, exposed in prom-client's own format. */
export class CellHistogram {
  private readonly cells: HistogramCell[] = [];
  private readonly les: string[];

  constructor(
    metrics: Metrics,
    private readonly name: string,
    private readonly help: string,
    private readonly bounds: readonly number[],
  ) {
    checkedName(name);
    this.les = bounds.map(String);
    // What prom-client's Registry asks of a metric: its name and get() (values in the format its own
    // histograms produce), reset() for resetMetrics().
    const metric = {
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      get: async () => this.snapshot(),
      reset: () => {
        for (const c of this.cells) {
          c.counts.fill(0);
          c.sum = 0;
          c.count = 0;
        }
      },
    };
    metrics.registry.registerMetric(metric as unknown as Metric);
  }

  cell(labels: Record<string, string>): HistogramCell {
    const c = new HistogramCell(labels, this.bounds);
    this.cells.push(c);
    return c;
  }

  private snapshot() {
    const bucket = `${this.name}_bucket`;
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    for (const c of this.cells) {
      let cumulative = 0;
      for (let i = 0; i < this.les.length; i++) {
        cumulative += c.counts[i]!;
        values.push({ metricName: bucket, labels: { ...c.labels, le: this.les[i]! }, value: cumulative });
      }
      values.push({ metricName: bucket, labels: { ...c.labels, le: '+Inf' }, value: c.count });
      values.push({ metricName: `${this.name}_sum`, labels: c.labels, value: c.sum });
      values.push({ metricName: `${this.name}_count`, labels: c.labels, value: c.count });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }
}
