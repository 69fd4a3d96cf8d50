import t from 'tap';
import { count, formatBytes, formatDuration } from '../../src/cli/format';

t.test('byte sizes read like du -h, in binary units', async (t) => {
  const cases: [number, string][] = [
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1 KiB'],
    [1536, '1.5 KiB'],
    [10 * 1024 * 1024, '10 MiB'],
    [1.2 * 1024 ** 3, '1.2 GiB'],
    [9.96 * 1024 ** 2, '10 MiB'],
    [1023.7 * 1024, '1 MiB'],
    [3 * 1024 ** 5, '3 PiB'],
  ];
  for (const [n, s] of cases) t.equal(formatBytes(n), s, `${n}`);
});

t.test('durations', async (t) => {
  const cases: [number, string][] = [
    [0, '0 ms'],
    [340, '340 ms'],
    [1400, '1.4 s'],
    [9949, '9.9 s'],
    [42_000, '42 s'],
    [185_000, '3 min 5 s'],
    [7_800_000, '2 h 10 min'],
  ];
  for (const [ms, s] of cases) t.equal(formatDuration(ms), s, `${ms}`);
});

t.test('counts', async (t) => {
  t.equal(count(1, 'blob'), '1 blob');
  t.equal(count(0, 'blob'), '0 blobs');
  t.equal(count(12, 'blob'), '12 blobs');
});
