import { Readable } from 'node:stream';
import t from 'tap';
import { FailedLoginLimiter } from '../../src/auth/limiter';
import { parseConfig } from '../../src/config/load';
import { CellCounter, CellHistogram } from '../../src/metrics/cells';
import { MetricsGuard } from '../../src/metrics/endpoint';
import { protocolOf } from '../../src/metrics/http';
import { Metrics } from '../../src/metrics/metrics';
import { metricsCredentials } from '../../src/metrics/settings';
import { instrumentDriver } from '../../src/metrics/storage-driver';
import { StorageNotFoundError, type StorageDriver } from '../../src/storage/driver';
import { LocalDriver } from '../../src/storage/local-driver';
import { driverSuite } from '../storage/driver-suite';
import { parsePrometheusText, valueOf } from '../helpers/prom-text';
import { tempDir } from '../helpers/server';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

t.test('Metrics: subsystems add series; disabled ones count but are served nowhere', async (t) => {
  const m = Metrics.create();
  const c = m.counter({ name: 'registry_test_things_total', help: 'things', labelNames: ['kind'] });
  c.inc({ kind: 'a' }, 2);
  let refreshed = 0;
  m.beforeScrape(() => void refreshed++);
  m.gauge({ name: 'registry_test_level', help: 'level', collect() { this.set(refreshed * 10); } });
  const text = await m.scrape();
  const families = parsePrometheusText(text);
  t.equal(valueOf(families, 'registry_test_things_total', { kind: 'a' }), 2);
  t.equal(valueOf(families, 'registry_test_level'), 10, 'beforeScrape ran before the gauges were read');
  t.ok(families.has('process_resident_memory_bytes'), 'process metrics: RSS');
  t.ok(families.has('nodejs_eventloop_lag_seconds'), 'event-loop lag');
  t.ok(families.has('nodejs_gc_duration_seconds'), 'GC');
  t.match(m.contentType, /^text\/plain; version=0\.0\.4/);

  t.throws(() => m.counter({ name: 'things_total', help: 'x' }), /registry_/, 'names carry the registry_ prefix');
  t.throws(() => m.counter({ name: 'registry_test_things_total', help: 'x' }), /already been registered/, 'one name, one series');

  const off = Metrics.disabled();
  t.equal(off.enabled, false);
  off.counter({ name: 'registry_test_things_total', help: 'things' }).inc(); // the CLI's code path: works
  t.notOk(parsePrometheusText(await off.scrape()).has('process_resident_memory_bytes'), 'no process metrics when disabled');
});

t.test('protocol of a route pattern or path', async (t) => {
  t.equal(protocolOf('/v2/<name>/manifests/<reference>'), 'v2');
  t.equal(protocolOf('/v2'), 'v2');
  t.equal(protocolOf('/v1/images/:id/layer'), 'v1');
  t.equal(protocolOf('/_ping'), 'v1');
  t.equal(protocolOf('/v20/x'), 'other');
  t.equal(protocolOf('/token'), 'other');
  t.equal(protocolOf('/metrics'), 'other');
});

t.test('the storage decorator is transparent: the driver conformance suite passes through it', async (t) => {
  driverSuite(t, async (t) => {
    const d = new LocalDriver({ root: tempDir(t), fsync: false });
    await d.init();
    return instrumentDriver(d, Metrics.disabled());
  });
});

t.test('the storage decorator counts operations, errors (not "not found") and time, by driver and operation', async (t) => {
  const inner = new LocalDriver({ root: tempDir(t), fsync: false });
  await inner.init();
  t.teardown(() => inner.close());
  const m = Metrics.disabled();
  const d = instrumentDriver(inner, m);
  t.equal(d.name, 'local');
  t.equal(typeof d.stagedDigest, 'function', 'optional operations the driver has stay');
  t.equal(typeof d.redirectUrl, 'undefined', 'optional operations it lacks stay absent (the BlobStore picks its path by them)');

  let state = await d.startUpload('u1');
  state = await d.appendUpload('u1', state, 0, Readable.from([Buffer.from('hello')]));
  await t.rejects(d.read(`blobs/sha256/00/00${'0'.repeat(62)}`), StorageNotFoundError);
  await t.rejects(d.read('../outside'), /unsafe/, 'a failing read');
  await d.putRecord('refs/test/a', Buffer.from('1'));
  const keys: string[] = [];
  for await (const r of d.listRecords('refs/test/')) keys.push(r.key);
  t.same(keys, ['refs/test/a'], 'listings pass through');

  const f = parsePrometheusText(await m.scrape());
  const ops = (operation: string) => valueOf(f, 'registry_storage_operations_total', { driver: 'local', operation });
  const errors = (operation: string) => valueOf(f, 'registry_storage_operation_errors_total', { driver: 'local', operation });
  t.equal(ops('startUpload'), 1);
  t.equal(ops('appendUpload'), 1);
  t.equal(errors('appendUpload'), 0);
  t.equal(ops('read'), 2);
  t.equal(errors('read'), 1, 'the failed read is an error; not found is an answer, not an error');
  t.equal(ops('listRecords'), 1, 'a listing is one operation');
  t.equal(valueOf(f, 'registry_storage_operation_duration_seconds_count', { operation: 'read' }), 2, 'every call timed');
});

