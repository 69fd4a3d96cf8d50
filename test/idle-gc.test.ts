import { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import t from 'tap';
import { IdleCollector, startIdleGc } from '../src/idle-gc';

const MiB = 1024 * 1024;

/** A collector over a fake heap: `garbage` grows as the test says, `spare` is kept for reuse, gc() clears garbage. */
function fake(thresholdBytes = 16 * MiB) {
  const heap = { live: 20 * MiB, garbage: 0, spare: 0, collections: 0, releases: [] as number[] };
  const collector = new IdleCollector({
    thresholdBytes,
    release: () => {
      heap.releases.push(heap.collections);
      const bytes = heap.spare;
      heap.garbage += bytes;
      heap.spare = 0;
      return bytes;
    },
    memory: () => ({ heapUsed: heap.live + heap.garbage / 2, arrayBuffers: heap.garbage / 2 + heap.spare }),
    gc: () => {
      heap.collections++;
      heap.garbage = 0;
    },
  });
  return { heap, collector };
}

/** What check() says of a collection that freed `freed` MiB, `released` of them dropped for it. */
const collected = (freed: number, released = 0) => ({ freedBytes: freed * MiB, releasedBytes: released * MiB });

t.test('collects once the server is quiet and garbage passed the threshold', async (t) => {
  const { heap, collector } = fake();
  collector.requestStarted();
  heap.garbage = 40 * MiB;
  t.equal(collector.check(), null, 'not while a request is in flight');
  collector.requestEnded();
  collector.requestStarted(); // a short request between two checks
  collector.requestEnded();
  t.equal(collector.check(), null, 'not in the interval a request started in');
  t.same(collector.check(), collected(40), 'quiet for a whole interval: collects and reports what it freed');
  t.equal(heap.collections, 1);
  t.same(heap.releases, [0], 'what is kept for reuse was let go just before the collection, never while busy');
  t.equal(collector.check(), null, 'nothing new since: no second collection');
  t.equal(heap.collections, 1);
});

t.test('spare buffers are let go when the server goes quiet, and collected however few', async (t) => {
  const { heap, collector } = fake();
  heap.spare = 2 * MiB; // a push or two: far under the threshold
  heap.garbage = 1 * MiB;
  collector.requestStarted();
  t.equal(collector.check(), null, 'kept while a request is in flight');
  t.equal(heap.spare, 2 * MiB);
  collector.requestEnded();
  t.same(collector.check(), collected(3, 2), 'once quiet, dropped, and collected with the garbage');
  t.equal(heap.spare, 0);
  t.equal(heap.collections, 1);
  t.equal(collector.check(), null, 'nothing dropped, nothing grown: no collection');
  t.equal(heap.collections, 1);
});

t.test('small growth is left to V8', async (t) => {
  const { heap, collector } = fake();
  heap.garbage = 15 * MiB;
  t.equal(collector.check(), null);
  heap.garbage = 17 * MiB;
  t.same(collector.check(), collected(17));
});

t.test('the threshold counts from what was live after the last collection', async (t) => {
  const { heap, collector } = fake();
  heap.live += 30 * MiB; // e.g. a cache filled: live, not garbage
  heap.garbage = 20 * MiB;
  t.same(collector.check(), collected(50 - 30), 'frees the garbage, the live part stays');
  heap.garbage = 10 * MiB;
  t.equal(collector.check(), null, 'the new live size is the baseline');
  t.equal(heap.collections, 1);
});

t.test('never collects under steady traffic', async (t) => {
  const { heap, collector } = fake();
  for (let i = 0; i < 10; i++) {
    heap.garbage += 30 * MiB;
    collector.requestStarted();
    collector.requestEnded();
    t.equal(collector.check(), null);
  }
  t.equal(heap.collections, 0);
  t.same(collector.check(), collected(300), 'collects once the traffic stops');
});

t.test('startIdleGc counts requests until their response closes, and stops cleanly', async (t) => {
  const server = new EventEmitter();
  const lines: string[] = [];
  const log = { info: (_obj: object, msg: string) => void lines.push(`info: ${msg}`), debug: (_obj: object, msg: string) => void lines.push(`debug: ${msg}`) };
  const saved = (globalThis as { gc?: unknown }).gc;
  t.teardown(() => void ((globalThis as { gc?: unknown }).gc = saved));

  (globalThis as { gc?: unknown }).gc = undefined;
  startIdleGc(server as unknown as Server, log)();
  t.match(lines.pop(), /^info: idle collection off: node was started without --expose-gc/);
  t.equal(server.listenerCount('request'), 0, 'without gc it does not watch anything');

  (globalThis as { gc?: unknown }).gc = () => undefined;
  const stop = startIdleGc(server as unknown as Server, log);
  t.match(lines.pop(), /^debug: idle collection on/);
  const res = new EventEmitter();
  server.emit('request', {}, res);
  t.equal(res.listenerCount('close'), 1, 'waits for the response to close');
  res.emit('close');
  stop();
  t.equal(server.listenerCount('request'), 0, 'stop removes the listener');
});
