'use strict';
// The PostgreSQL index against SQLite, and replicas on one PostgreSQL behind nginx (issue 32, "Speed").
//
//   npm run build && node bench/postgres.js      (BENCH_ROUNDS, default 3; needs wrk, nginx, postgresql)
//
// Part 1, one replica, SQLite vs PostgreSQL, interleaved rounds with the order rotated, medians of the
// per-round ratios (as bench/notifications.js). Per round and index: a fresh server (as `npm start` runs it;
// local storage; PostgreSQL: a new database in the cluster below), then
//   1. push latency: 150 small images pushed one after the other (config and layer by monolithic POST,
//      then the manifest with a tag), p50 and p99 of the whole image push;
//   2. push throughput: small images pushed by 8 clients for 5 s, images per second;
//   3. manifest GET by tag: wrk, 16 connections, 5 s, requests per second;
// each with the CPU the registry and PostgreSQL (the postmaster and all its processes) used.
// Part 2: manifest GET by tag through nginx (round robin) to 1, 2 and 3 replicas on one PostgreSQL database
// and one storage (local with storage.local.shared where that key exists, else s3rver), wrk with 32
// connections, with the CPU of every process; "direct" is one replica without nginx. Rounds interleaved too.
// Part 3 (BENCH_PROFILE=0 skips it): where PostgreSQL's time goes, from a second cluster with
// pg_stat_statements and WAL I/O timing: statements (round trips) per image push and per GET, their
// server time, WAL flushes, and the wait for the write lock with 8 pushers.
//
// The cluster runs with fsync, full_page_writes and synchronous_commit on (PostgreSQL's defaults), so its
// commits are as durable as SQLite's (WAL fdatasync before a write is acknowledged).
//
//   BENCH_ONLY=1,3                          parts to run (default 1,2,3)
//   BENCH_BASE_DIST=/tmp/ab/dist-base       part 1 also runs that build on PostgreSQL ("postgres-base")

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { MANIFEST_TYPE, smallImage, pushSmallImage, quantile } = require('./lib/small-image');
const { Child, freePort, serverCommand, envWithoutRegistryVars, waitForServer } = require('./lib/processes');
const { rateRun, wrkScript } = require('./lib/load');
const { cpuSeconds, machineBusySeconds } = require('./lib/procfs');
const { startCluster } = require('./lib/pg-cluster');
const { startNginx } = require('./lib/nginx');
const { sleep, median, fmt, table } = require('./lib/basics');

const ROOT = path.resolve(__dirname, '..');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PROFILE = process.env.BENCH_PROFILE !== '0';
// Another build's dist/ (next to a node_modules link), run as a third setting "postgres-base" in part 1: A/B a change.
const BASE_DIST = process.env.BENCH_BASE_DIST || null;
const IMAGES = 150;
const PUSH_SECONDS = 5;
const PUSH_CLIENTS = 8;
const GET_SECONDS = 5;
const GET_CONNECTIONS = 16;
const REPLICA_CONNECTIONS = 32;
const S3RVER = path.join(ROOT, 'node_modules', 's3rver', 'bin', 's3rver.js');


/** Whether this build has storage.local.shared (local storage under replicas must be stated shared). */
function hasSharedLocal() {
  const { schema } = require(path.join(ROOT, 'dist', 'config', 'schema.js'));
  return Boolean(schema.storage.local.shared);
}

// ---------------------------------------------------------------------------------------------
// Servers

/** `storage`: { dir } for local, { s3: endpoint } for s3rver. `postgres`: a database URL, or none for SQLite. */
async function startRegistry(name, { dir, blobs = path.join(dir, 'blobs'), postgres, s3, sharedLocal, dist = null }) {
  const port = await freePort();
  const command = serverCommand({ dist });
  const env = {
    ...envWithoutRegistryVars(),
    ...command.env,
    REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
    REGISTRY_INDEX_PATH: path.join(dir, 'index.db'),
    REGISTRY_LOG_LEVEL: 'error',
    REGISTRY_GC_INTERVAL: '0',
  };
  if (postgres) Object.assign(env, { REGISTRY_INDEX_DRIVER: 'postgres', REGISTRY_INDEX_POSTGRES_URL: postgres });
  if (s3) {
    Object.assign(env, {
      REGISTRY_STORAGE_DRIVER: 's3',
      REGISTRY_STORAGE_S3_ENDPOINT: s3,
      REGISTRY_STORAGE_S3_BUCKET: 'registry',
      REGISTRY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
      REGISTRY_STORAGE_S3_ACCESS_KEY_ID: 'S3RVER',
      REGISTRY_STORAGE_S3_SECRET_ACCESS_KEY: 'S3RVER',
    });
  } else {
    env.REGISTRY_STORAGE_LOCAL_ROOT = blobs;
    if (postgres && sharedLocal) env.REGISTRY_STORAGE_LOCAL_SHARED = 'true';
  }
  const child = new Child(name);
  child.spawn(process.execPath, command.args, { cwd: dir, env });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForServer(url, child);
  } catch (err) {
    await child.stop();
    throw err;
  }
  return { name, url, addr: `127.0.0.1:${port}`, pid: child.pid, cpuSeconds: () => cpuSeconds(child.pid), stop: () => child.stop() };
}