t.test('a listing that throws counts as an error', async (t) => {
  const failing = {
    name: 'fake',
    async *listRecords() {
      yield { key: 'refs/x/a', size: 1 };
      throw new Error('network');
    },
  } as unknown as StorageDriver;
  const m = Metrics.disabled();
  const d = instrumentDriver(failing, m);
  await t.rejects(
    (async () => {
      for await (const _r of d.listRecords('refs/')) void _r;
    })(),
    /network/,
  );
  const f = parsePrometheusText(await m.scrape());
  t.equal(valueOf(f, 'registry_storage_operation_errors_total', { driver: 'fake', operation: 'listRecords' }), 1);
});

t.test('MetricsGuard: Basic credentials, constant-time, failures limited per client', async (t) => {
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const open = new MetricsGuard(undefined, new FailedLoginLimiter(3, 60_000, 10));
  t.equal(open.check(undefined, '10.0.0.1'), undefined, 'no credentials configured: anyone may scrape');

  const guard = new MetricsGuard({ user: 'prom', password: 's3cret:with colon' }, new FailedLoginLimiter(3, 60_000, 10));
  t.equal(guard.check(basic('prom', 's3cret:with colon'), '10.0.0.1'), undefined, 'right credentials pass');
  t.equal(guard.check(undefined, '10.0.0.1')?.status, 401, 'none: 401');
  t.match(guard.check(undefined, '10.0.0.1')?.headers, { 'www-authenticate': 'Basic realm="metrics"' });
  t.equal(guard.check('Bearer abc', '10.0.0.1')?.status, 401, 'another scheme: 401');
  t.equal(guard.check(basic('prom', 'wrong'), '10.0.0.2')?.status, 401, 'wrong password: 401');
  t.equal(guard.check(basic('other', 's3cret:with colon'), '10.0.0.2')?.status, 401, 'wrong user: 401');
  t.equal(guard.check(basic('prom', 's3cret'), '10.0.0.2')?.status, 401, 'a prefix of the password: 401');
  t.equal(guard.check(basic('prom', 's3cret:with colon'), '10.0.0.2')?.status, 429, 'three failures: that client waits');
  t.equal(guard.check(basic('prom', 's3cret:with colon'), '10.0.0.1'), undefined, 'other clients do not');
});

