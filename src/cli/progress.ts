import { formatDuration } from './format';
import type { Output } from './io';

// Progress of a long command (gc now; retention, du, repo delete later), in steps such as gc's phases.
// On a terminal: one line rewritten in place with \r, a bar when the total is known, at most about
// ten redraws a second however often progress is reported. Otherwise (a log file, a pipe, CI): one
// plain line per step when it ends, so logs stay short and greppable. Either way each step ends as
// `<label>: <count> in <duration>`, and that line stays.

export interface ProgressOptions {
  /** Draw a bar; by default when the stream is a terminal that understands \r and erase-line. */
  isTTY?: boolean;
  /** Terminal width; lines are cut to it, since a wrapped line cannot be rewritten with \r. */
  columns?: number;
  /** Clock in ms (tests pass a fake one). */
  now?: () => number;
  /** Least time between two redraws. */
  minIntervalMs?: number;
}

interface Step {
  label: string;
  done: number;
  total: number | undefined;
  startedAt: number;
}

const BAR_WIDTH = 24;
const ERASE_TO_END = '\x1b[K';

export class Progress {
  readonly isTTY: boolean;
  private readonly columns: number;
  private readonly now: () => number;
  private readonly minIntervalMs: number;
  private step: Step | undefined;
  private lastDraw = -Infinity;

  constructor(
    private readonly stream: Output,
    opts: ProgressOptions = {},
  ) {
    this.isTTY = opts.isTTY ?? (stream.isTTY === true && process.env.TERM !== 'dumb');
    // A terminal of unknown size (a pty nobody sized, as under `script`) says 0 columns.
    this.columns = opts.columns || stream.columns || 80;
    this.now = opts.now ?? Date.now;
    this.minIntervalMs = opts.minIntervalMs ?? 100;
  }

  /** `done` items of `total` (when known) in step `label`; a new label ends the step before it. */
  update(label: string, done: number, total?: number): void {
    if (this.step && this.step.label !== label) this.finish();
    const now = this.now();
    let first = false;
    if (!this.step) {
      this.step = { label, done, total, startedAt: now };
      first = true;
    } else {
      this.step.done = done;
      if (total !== undefined) this.step.total = total;
    }
    if (!this.isTTY || (!first && now - this.lastDraw < this.minIntervalMs)) return;
    this.lastDraw = now;
    this.draw(this.liveLine(this.step), false);
  }

  /** End the current step: its closing line stays. Call it once the work is done. */
  finish(): void {
    this.close((s, took) => `${s.label}: ${this.amount(s)} in ${took}`);
  }

  /** The work stopped (an error follows): say where, so the error message starts on a line of its own. */
  abort(): void {
    this.close((s, took) => `${s.label}: stopped after ${this.amount(s)} (${took})`);
  }

  private close(line: (s: Step, took: string) => string): void {
    const s = this.step;
    if (!s) return;
    this.step = undefined;
    this.draw(line(s, formatDuration(this.now() - s.startedAt)), true);
  }

  private amount(s: Step): string {
    return s.total === undefined || s.done === s.total ? String(s.done) : `${s.done} of ${s.total}`;
  }

  private liveLine(s: Step): string {
    if (s.total === undefined) return `${s.label} ${s.done}`;
    const ratio = s.total > 0 ? Math.min(1, Math.max(0, s.done / s.total)) : 1;
    const filled = Math.round(ratio * BAR_WIDTH);
    const bar = '#'.repeat(filled) + '-'.repeat(BAR_WIDTH - filled);
    return `${s.label} [${bar}] ${s.done}/${s.total} ${Math.floor(ratio * 100)}%`;
  }

  private draw(text: string, end: boolean): void {
    if (!this.isTTY) {
      if (end) this.stream.write(text + '\n');
      return;
    }
    // Only a line that will be rewritten must fit; a closing line may wrap.
    const fitted = !end && text.length >= this.columns ? text.slice(0, Math.max(1, this.columns - 1)) : text;
    this.stream.write(`\r${fitted}${ERASE_TO_END}${end ? '\n' : ''}`);
  }
}