async function startS3rver(dir) {
  const s3rver = new Child('s3rver');
  const env = { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' };
  s3rver.spawn(process.execPath, [S3RVER, '-d', dir, '-a', '127.0.0.1', '-p', '0', '--silent', '--configure-bucket', 'registry'], { cwd: ROOT, env });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const m = /listening on [^\s:]+:(\d+)/.exec(s3rver.stdout.text);
    if (m) return { endpoint: `http://127.0.0.1:${m[1]}`, pid: s3rver.pid, cpuSeconds: () => cpuSeconds(s3rver.pid), stop: () => s3rver.stop() };
    if (s3rver.exitStatus || Date.now() > deadline) throw new Error(`s3rver did not start: ${s3rver.logs()}`);
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------
// Clients


/** CPU seconds of each named process while `fn` runs, and the wall seconds. */
async function withCpu(meters, fn) {
  const before = Object.fromEntries(Object.entries(meters).map(([k, f]) => [k, f()]));
  const busy0 = machineBusySeconds();
  const t0 = performance.now();
  const result = await fn();
  const wall = (performance.now() - t0) / 1000;
  const cpu = Object.fromEntries(Object.entries(meters).map(([k, f]) => [k, f() - before[k]]));
  cpu.machine = machineBusySeconds() - busy0;
  return { result, cpu, wall };
}

async function pushSequential(url, repo, n) {
  const latencies = [];
  for (let i = 0; i < n; i++) {
    const img = smallImage();
    const t0 = performance.now();
    await pushSmallImage(url, repo, `t${i}`, img);
    latencies.push(performance.now() - t0);
  }
  return latencies;
}

async function pushParallel(url, seconds) {
  let pushed = 0;
  const until = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: PUSH_CLIENTS }, async (_, c) => {
      for (let n = 0; Date.now() < until; n++) {
        await pushSmallImage(url, `bench/par${c}`, `t${n}`, smallImage());
        pushed++;
      }
    }),
  );
  return pushed;
}

// ---------------------------------------------------------------------------------------------
// Part 1: one replica, SQLite vs PostgreSQL