t.test('metrics config: bad values stop the start naming the key', async (t) => {
  const bad = (env: Record<string, string>, pattern: RegExp, what: string) => t.throws(() => parseConfig('', env), pattern, what);
  bad({ REGISTRY_METRICS_ENABLED: 'yes' }, /REGISTRY_METRICS_ENABLED \(metrics\.enabled\): expected true or false/, 'enabled not a boolean');
  bad({ REGISTRY_METRICS_ADDR: 'localhost' }, /metrics\.addr\): expected host:port/, 'addr without a port');
  bad({ REGISTRY_METRICS_ADDR: '127.0.0.1:70000' }, /metrics\.addr\): expected host:port/, 'port out of range');
  bad({ REGISTRY_METRICS_ADDR: '127.0.0.1:5000' }, /metrics\.addr: 127\.0\.0\.1:5000 is http\.addr/, 'addr = http.addr');
  bad({ REGISTRY_METRICS_USER: 'prom' }, /metrics\.user: set metrics\.passwordFile/, 'a user without a password');
  bad({ REGISTRY_METRICS_PASSWORD: 'x' }, /metrics\.password: set metrics\.user/, 'a password without a user');
  bad({ REGISTRY_METRICS_USER: 'p', REGISTRY_METRICS_PASSWORD: 'x', REGISTRY_METRICS_PASSWORD_FILE: '/x' }, /set one of them/, 'two passwords');
  t.throws(() => parseConfig('metrics:\n  enabeld: true\n'), /unknown configuration key "metrics\.enabeld"/, 'unknown key');

  const dir = tempDir(t);
  const missing = parseConfig('', { REGISTRY_METRICS_USER: 'p', REGISTRY_METRICS_PASSWORD_FILE: path.join(dir, 'none') });
  t.throws(() => metricsCredentials(missing), /metrics\.passwordFile: cannot read .*ENOENT/, 'an unreadable password file');
  writeFileSync(path.join(dir, 'pw'), 'pass word\nignored\n');
  const ok = parseConfig('', { REGISTRY_METRICS_USER: 'p', REGISTRY_METRICS_PASSWORD_FILE: path.join(dir, 'pw') });
  t.same(metricsCredentials(ok), { user: 'p', password: 'pass word' }, 'the first line is the password');
  t.same(metricsCredentials(parseConfig('', { REGISTRY_METRICS_USER: 'p', REGISTRY_METRICS_PASSWORD: 'x' })), { user: 'p', password: 'x' });
  t.equal(parseConfig('').metrics.enabled, false, 'off by default');
});

t.test('the text-format parser is strict', async (t) => {
  t.throws(() => parsePrometheusText('x 1\n'), /before its TYPE/);
  t.throws(() => parsePrometheusText('# TYPE x counter\nx{a="1} 1\n'), /unterminated/);
  t.throws(() => parsePrometheusText('# TYPE x counter\nx one\n'), /bad value|not a sample/);
  t.throws(() => parsePrometheusText('# TYPE x counter\nx 1'), /newline/);
  t.throws(
    () => parsePrometheusText('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'),
    /out of order/,
  );
  t.throws(() => parsePrometheusText('# TYPE a counter\na 1\n# TYPE b counter\nb 1\n# TYPE a counter\n'), /twice/);
  const f = parsePrometheusText('# HELP a it\n# TYPE a counter\na{x="q\\"\\n"} 1.5e3\n');
  t.equal(valueOf(f, 'a', { x: 'q"\n' }), 1500);
});

t.test('cells: hot-path counters and histograms reach the exposition at scrape time', async (t) => {
  const m = Metrics.disabled();
  const counter = new CellCounter(m, 'registry_test_cells_total', 'cells', ['kind']);
  const a = counter.cell({ kind: 'a' });
  counter.cell({ kind: 'b' });
  a.pending += 3;
  const h = new CellHistogram(m, 'registry_test_cell_seconds', 'latency', [0.1, 1]);
  const fast = h.cell({ route: '/x' });
  for (const v of [0.05, 0.1, 0.5, 2]) fast.observe(v);
  let f = parsePrometheusText(await m.scrape());
  t.equal(valueOf(f, 'registry_test_cells_total', { kind: 'a' }), 3);
  t.ok(f.get('registry_test_cells_total')!.samples.some((s) => s.labels.kind === 'b' && s.value === 0), 'a cell shows at 0 from its creation');
  t.equal(f.get('registry_test_cell_seconds')!.type, 'histogram');
  t.equal(valueOf(f, 'registry_test_cell_seconds_bucket', { route: '/x', le: '0.1' }), 2, 'le is inclusive');
  t.equal(valueOf(f, 'registry_test_cell_seconds_bucket', { route: '/x', le: '1' }), 3, 'cumulative');
  t.equal(valueOf(f, 'registry_test_cell_seconds_bucket', { route: '/x', le: '+Inf' }), 4);
  t.equal(valueOf(f, 'registry_test_cell_seconds_count', { route: '/x' }), 4);
  t.equal(valueOf(f, 'registry_test_cell_seconds_sum', { route: '/x' }), 2.65);
  a.pending++;
  f = parsePrometheusText(await m.scrape());
  t.equal(valueOf(f, 'registry_test_cells_total', { kind: 'a' }), 4, 'a second scrape adds only what came since');
  t.throws(() => new CellHistogram(m, 'bad_name', 'x', [1]), /registry_/);
});
