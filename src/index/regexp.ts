import type { Db } from './db';

// SQLite has the REGEXP operator but no implementation: listings filter names with the regexes of
// name-filter.ts, compiled once each (a bounded cache: rules times users, not requests).

const MAX_CACHED = 1024;

export function registerRegexp(db: Db): void {
  const cache = new Map<string, RegExp>();
  db.function('regexp', { deterministic: true }, (pattern: unknown, value: unknown) => {
    if (typeof pattern !== 'string' || typeof value !== 'string') return null;
    let re = cache.get(pattern);
    if (!re) {
      if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
      re = new RegExp(pattern);
      cache.set(pattern, re);
    }
    return re.test(value) ? 1 : 0;
  });
}
