import t, { type Test } from 'tap';
import path from 'node:path';
import { openDatabase } from '../../src/index/db';
import { NotificationIndex } from '../../src/index/notification-index';
import { EndpointSender, type SenderLog } from '../../src/notifications/sender';
import { parseEndpoints } from '../../src/notifications/settings';
import { verifySignature } from '../../src/notifications/signature';
import { tempDir } from '../helpers/server';
import { startReceiver, type Receiver } from '../helpers/webhook-receiver';

// One endpoint's sender against a receiver that misbehaves: error statuses, garbage, hangs, refusals.

function setup(t: Test, rx: Receiver, extra: Record<string, unknown> = {}, opts: { maxAgeMs?: number; secret?: Buffer; batch?: number } = {}) {
  const db = openDatabase(path.join(tempDir(t), 'index.db'));
  t.teardown(() => db.close());
  const outbox = new NotificationIndex(db);
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const log: SenderLog = {
    info: (obj, msg) => lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg }),
  };
  const [endpoint] = parseEndpoints([{ name: 'hook', url: rx.url, timeout: '300ms', backoff: { initial: '20ms', max: '100ms' }, ...extra }], 'e');
  const sender = new EndpointSender(endpoint!, outbox, log, { maxAgeMs: opts.maxAgeMs ?? 3_600_000, secret: opts.secret, batch: opts.batch, idleMs: 50 });
  t.teardown(() => sender.stop());
  let n = 0;
  const enqueue = async (repo: string, count = 1, createdAt = Date.now()) => {
    for (let i = 0; i < count; i++) {
      n++;
      await outbox.enqueue(['hook'], repo, JSON.stringify({ id: `e${n}`, action: 'push', target: { repository: repo } }), createdAt);
    }
    sender.wake();
  };
  return { outbox, sender, lines, enqueue };
}


const ids = (rx: Receiver) => rx.accepted().map((e) => e.id);

t.test('500 then 200: retried with the same ids, counted, delivered once, in order', async (t) => {
  const rx = await startReceiver(t);
  rx.mode = { status: 500 };
  const { sender, enqueue, lines } = setup(t, rx);
  sender.start();
  await enqueue('a/b', 3);
  await rx.waitFor(() => rx.deliveries.length >= 3);
  rx.mode = { status: 200 };
  await rx.waitFor(() => rx.accepted().length >= 3);
  await waitUntil(async () => (await sender.stats()).delivered === 3); // the answer is read after the receiver saw the POST
  t.same(ids(rx), ['e1', 'e2', 'e3']);
  t.ok(rx.deliveries.filter((d) => d.answered === '500').every((d) => d.events.map((e) => e.id).join() === 'e1,e2,e3'), 'every retry carries the same events');
  const s = await sender.stats();
  t.equal(s.delivered, 3);
  t.ok(s.failedAttempts >= 3);
  t.equal(s.lastError, 'HTTP 500');
  t.equal(s.pending, 0);
  t.ok(lines.some((l) => l.msg === 'notification delivery failed; will retry' && l.obj.error === 'HTTP 500'));
});

t.test('garbage answers and hangs are failures to retry, never a crash', async (t) => {
  const rx = await startReceiver(t);
  rx.mode = 'garbage';
  const { sender, enqueue } = setup(t, rx);
  sender.start();
  await enqueue('a/b');
  await rx.waitFor(() => rx.deliveries.length >= 2);
  const garbage = (await sender.stats()).lastError;
  rx.mode = 'hang';
  await rx.waitFor(() => rx.deliveries.length >= 4);
  await new Promise((r) => setTimeout(r, 400));
  const hung = (await sender.stats()).lastError;
  rx.mode = { status: 204 };
  await rx.waitFor(() => rx.accepted().length >= 1);
  t.ok(garbage && !/^HTTP/.test(garbage), `garbage: ${garbage}`);
  t.equal(hung, 'no answer within 300 ms');
  t.same(ids(rx), ['e1']);
  t.ok((await sender.stats()).failedAttempts >= 3);
});

