import t from 'tap';
import { ReadCache } from '../../src/index/postgres/read-cache';

// The memory PostgreSQL reads may be answered from (its change feed is tested in postgres-read-cache).

function counting(rows: unknown[]) {
  const read = async () => {
    read.calls++;
    return rows.map((r) => ({ ...(r as object) }));
  };
  read.calls = 0;
  return read;
}

t.test('a kept read is answered from memory until its repository changes', async (t) => {
  const cache = new ReadCache(() => true);
  const read = counting([{ digest: 'a' }]);
  t.same(await cache.rows('r/one', 'k', read), [{ digest: 'a' }]);
  t.same(await cache.rows('r/one', 'k', read), [{ digest: 'a' }]);
  t.equal(read.calls, 1, 'read once');
  t.equal(cache.hits, 1);
  t.throws(() => ((cache as unknown as { repos: Map<string, Map<string, { rows: { digest: string }[] }>> }).repos.get('r/one')!.get('k')!.rows[0]!.digest = 'b'), 'kept rows cannot be changed by a reader');

  cache.changed('r/other');
  await cache.rows('r/one', 'k', read);
  t.equal(read.calls, 1, 'another repository changing keeps it');
  cache.changed('r/one');
  await cache.rows('r/one', 'k', read);
  t.equal(read.calls, 2, 'its own changing drops it');
  cache.changed(null);
  await cache.rows('r/one', 'k', read);
  t.equal(read.calls, 3, 'a change of any repository drops it');
});

t.test('a read under way while anything changes is answered but not kept', async (t) => {
  const cache = new ReadCache(() => true);
  for (const change of ['r/one', 'r/elsewhere', null]) {
    let release!: () => void;
    const read = async () => {
      await new Promise<void>((r) => (release = r));
      return [{ digest: 'old' }];
    };
    const pending = cache.rows('r/one', 'k', read);
    await new Promise((r) => setImmediate(r));
    cache.changed(change);
    release();
    t.same(await pending, [{ digest: 'old' }], 'the reader gets what it read');
    const again = counting([{ digest: 'new' }]);
    t.same(await cache.rows('r/one', 'k', again), [{ digest: 'new' }], `not kept after a change of ${change ?? 'every repository'}`);
    t.equal(again.calls, 1);
    cache.changed(null);
  }
});

t.test('while the change feed cannot vouch for memory, every read goes to the database', async (t) => {
  let fresh = true;
  const cache = new ReadCache(() => fresh);
  const read = counting([{ digest: 'a' }]);
  await cache.rows('r', 'k', read);
  fresh = false;
  await cache.rows('r', 'k', read);
  await cache.rows('r', 'k', read);
  t.equal(read.calls, 3, 'kept rows are not used');
  fresh = true;
  await cache.rows('r', 'k', read);
  t.equal(read.calls, 3, 'and are used again once it can (it empties memory itself when it reconnects)');

  // A read that began while fresh and ended while not is not kept either.
  cache.changed(null);
  const slow = async () => {
    fresh = false;
    return [{ digest: 'b' }];
  };
  await cache.rows('r', 'k', slow);
  fresh = true;
  const after = counting([{ digest: 'b' }]);
  await cache.rows('r', 'k', after);
  t.equal(after.calls, 1);
});

t.test('memory is bounded: past the budget it starts over', async (t) => {
  const cache = new ReadCache(() => true, 4096);
  const big = counting([{ blob: 'x'.repeat(1000) }]);
  for (let i = 0; i < 10; i++) await cache.rows('r', `k${i}`, big);
  const bytes = (cache as unknown as { bytes: number }).bytes;
  t.ok(bytes <= 4096 && bytes > 0, `${bytes} bytes kept, within 4096`);
  const huge = counting([{ blob: 'x'.repeat(10_000) }]);
  await cache.rows('r', 'huge', huge);
  await cache.rows('r', 'huge', huge);
  t.equal(huge.calls, 2, 'an entry larger than the budget is never kept');
});
