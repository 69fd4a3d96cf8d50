// Byte counts as people write them in config.yml ("10GiB", "500 MB") and read them in messages.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** 0 B, 512 B, 1.2 KiB, 10 MiB, 1.2 GiB: one decimal below 10, binary units as `du -h`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 1024) return `${Math.round(bytes)} B`;
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  let text = value < 10 ? value.toFixed(1).replace(/\.0$/, '') : String(Math.round(value));
  // 1023.7 KiB rounds to "1024": say 1 MiB instead.
  if (text === '1024' && unit < UNITS.length - 1) {
    text = '1';
    unit++;
  }
  return `${text} ${UNITS[unit]}`;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*([kmgtp]i?b?|b)?$/i;
const POWERS: Record<string, number> = { '': 0, b: 0, k: 1, m: 2, g: 3, t: 4, p: 5 };

/**
 * A byte count: a non-negative integer, or a number with a unit: KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB
 * powers of 1024 (K, M, G, T alone: 1024, as `du` and Kubernetes' Ki read them). Throws a message saying why not.
 */
export function parseByteSize(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`expected a whole number of bytes, at least 0 (got ${value})`);
    return value;
  }
  const m = typeof value === 'string' ? SIZE.exec(value.trim()) : null;
  if (!m) throw new Error(`expected a size such as 500MiB, 10GiB or 2TB (got ${JSON.stringify(value)})`);
  const unit = (m[2] ?? '').toLowerCase();
  const binary = unit.length === 1 ? unit !== 'b' : unit.includes('i');
  const bytes = Number(m[1]) * (binary ? 1024 : 1000) ** POWERS[unit[0] ?? '']!;
  if (!Number.isSafeInteger(Math.round(bytes))) throw new Error(`size ${JSON.stringify(value)} is too large`);
  return Math.round(bytes);
}