t.test('408 and 429 are retried; another 4xx drops the event (with a log line), the next ones still go', async (t) => {
  const rx = await startReceiver(t);
  let answers = [408, 429];
  rx.mode = (events) => (events.some((e) => e.id === 'e2') ? { status: 422 } : { status: answers.shift() ?? 200 });
  const { sender, enqueue, lines } = setup(t, rx, {}, { batch: 10 });
  await enqueue('a/b', 4);
  sender.start();
  await rx.waitFor(() => rx.accepted().length >= 3);
  t.same(ids(rx), ['e1', 'e3', 'e4'], 'only the refused event is dropped, the others in order');
  const dropped = lines.filter((l) => l.msg.startsWith('notification dropped'));
  t.equal(dropped.length, 1);
  t.match(dropped[0]!.obj, { eventId: 'e2', endpoint: 'hook', repository: 'a/b' });
  t.equal((await sender.stats()).dropped, 1);
  answers = [];
});

t.test('maxRetries: dropped after that many retries, counted and logged', async (t) => {
  const rx = await startReceiver(t);
  rx.mode = { status: 503 };
  const { sender, enqueue, lines } = setup(t, rx, { maxRetries: 2 });
  sender.start();
  await enqueue('a/b');
  await new Promise((r) => setTimeout(r, 50));
  await t.resolves(waitUntil(async () => (await sender.stats()).dropped === 1));
  t.equal(rx.deliveries.length, 3, 'one attempt and two retries');
  t.equal((await sender.stats()).pending, 0, 'the row is gone');
  t.match(lines.find((l) => l.msg.startsWith('notification dropped'))?.msg, /failed 3 times \(maxRetries 2\)/);
});

t.test('maxAge: an event older than maxAge is dropped unsent', async (t) => {
  const rx = await startReceiver(t);
  const { sender, enqueue, lines } = setup(t, rx, {}, { maxAgeMs: 60_000 });
  await enqueue('a/b', 1, Date.now() - 120_000);
  await enqueue('a/b', 1);
  sender.start();
  await rx.waitFor(() => rx.accepted().length >= 1);
  t.same(ids(rx), ['e2']);
  t.match(lines.find((l) => l.msg.startsWith('notification dropped'))?.msg, /older than notifications\.maxAge/);
  t.equal((await sender.stats()).dropped, 1);
});

t.test('batches keep the order, and a signature header verifies', async (t) => {
  const rx = await startReceiver(t);
  const secret = Buffer.from('a secret of enough length');
  const { sender, enqueue } = setup(t, rx, { headers: { Authorization: 'Bearer xyz' } }, { batch: 5, secret });
  await enqueue('a/b', 12);
  sender.start();
  await rx.waitFor(() => rx.accepted().length >= 12);
  t.same(ids(rx), Array.from({ length: 12 }, (_, i) => `e${i + 1}`));
  t.same(rx.deliveries.map((d) => d.events.length), [5, 5, 2]);
  for (const d of rx.deliveries) {
    t.ok(verifySignature(secret, d.body, String(d.headers['x-registry-signature']), Math.floor(Date.now() / 1000)));
    t.equal(d.headers.authorization, 'Bearer xyz');
  }
});

t.test('stop() returns at once while the receiver hangs; the event stays for the next start', async (t) => {
  const rx = await startReceiver(t);
  rx.mode = 'hang';
  const { sender, enqueue, outbox } = setup(t, rx, { timeout: '30s' });
  await enqueue('a/b');
  sender.start();
  await rx.waitFor(() => rx.deliveries.length >= 1);
  const started = Date.now();
  await sender.stop();
  t.ok(Date.now() - started < 5000, 'not held by the hanging POST (its timeout is 30 s)');
  t.equal((await outbox.next('hook', 10)).length, 1);
});

async function waitUntil(pred: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
