import { spawn } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { containersEnv } from '../helpers/containers';
import { waitExit } from '../helpers/daemon';
import { makeOciLayout } from '../helpers/oci-layout';
import { freePort } from '../helpers/process';
import { parsePrometheusText, valueOf, type Family } from '../helpers/prom-text';
import { startRegistry, tempDir } from '../helpers/server';
import { findTool, requireTools } from '../helpers/tools';

// Acceptance (issue 30): after a skopeo push and pull, /metrics parses and its counters moved by what
// those transfers were; and Debian's Prometheus server scrapes the registry, and a PromQL query over its
// HTTP API returns the request rate.

async function metricsOf(url: string, headers: Record<string, string> = {}): Promise<Map<string, Family>> {
  const res = await fetch(`${url}/metrics`, { headers });
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  return parsePrometheusText(await res.text());
}

t.test('skopeo push and pull move the request, byte and upload counters by what was sent', async (t) => {
  if (!requireTools(t, ['skopeo'])) return;
  const reg = await startRegistry(t, { metrics: { enabled: true } });
  const env = await containersEnv(t);
  const work = tempDir(t, 'metrics-skopeo-');
  const src = path.join(work, 'src');
  const img = makeOciLayout(src, { tag: 'v1', layers: 3, layerBytes: 20_000, seed: 30 });
  const blobDigests = [...img.layerDigests, img.configDigest];
  const blobBytes = blobDigests.reduce((n, d) => n + statSync(path.join(src, 'blobs', 'sha256', d.slice(7))).size, 0);
  const ref = `docker://${reg.host}/metrics/skopeo:v1`;
  const manifest = '/v2/<name>/manifests/<reference>';
  const blob = '/v2/<name>/blobs/<digest>';

  const before = await metricsOf(reg.url);
  const push = await env.skopeo(['copy', '--dest-tls-verify=false', `oci:${src}:v1`, ref]);
  t.equal(push.code, 0, 'skopeo push', { stderr: push.stderr.slice(-2000) });
  const pushed = await metricsOf(reg.url);
  const delta = (after: Map<string, Family>, base: Map<string, Family>, name: string, labels: Record<string, string> = {}) =>
    valueOf(after, name, labels) - valueOf(base, name, labels);

  t.equal(delta(pushed, before, 'registry_http_requests_total', { method: 'PUT', route: manifest, code: '201' }), 1, 'one manifest PUT');
  const finished = delta(pushed, before, 'registry_http_requests_total', { method: 'PUT', route: '/v2/<name>/blobs/uploads/<uuid>', code: '201' });
  t.equal(finished, blobDigests.length, 'one finished upload per blob');
  t.equal(delta(pushed, before, 'registry_uploads_completed_total'), blobDigests.length + 1, 'the blobs and the manifest were stored');
  t.equal(delta(pushed, before, 'registry_upload_bytes_total'), blobBytes + img.manifest.length, 'upload bytes: exactly the blobs and the manifest');
  const received = delta(pushed, before, 'registry_http_received_bytes_total', { protocol: 'v2' });
  t.ok(received >= blobBytes + img.manifest.length, `v2 bytes received (${received}) cover the bodies (${blobBytes + img.manifest.length})`);
  t.ok(received < blobBytes + img.manifest.length + 64 * 1024, 'and not much more: request lines and headers');
  t.equal(valueOf(pushed, 'registry_uploads_in_flight'), 0, 'no upload in flight afterwards');
  // (registry_blobs is read from the index at most every 10 s: test/metrics/http.test.ts checks it.)

  const pull = await env.skopeo(['copy', '--src-tls-verify=false', ref, `oci:${path.join(work, 'back')}:v1`]);
  t.equal(pull.code, 0, 'skopeo pull', { stderr: pull.stderr.slice(-2000) });
  const pulled = await metricsOf(reg.url);
  t.equal(delta(pulled, pushed, 'registry_http_requests_total', { method: 'GET', route: blob, code: '200' }), blobDigests.length, 'one blob GET per blob');
  t.ok(delta(pulled, pushed, 'registry_http_requests_total', { method: 'GET', route: manifest, code: '200' }) >= 1, 'the manifest GET');
  const sent = delta(pulled, pushed, 'registry_http_sent_bytes_total', { protocol: 'v2' });
  t.ok(sent >= blobBytes + img.manifest.length, `v2 bytes sent (${sent}) cover the blobs and the manifest`);
  t.ok(sent < blobBytes + img.manifest.length + 64 * 1024, 'and not much more');
  t.equal(delta(pulled, pushed, 'registry_upload_bytes_total'), 0, 'a pull uploads nothing');
  t.ok(delta(pulled, pushed, 'registry_storage_operations_total', { operation: 'openWriter' }) + delta(pulled, pushed, 'registry_storage_operations_total', { operation: 'read' }) >= 1, 'blobs were read from storage');
});

t.test('Prometheus scrapes the registry; PromQL over its HTTP API returns the request rate', async (t) => {
  if (!requireTools(t, ['prometheus'])) return;
  const dir = tempDir(t, 'metrics-prometheus-');
  const passwordFile = path.join(dir, 'scrape-password');
  writeFileSync(passwordFile, 'prom-secret\n');
  const metricsPort = await freePort();
  const reg = await startRegistry(t, { metrics: { enabled: true, addr: `127.0.0.1:${metricsPort}`, user: 'prometheus', passwordFile } });

  const promPort = await freePort();
  const config = path.join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      '  - job_name: registry',
      '    basic_auth:',
      '      username: prometheus',
      `      password_file: ${passwordFile}`,
      '    static_configs:',
      `      - targets: ['127.0.0.1:${metricsPort}']`,
      '',
    ].join('\n'),
  );
  const child = spawn(
    findTool('prometheus')!,
    [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr!.on('data', (d) => (log = (log + d).slice(-4000)));
  t.teardown(async () => {
    child.kill('SIGTERM');
    if (!(await waitExit(child, 10_000))) child.kill('SIGKILL');
  });

  const api = `http://127.0.0.1:${promPort}/api/v1`;
  const query = async (q: string) => {
    const res = await fetch(`${api}/query?query=${encodeURIComponent(q)}`);
    const body = (await res.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    if (body.status !== 'success') throw new Error(`query ${q}: ${JSON.stringify(body)}`);
    return body.data.result;
  };

  // Traffic for it to see, while we wait for two scrapes within the rate window.
  const rateQuery = 'sum(rate(registry_http_requests_total{route="/v2/"}[15s]))';
  let rate = 0;
  let up: string | undefined;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && child.exitCode === null) {
    for (let i = 0; i < 5; i++) await (await fetch(`${reg.url}/v2/`)).arrayBuffer();
    try {
      up = (await query('up{job="registry"}'))[0]?.value[1];
      rate = Number((await query(rateQuery))[0]?.value[1] ?? 0);
      if (up === '1' && rate > 0) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  t.equal(up, '1', 'the scrape succeeds (up == 1), with the Basic credentials from a password file', { log });
  t.ok(rate > 0, `PromQL ${rateQuery} = ${rate} requests/s`, { log });

  // The series it stored are ours, bounded labels only.
  const routes = await query('count by (route) (registry_http_requests_total)');
  t.ok(routes.some((r) => r.metric.route === '/v2/'), 'route label is the pattern');
  const wrong = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  t.equal(wrong.status, 401, 'the listener still refuses anonymous scrapes');
});
