import t from 'tap';
import { PostgresLeadership } from '../../src/index/postgres/leader';
import { newPostgresDatabase, sharedPostgres } from '../helpers/index-db';
import { silentRelay } from '../helpers/silent-relay';
import { findTool, requireTools } from '../helpers/tools';
import { execFileSync } from 'node:child_process';

// One replica leads the background work at a time; when its session ends, another takes over.

const quiet = { info: () => undefined, warn: () => undefined };

async function until(cond: () => boolean, ms: number): Promise<number> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - start;
}

t.test('one leader at a time; when its session ends, leadership passes within the poll interval', async (t) => {
  const url = await newPostgresDatabase();
  const a = new PostgresLeadership(url, quiet, 200);
  const b = new PostgresLeadership(url, quiet, 200);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await a.start();
  await b.start();
  t.equal(a.held, true, 'the first to try leads');
  t.equal(b.held, false);
  t.equal(await a.confirm(), true);
  t.equal(await b.confirm(), false);

  const changes: boolean[] = [];
  a.onChange((held) => changes.push(held));
  // As kill -9 of a replica would: the server ends its session.
  const cluster = await sharedPostgres();
  const killed = await cluster.admin((c) => c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tsregistry-leader' AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"));
  t.equal(killed.rowCount, 1, 'the leader\'s session was ended');
  await until(() => changes.length > 0, 5000);
  t.same(changes, [false], 'the old leader knows at once that it lost');
  // Both now race for the lock (the old leader's process lives on here; a killed one would not).
  const ms = await until(() => a.held || b.held, 5000);
  t.comment(`led again after ${ms} ms (poll interval 200 ms)`);
  await new Promise((r) => setTimeout(r, 500));
  t.equal(Number(a.held) + Number(b.held), 1, 'by exactly one replica');
  const [leader, other] = a.held ? [a, b] : [b, a];
  t.equal(await leader.confirm(), true);
  t.equal(await other.confirm(), false);

  await leader.close();
  await until(() => other.held, 5000);
  t.pass('a closed leader releases the lock; the other replica leads');
});

t.test('a leader whose connection goes silent (no packet, no reset) stops leading by itself within the query timeout', async (t) => {
  const relay = await silentRelay(t, await newPostgresDatabase());
  const leader = new PostgresLeadership(relay.url, quiet, 200);
  t.teardown(() => leader.close());
  await leader.start();
  t.equal(leader.held, true);

  const changes: boolean[] = [];
  leader.onChange((held) => changes.push(held));
  relay.silence(true);
  const ms = await until(() => changes.length > 0, 10_000);
  t.same(changes, [false], 'its poll found no answer: it stopped leading, so it no longer runs jobs or sends webhooks');
  t.comment(`stopped leading ${ms} ms after its connection went silent (poll 200 ms, query timeout 5 s)`);
});

t.test('a leader whose host vanishes: with the documented tcp_keepalives_* settings, PostgreSQL ends its session and another replica leads', async (t) => {
  // Root and iptables: the leader's host "vanishes" by dropping every packet PostgreSQL sends it (its
  // keepalive probes included), which no relay or closed socket can imitate.
  if (!requireTools(t, ['iptables'])) return;
  if (process.getuid?.() !== 0) return void t.pass('needs root for iptables', { skip: 'not root' });
  const url = await newPostgresDatabase();
  const cluster = await sharedPostgres();
  const dbName = new URL(url).pathname.slice(1);
  // docs/replicas.md advises keepalives idle 10, interval 5, count 3 (about 25 s) and tcp_user_timeout 25 s,
  // scaled down here to about 3 s. Both are needed: the leader polls, so the host may vanish while
  // PostgreSQL's answer is unacknowledged, which keepalives do not probe.
  await cluster.admin((c) => c.query(`ALTER DATABASE ${dbName} SET tcp_keepalives_idle = 1; ALTER DATABASE ${dbName} SET tcp_keepalives_interval = 1; ALTER DATABASE ${dbName} SET tcp_keepalives_count = 2; ALTER DATABASE ${dbName} SET tcp_user_timeout = 3000`), 'postgres');
  const a = new PostgresLeadership(url, quiet, 200);
  const b = new PostgresLeadership(url, quiet, 200);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await a.start();
  await b.start();
  t.equal(a.held, true);

  // This database's leader only: an earlier test's may still be ending (its relay went silent).
  const leaders = await cluster.admin((c) =>
    c.query("SELECT client_port FROM pg_stat_activity WHERE datname = $1 AND application_name = 'tsregistry-leader' AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)", [dbName]),
  );
  t.equal(leaders.rowCount, 1, 'one session holds the lock');
  const leaderPort = Number(leaders.rows[0].client_port);
  // Both ways: nothing the leader sends arrives (its polls), nothing reaches it (answers, keepalive probes).
  const iptables = findTool('iptables')!;
  const rules = ['--dport', '--sport'].map((dir) => ['OUTPUT', '-o', 'lo', '-p', 'tcp', dir, String(leaderPort), '-j', 'DROP']);
  for (const rule of rules) {
    execFileSync(iptables, ['-I', ...rule]);
    t.teardown(() => void execFileSync(iptables, ['-D', ...rule]));
  }

  const ms = await until(() => b.held, 20_000);
  t.comment(`the other replica led ${ms} ms after the leader's host vanished (keepalives: 1 s idle, 2 probes 1 s apart; tcp_user_timeout 3 s)`);
  await until(() => !a.held, 10_000);
  t.pass('and the cut-off leader stopped leading by itself (its confirm got no answer)');
});
