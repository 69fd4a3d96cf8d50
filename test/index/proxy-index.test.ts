import t from 'tap';
import { ProxyIndex } from '../../src/index/proxy-index';
import type { Digest } from '../../src/storage/digest';
import { forEachIndex } from '../helpers/index-db';

// The pull-through cache's tag confirmations on both implementations (SQLite, PostgreSQL).

const digestOf = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;

forEachIndex(t, 'lastCheck / checked: recorded, replaced, per repository and tag', async (t, db) => {
  const proxy = new ProxyIndex(db);
  t.equal(await proxy.lastCheck('hub/library/alpine', 'latest'), undefined);
  await proxy.checked('hub/library/alpine', 'latest', digestOf(1), 1_700_000_000_000);
  t.same(await proxy.lastCheck('hub/library/alpine', 'latest'), { digest: digestOf(1), checkedAt: 1_700_000_000_000 });
  await proxy.checked('hub/library/alpine', 'latest', digestOf(2), 1_700_000_000_500);
  t.same(await proxy.lastCheck('hub/library/alpine', 'latest'), { digest: digestOf(2), checkedAt: 1_700_000_000_500 }, 'replaced');
  t.equal(await proxy.lastCheck('hub/library/alpine', 'edge'), undefined);
  t.equal(await proxy.lastCheck('hub/library/busybox', 'latest'), undefined);

  const before = Date.now();
  await proxy.checked('hub/library/busybox', 'latest', digestOf(3));
  const check = (await proxy.lastCheck('hub/library/busybox', 'latest'))!;
  t.ok(check.checkedAt >= before && check.checkedAt <= Date.now(), 'now by default');
});
