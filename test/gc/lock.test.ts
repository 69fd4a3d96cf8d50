import { spawn } from 'node:child_process';
import t from 'tap';
import { GcBusyError } from '../../src/gc/collector';
import { GcIndex } from '../../src/index/gc-index';
import { databaseBehind } from '../helpers/index-db';
import { sql } from '../../src/index/sql';
import { startRegistry, type TestRegistry } from '../helpers/server';

// One collection at a time across processes (the server's schedule and `npm run registry -- gc`): two
// would race each other's deletions. A holder that died (kill -9) or went silent does not block the next.

function gcIndexOf(reg: TestRegistry): GcIndex {
  return new GcIndex(databaseBehind(reg.app.registry.index));
}

/** A live process of this machine, to stand for another collector. */
function otherProcess(t: { teardown(fn: () => void): void }): number {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  return child.pid!;
}

t.test('a live holder makes a run fail with GcBusyError; the run goes once it lets go', async (t) => {
  const reg = await startRegistry(t, { gc: { delay: 0, interval: 0 } });
  const other = { host: require('node:os').hostname() as string, pid: otherProcess(t) };
  const gcIndex = gcIndexOf(reg);
  t.equal(await gcIndex.takeLock(other, Date.now() - 60_000, () => false), null, 'the other process takes the lock');
  await t.rejects(reg.app.registry.gc.run(), GcBusyError);
  await t.rejects(reg.app.registry.gc.run(), new RegExp(`already running \\(pid ${other.pid} on `), 'the message names the holder');
  await gcIndex.releaseLock(other);
  const report = await reg.app.registry.gc.run();
  t.equal(report.blobs, 0, 'then it runs');
  t.same(await gcIndex.takeLock(other, Date.now() - 60_000, () => false), null, 'and let go of the lock after');
});

t.test('a holder that died on this machine, or went silent, does not block', async (t) => {
  const reg = await startRegistry(t, { gc: { delay: 0, interval: 0 } });
  const gcIndex = gcIndexOf(reg);
  const host = require('node:os').hostname() as string;
  const dead = spawn('true');
  await new Promise((r) => dead.once('exit', r));
  await gcIndex.takeLock({ host, pid: dead.pid! }, 0, () => false);
  t.ok(await reg.app.registry.gc.run(), 'a killed holder (no such pid here) is taken over at once');

  await gcIndex.takeLock({ host: 'elsewhere', pid: 1 }, 0, () => false);
  await t.rejects(reg.app.registry.gc.run(), GcBusyError, 'a holder on another machine that said it is alive a moment ago blocks');
  await databaseBehind(reg.app.registry.index).run(sql('UPDATE gc_lock SET heartbeat_at = ?'), Date.now() - 61_000);
  t.ok(await reg.app.registry.gc.run(), 'silent for more than a minute: taken over');
});

t.test('runs in one process go one after another', async (t) => {
  const reg = await startRegistry(t, { gc: { delay: 0, interval: 0 } });
  const reports = await Promise.all([reg.app.registry.gc.run(), reg.app.registry.gc.run(), reg.app.registry.gc.finishDoomed()]);
  t.equal(reports.length, 3, 'none was refused as busy');
});
