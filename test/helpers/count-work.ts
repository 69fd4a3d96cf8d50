import Database from 'better-sqlite3';

// Work a request does, counted instead of timed: SQLite statements run, rows handed to
// JavaScript, regular expressions run (RegExp#test goes through exec once exec is replaced).

export interface Work {
  /** Statement executions (all, get, iterate, run). */
  statements: number;
  /** Rows returned to JavaScript. */
  rows: number;
  regexTests: number;
}

/** Count the work done in this process while `fn` runs. */
export async function countWork(fn: () => Promise<void>): Promise<Work> {
  const probe = new Database(':memory:');
  const Statement = Object.getPrototypeOf(probe.prepare('SELECT 1')) as Record<string, (...a: unknown[]) => unknown>;
  probe.close();
  const counts: Work = { statements: 0, rows: 0, regexTests: 0 };
  const saved = { all: Statement.all!, get: Statement.get!, iterate: Statement.iterate!, run: Statement.run!, exec: RegExp.prototype.exec };
  Statement.all = function (this: unknown, ...a: unknown[]) {
    const out = saved.all.apply(this, a) as unknown[];
    counts.statements++;
    counts.rows += out.length;
    return out;
  };
  Statement.get = function (this: unknown, ...a: unknown[]) {
    counts.statements++;
    counts.rows++;
    return saved.get.apply(this, a);
  };
  Statement.iterate = function (this: unknown, ...a: unknown[]) {
    counts.statements++;
    return saved.iterate.apply(this, a);
  };
  Statement.run = function (this: unknown, ...a: unknown[]) {
    counts.statements++;
    return saved.run.apply(this, a);
  };
  RegExp.prototype.exec = function (this: RegExp, s: string) {
    counts.regexTests++;
    return saved.exec.call(this, s);
  };
  try {
    await fn();
  } finally {
    Object.assign(Statement, { all: saved.all, get: saved.get, iterate: saved.iterate, run: saved.run });
    RegExp.prototype.exec = saved.exec;
  }
  return counts;
}