async function measureSingle(setting, cluster, tmp) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-pg-reg-'));
  const db = setting === 'sqlite' ? null : await cluster.createDatabase();
  const dist = setting === 'postgres-base' ? BASE_DIST : null;
  const srv = await startRegistry(setting, { dir, postgres: db?.url, sharedLocal: hasSharedLocal(), dist });
  const meters = { registry: srv.cpuSeconds, postgres: cluster.cpuSeconds };
  try {
    const seq = await withCpu(meters, () => pushSequential(srv.url, 'bench/seq', IMAGES));
    const par = await withCpu(meters, () => pushParallel(srv.url, PUSH_SECONDS));
    const script = wrkScript(path.join(tmp, 'get.lua'), 'GET', MANIFEST_TYPE);
    const get = await withCpu(meters, () => rateRun(`${srv.url}/v2/bench/seq/manifests/t0`, script, MANIFEST_TYPE, { threads: 2, connections: GET_CONNECTIONS, seconds: GET_SECONDS }));
    const requests = get.result.requests;
    return {
      p50: median(seq.result),
      p99: quantile(seq.result, 0.99),
      pushesPerS: par.result / PUSH_SECONDS,
      getRps: get.result.value,
      // CPU milliseconds per image pushed (sequential and parallel phases together) and per GET.
      pushRegistryMs: ((seq.cpu.registry + par.cpu.registry) * 1000) / (IMAGES + par.result),
      pushPostgresMs: ((seq.cpu.postgres + par.cpu.postgres) * 1000) / (IMAGES + par.result),
      getRegistryMs: (get.cpu.registry * 1000) / requests,
      getPostgresMs: (get.cpu.postgres * 1000) / requests,
      getMachineCores: get.cpu.machine / get.wall,
      parMachineCores: par.cpu.machine / par.wall,
    };
  } finally {
    await srv.stop();
    if (db) await cluster.admin(`DROP DATABASE ${db.name} WITH (FORCE)`).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function partOne(cluster, tmp) {
  console.log(`\n== Part 1: one replica, SQLite vs PostgreSQL ${cluster.version} (fsync, full_page_writes, synchronous_commit on), ${ROUNDS} rounds ==`);
  const settings = ['sqlite', 'postgres', ...(BASE_DIST ? ['postgres-base'] : [])];
  if (BASE_DIST) console.log(`postgres-base: the build in ${BASE_DIST} (BENCH_BASE_DIST), on the same cluster`);
  const results = Object.fromEntries(settings.map((s) => [s, []]));
  for (let r = 0; r < ROUNDS; r++) {
    const order = settings.slice(r % settings.length).concat(settings.slice(0, r % settings.length));
    for (const s of order) {
      const m = await measureSingle(s, cluster, tmp);
      results[s].push(m);
      console.log(
        `round ${r + 1} ${s.padEnd(8)}: push p50 ${fmt(m.p50, 2)} ms, p99 ${fmt(m.p99, 2)} ms; ${fmt(m.pushesPerS)} images/s with ${PUSH_CLIENTS} clients; ` +
          `GET ${fmt(m.getRps, 0)} req/s; CPU ms per push: registry ${fmt(m.pushRegistryMs, 2)}, postgres ${fmt(m.pushPostgresMs, 2)}; ` +
          `per GET: registry ${fmt(m.getRegistryMs, 3)}, postgres ${fmt(m.getPostgresMs, 3)}; machine busy ${fmt(m.getMachineCores, 2)} cores during GET`,
      );
    }
  }
  const pct = (x) => `${x >= 1 ? '+' : ''}${fmt((x - 1) * 100)} %`;
  // Runs of one round are neighbours in time: the median of their ratios shrugs off the machine's drift.
  const ratio = (key, s = 'postgres', base = 'sqlite') => median(results[s].map((m, i) => m[key] / results[base][i][key]));
  const others = settings.slice(1);
  const rows = [
    ['push p50 (ms)', 'p50', 2],
    ['push p99 (ms)', 'p99', 2],
    [`push throughput, ${PUSH_CLIENTS} clients (images/s)`, 'pushesPerS', 1],
    [`manifest GET, ${GET_CONNECTIONS} connections (req/s)`, 'getRps', 0],
    ['registry CPU per image push (ms)', 'pushRegistryMs', 2],
    ['PostgreSQL CPU per image push (ms)', 'pushPostgresMs', 2],
    ['registry CPU per GET (ms)', 'getRegistryMs', 3],
    ['PostgreSQL CPU per GET (ms)', 'getPostgresMs', 3],
  ].map(([label, key, d]) => [
    label,
    ...settings.map((s) => fmt(median(results[s].map((m) => m[key])), d)),
    ...others.map((s) => (/Postgres/.test(key) ? '' : pct(ratio(key, s)))),
    ...(BASE_DIST ? [/Postgres/.test(key) ? '' : pct(ratio(key, 'postgres', 'postgres-base'))] : []),
  ]);
  console.log('\nmedians (X vs Y: the median of the per-round ratios)\n');
  console.log(table(rows, ['', ...settings, ...others.map((s) => `${s} vs sqlite`), ...(BASE_DIST ? ['postgres vs postgres-base'] : [])]));
  const goal = (key) => ratio(key) >= 0.7;
  console.log(`\ngoal (within 30 %): GET ${goal('getRps') ? 'met' : 'MISSED'} (${pct(ratio('getRps'))}), push throughput ${goal('pushesPerS') ? 'met' : 'MISSED'} (${pct(ratio('pushesPerS'))})`);
  return results;
}

// ---------------------------------------------------------------------------------------------
// Part 2: replicas behind nginx

async function measureReplicas(count, viaNginx, cluster, storage, tmp) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-pg-rep-'));
  const db = await cluster.createDatabase();
  const replicas = [];
  let nginx;
  try {
    for (let i = 0; i < count; i++) {
      const rdir = path.join(dir, `r${i}`);
      fs.mkdirSync(rdir);
      // One storage for all: a local directory stated shared, or the s3rver bucket.
      replicas.push(await startRegistry(`replica${i + 1}`, { dir: rdir, blobs: path.join(dir, 'blobs'), postgres: db.url, s3: storage.s3, sharedLocal: storage.sharedLocal }));
    }
    await pushSmallImage(replicas[0].url, 'bench/rep', 'latest', smallImage());
    const target = viaNginx ? (nginx = await startNginx(replicas.map((r) => r.addr))).url : replicas[0].url;
    // Warm every replica's manifest cache and pool (a few requests each), untimed.
    for (const r of replicas) for (let i = 0; i < 5; i++) await fetch(`${r.url}/v2/bench/rep/manifests/latest`, { headers: { accept: MANIFEST_TYPE } }).then((x) => x.arrayBuffer());
    const meters = { postgres: cluster.cpuSeconds };
    replicas.forEach((r) => (meters[r.name] = r.cpuSeconds));
    if (nginx) meters.nginx = nginx.cpuSeconds;
    if (storage.cpuSeconds) meters.s3rver = storage.cpuSeconds;
    const script = wrkScript(path.join(tmp, 'get.lua'), 'GET', MANIFEST_TYPE);
    const get = await withCpu(meters, () => rateRun(`${target}/v2/bench/rep/manifests/latest`, script, MANIFEST_TYPE, { threads: 2, connections: REPLICA_CONNECTIONS, seconds: GET_SECONDS }));
    const cores = (s) => s / get.wall;
    const perProcess = {};
    for (const [k, v] of Object.entries(get.cpu)) perProcess[k] = cores(v);
    perProcess.wrk = cores(get.result.clientCpuSeconds);
    return { rps: get.result.value, p99: get.result.p99ms, cores: perProcess };
  } finally {
    if (nginx) await nginx.stop();
    for (const r of replicas) await r.stop();
    await cluster.admin(`DROP DATABASE ${db.name} WITH (FORCE)`).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function partTwo(cluster, tmp) {
  const sharedLocal = hasSharedLocal();
  let s3;
  let storage;
  if (sharedLocal) storage = { sharedLocal: true, note: 'local storage, storage.local.shared: true (one directory)' };
  else {
    fs.mkdirSync(path.join(tmp, 's3rver'));
    s3 = await startS3rver(path.join(tmp, 's3rver'));
    storage = { s3: s3.endpoint, cpuSeconds: s3.cpuSeconds, note: 's3rver (this build has no storage.local.shared)' };
  }
  console.log(`\n== Part 2: manifest GET through nginx (round robin) to 1-3 replicas on one PostgreSQL; ${storage.note}; wrk ${REPLICA_CONNECTIONS} connections, ${GET_SECONDS} s; ${ROUNDS} rounds ==`);
  const settings = [
    ['direct', 1, false],
    ['1 replica', 1, true],
    ['2 replicas', 2, true],
    ['3 replicas', 3, true],
  ];
  const results = Object.fromEntries(settings.map(([k]) => [k, []]));
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const order = settings.slice(r % settings.length).concat(settings.slice(0, r % settings.length));
      for (const [name, count, viaNginx] of order) {
        const m = await measureReplicas(count, viaNginx, cluster, storage, tmp);
        results[name].push(m);
        const cpu = Object.entries(m.cores).map(([k, v]) => `${k} ${fmt(v, 2)}`).join(', ');
        console.log(`round ${r + 1} ${name.padEnd(10)}: ${fmt(m.rps, 0)} req/s, p99 ${fmt(m.p99, 2)} ms; CPU in cores: ${cpu}`);
      }
    }
  } finally {
    if (s3) await s3.stop();
  }
  console.log('\nmedians (CPU in cores: CPU seconds / wall seconds of the wrk run; "machine" is all busy CPU, other work on the machine included)\n');
  const keys = ['replica1', 'replica2', 'replica3', 'nginx', 'postgres', ...(s3 ? ['s3rver'] : []), 'wrk', 'machine'];
  const rows = settings.map(([name]) => {
    const rs = results[name];
    return [name, fmt(median(rs.map((m) => m.rps)), 0), fmt(median(rs.map((m) => m.p99)), 2), ...keys.map((k) => (rs[0].cores[k] === undefined ? '' : fmt(median(rs.map((m) => m.cores[k])), 2)))];
  });
  console.log(table(rows, ['', 'req/s', 'p99 ms', ...keys]));
  return results;
}

