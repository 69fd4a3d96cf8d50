import { ConfigError } from './errors';

// Durations in the configuration, one syntax for every key: a number of seconds, or a number with a unit,
// e.g. 250ms, 5s, 1.5m, 8h, 2d.

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** The duration in milliseconds; never negative. */
export function parseDurationMs(value: unknown, where: string): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new ConfigError(`${where}: must be a duration of at least 0, got ${value}`);
    return Math.round(value * 1000);
  }
  const m = /^(-?\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(String(value ?? '').trim());
  if (!m) throw new ConfigError(`${where}: expected a duration such as 500ms, 5s, 2m, 1h, 1d or a number of seconds, got ${JSON.stringify(value)}`);
  const n = Number(m[1]);
  if (n < 0) throw new ConfigError(`${where}: must be a duration of at least 0, got ${JSON.stringify(value)}`);
  return Math.round(n * UNIT_MS[(m[2] ?? 's') as keyof typeof UNIT_MS]);
}

/** The duration in seconds, at least `minSeconds` (said in the error as the key's own limit). */
export function parseDurationSeconds(value: unknown, where: string, minSeconds = 0): number {
  const seconds = parseDurationMs(value, where) / 1000;
  if (seconds < minSeconds) {
    const min = minSeconds === 60 ? 'one minute' : minSeconds === 1 ? 'one second' : `${minSeconds} seconds`;
    throw new ConfigError(`${where}: must be at least ${min}, got ${JSON.stringify(value)}`);
  }
  return seconds;
}
