import t from 'tap';
import { ByteCache } from '../../src/storage/byte-cache';

t.test('LRU by total bytes', async (t) => {
  const c = new ByteCache(100);
  c.set('a', Buffer.alloc(20));
  c.set('b', Buffer.alloc(20));
  c.set('c', Buffer.alloc(20));
  t.ok(c.get('a'), 'a used: now the most recent');
  c.set('d', Buffer.alloc(25));
  c.set('e', Buffer.alloc(25));
  t.notOk(c.get('b'), 'least recently used went first');
  t.ok(c.get('a'));
  t.ok(c.get('e'));
  c.set('big', Buffer.alloc(26));
  t.notOk(c.get('big'), 'entries over a quarter of the budget are not kept');
});