// ---------------------------------------------------------------------------------------------
// Part 3: where PostgreSQL's time goes

async function partThree(tmp, dist, label) {
  const cluster = await startCluster({ settings: ["shared_preload_libraries = 'pg_stat_statements'", 'pg_stat_statements.track_utility = on', 'track_wal_io_timing = on', 'track_io_timing = on'] });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-pg-prof-'));
  let srv;
  try {
    const db = await cluster.createDatabase();
    await cluster.admin('CREATE EXTENSION pg_stat_statements', db.name);
    srv = await startRegistry(label, { dir, postgres: db.url, sharedLocal: hasSharedLocal(), dist });
    await pushSmallImage(srv.url, 'bench/warm', 'w', smallImage()); // the pool's connections prepare their statements
    const reset = () => Promise.all([cluster.admin('SELECT pg_stat_statements_reset()', db.name), cluster.admin('SELECT pg_stat_reset_shared(\'wal\')'), cluster.admin('SELECT pg_stat_reset()', db.name)]);
    const stats = async () => ({
      statements: (await cluster.admin(`SELECT query, calls, total_exec_time FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '${db.name}' ORDER BY calls DESC, total_exec_time DESC`, db.name)).rows,
      wal: (await cluster.admin('SELECT wal_records, wal_write, wal_sync, wal_sync_time, wal_write_time FROM pg_stat_wal')).rows[0],
      xacts: (await cluster.admin(`SELECT xact_commit FROM pg_stat_database WHERE datname = '${db.name}'`)).rows[0].xact_commit,
    });
    const report = (title, s, n, wallS) => {
      const total = s.statements.reduce((a, x) => a + Number(x.calls), 0);
      const time = s.statements.reduce((a, x) => a + x.total_exec_time, 0);
      console.log(`\n${title}: ${n} operations in ${fmt(wallS, 2)} s (${fmt((wallS * 1000) / n, 2)} ms each)`);
      console.log(
        `  ${fmt(total / n, 1)} statements (round trips) per operation, ${fmt(time / n, 3)} ms of server execution per operation; ` +
          `${fmt(Number(s.xacts) / n, 2)} commits, ${fmt(Number(s.wal.wal_sync) / n, 2)} WAL fsyncs (${fmt(s.wal.wal_sync_time / Number(s.wal.wal_sync || 1), 2)} ms each) per operation`,
      );
      const rows = s.statements
        .filter((x) => Number(x.calls) >= n / 10)
        .map((x) => [x.query.replace(/\s+/g, ' ').slice(0, 90), fmt(Number(x.calls) / n, 2), fmt(x.total_exec_time / Number(x.calls), 3), fmt(x.total_exec_time / n, 3)]);
      console.log(table(rows, ['statement', 'per op', 'ms each', 'ms per op'], true).replace(/^/gm, '  '));
    };
    console.log(`\n== Part 3, ${label}: where PostgreSQL's time goes (a second cluster with pg_stat_statements and WAL I/O timing; one replica) ==`);
    await reset();
    let t0 = performance.now();
    await pushSequential(srv.url, 'bench/prof', IMAGES);
    report('image push, one after another', await stats(), IMAGES, (performance.now() - t0) / 1000);
    await reset();
    t0 = performance.now();
    const pushed = await pushParallel(srv.url, PUSH_SECONDS);
    report(`image push, ${PUSH_CLIENTS} clients`, await stats(), pushed, (performance.now() - t0) / 1000);
    await reset();
    const script = wrkScript(path.join(tmp, 'get.lua'), 'GET', MANIFEST_TYPE);
    const get = await rateRun(`${srv.url}/v2/bench/prof/manifests/t0`, script, MANIFEST_TYPE, { threads: 2, connections: GET_CONNECTIONS, seconds: GET_SECONDS });
    report(`manifest GET, ${GET_CONNECTIONS} connections`, await stats(), get.requests, GET_SECONDS);
  } finally {
    if (srv) await srv.stop();
    await cluster.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-pg-wrk-'));
  console.log(`${new Date().toISOString()}, ${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}; server: ${serverCommand().command}`);
  const only = (process.env.BENCH_ONLY ?? '1,2,3').split(',');
  const cluster = await startCluster();
  try {
    if (only.includes('1')) await partOne(cluster, tmp);
    if (only.includes('2')) await partTwo(cluster, tmp);
  } finally {
    await cluster.stop();
  }
  if (PROFILE && only.includes('3')) {
    await partThree(tmp, null, 'postgres');
    if (BASE_DIST) await partThree(tmp, BASE_DIST, 'postgres-base');
  }
  console.log(`\nload average at the end ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  fs.rmSync(tmp, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
