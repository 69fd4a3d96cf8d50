import t from 'tap';
import { NotificationIndex } from '../../src/index/notification-index';
import { forEachIndex } from '../helpers/index-db';

// The notification outbox on both implementations (SQLite, PostgreSQL): events queued per endpoint, read in
// order, counted when they fail, expired, forgotten, and summed up per endpoint.

const event = (n: number) => JSON.stringify({ id: `e${n}`, action: 'push' });

forEachIndex(t, 'events are queued per endpoint and read back in order', async (t, db) => {
  const outbox = new NotificationIndex(db);
  await outbox.enqueue(['a', 'b'], 'team/app', event(1), 1000);
  await outbox.enqueue([], 'team/app', event(2), 1001);
  await outbox.enqueue(['a'], 'team/db', event(3), 1002);
  const a = await outbox.next('a', 10);
  t.match(a, [
    { endpoint: 'a', repo: 'team/app', event: event(1), createdAt: 1000, attempts: 0, lastError: null },
    { endpoint: 'a', repo: 'team/db', event: event(3), createdAt: 1002, attempts: 0, lastError: null },
  ]);
  t.ok(a[0]!.seq < a[1]!.seq, 'in the order they were queued');
  t.equal(typeof a[0]!.seq, 'number');
  t.same((await outbox.next('a', 1)).map((r) => r.event), [event(1)], 'at most n');
  t.same((await outbox.next('b', 10)).map((r) => r.event), [event(1)]);
  t.same(await outbox.next('c', 10), []);
});

forEachIndex(t, 'failures are counted, deliveries forgotten', async (t, db) => {
  const outbox = new NotificationIndex(db);
  for (let n = 1; n <= 3; n++) await outbox.enqueue(['a'], 'r', event(n), 1000 + n);
  const [e1, e2, e3] = (await outbox.next('a', 10)).map((r) => r.seq);
  t.same(await outbox.failed([e1!, e2!], 'HTTP 500'), new Map([[e1, 1], [e2, 1]]));
  t.same(await outbox.failed([e1!], 'x'.repeat(600)), new Map([[e1, 2]]));
  t.same(await outbox.failed([], 'nothing'), new Map());
  const rows = await outbox.next('a', 10);
  t.match(rows, [{ attempts: 2 }, { attempts: 1, lastError: 'HTTP 500' }, { attempts: 0, lastError: null }]);
  t.equal(rows[0]!.lastError!.length, 500, 'the error is cut to 500 characters');
  await outbox.remove([e1!, e3!]);
  await outbox.remove([]);
  t.same((await outbox.next('a', 10)).map((r) => r.seq), [e2]);
});

forEachIndex(t, 'expired events: older than the cut, of endpoints not excepted, oldest first', async (t, db) => {
  const outbox = new NotificationIndex(db);
  await outbox.enqueue(['a', 'gone'], 'r', event(1), 100);
  await outbox.enqueue(['gone'], 'r', event(2), 200);
  await outbox.enqueue(['other'], 'r', event(3), 150);
  await outbox.enqueue(['gone'], 'r', event(4), 900);
  const expired = await outbox.expired(500, ['a'], 10);
  t.same(expired.map((r) => [r.endpoint, r.event]), [['gone', event(1)], ['gone', event(2)], ['other', event(3)]]);
  t.same((await outbox.expired(500, [], 10)).map((r) => r.endpoint), ['a', 'gone', 'gone', 'other'], 'none excepted');
  t.same((await outbox.expired(500, ['a', 'gone', 'other'], 10)), []);
  t.equal((await outbox.expired(500, ['a'], 2)).length, 2, 'at most n');
});

forEachIndex(t, 'the backlog of each endpoint, and of one', async (t, db) => {
  const outbox = new NotificationIndex(db);
  t.same(await outbox.backlog(), []);
  t.same(await outbox.endpointBacklog('a'), { pending: 0, failing: 0, oldest: null }, 'owed nothing');
  await outbox.enqueue(['a', 'b'], 'r', event(1), 100);
  await outbox.enqueue(['a'], 'r', event(2), 200);
  await outbox.enqueue(['a'], 'r', event(3), 300);
  const [a1, a2, a3] = (await outbox.next('a', 10)).map((r) => r.seq);
  await outbox.failed([a2!, a3!], 'first error');
  await outbox.failed([a3!], 'later error');
  t.same(await outbox.backlog(), [
    { endpoint: 'a', pending: 3, failing: 2, oldest: 100, lastError: 'first error' },
    { endpoint: 'b', pending: 1, failing: 0, oldest: 100, lastError: null },
  ]);
  t.same(await outbox.endpointBacklog('a'), { pending: 3, failing: 2, oldest: 100 });
  await outbox.remove([a1!]);
  t.same(await outbox.endpointBacklog('a'), { pending: 2, failing: 2, oldest: 200 });
});

forEachIndex(t, 'queued inside a transaction, events come and go with the change they report', async (t, db) => {
  const outbox = new NotificationIndex(db);
  await t.rejects(
    db.transaction(async (tx) => {
      await tx(outbox).enqueue(['a'], 'r', event(1), 100);
      t.equal((await tx(outbox).next('a', 10)).length, 1, 'the transaction sees its own event');
      throw new Error('undo');
    }),
    /undo/,
  );
  t.same(await outbox.next('a', 10), [], 'rolled back with it');
  await db.transaction(async (tx) => {
    await tx(outbox).enqueue(['a'], 'r', event(2), 100);
    await tx(outbox).enqueue(['a'], 'r', event(3), 100);
  });
  t.same((await outbox.next('a', 10)).map((r) => r.event), [event(2), event(3)]);
});

forEachIndex(t, 'concurrent enqueues never share a number', async (t, db) => {
  const outbox = new NotificationIndex(db);
  await Promise.all(Array.from({ length: 20 }, (_, n) => db.transaction(async (tx) => tx(outbox).enqueue(['a', 'b'], 'r', event(n), n))));
  const rows = [...(await outbox.next('a', 100)), ...(await outbox.next('b', 100))];
  t.equal(rows.length, 40);
  t.equal(new Set(rows.map((r) => r.seq)).size, 40, 'no number twice');
});
