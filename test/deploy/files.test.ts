import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/load';
import { freePort, ROOT } from '../helpers/process';
import { startRegistry } from '../helpers/server';

// The deployment files agree with the code and with each other, without docker: every REGISTRY_*
// variable in the Dockerfile and docker-compose.yml is a real configuration key with a valid value, the
// compose mounts are where nginx/registry.conf looks, the build context holds what the Dockerfile copies,
// and the image's HEALTHCHECK command works against a real registry.

const read = (f: string) => readFileSync(path.join(ROOT, f), 'utf8');
const dockerfile = read('Dockerfile');
const compose = parseYaml(read('docker-compose.yml')) as {
  services: Record<string, { environment?: Record<string, string>; volumes?: string[]; ports?: string[]; depends_on?: Record<string, { condition: string }>; build?: string }>;
  volumes: Record<string, unknown>;
};
const nginxConf = read('nginx/registry.conf');

/** Dockerfile instructions with continuation lines joined. */
function instructions(text: string): string[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

/** ENV of the runtime (last) stage, as name -> value. */
function runtimeEnv(): Record<string, string> {
  const all = instructions(dockerfile);
  const lastFrom = all.map((l) => l.startsWith('FROM ')).lastIndexOf(true);
  const env: Record<string, string> = {};
  for (const l of all.slice(lastFrom).filter((l) => l.startsWith('ENV '))) {
    for (const m of l.slice(4).matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S+)/g)) env[m[1]!] = m[2]!;
  }
  return env;
}

t.test('Dockerfile: its REGISTRY_* variables are real keys and put all state under /data', async (t) => {
  const env = runtimeEnv();
  const config = parseConfig(read('config.yml'), env, 'config.yml');
  t.equal(config.http.addr, '0.0.0.0:5000');
  t.equal(config.storage.local.root, '/data/blobs');
  t.equal(config.index.path, '/data/index.db');
  t.equal(config.auth.token.secretFile, '/data/token.key');
  const all = instructions(dockerfile);
  t.ok(all.includes('VOLUME /data'), 'VOLUME /data');
  t.ok(all.includes('EXPOSE 5000'), 'EXPOSE 5000');
  t.ok(all.includes('USER registry'), 'runs as the registry user');
  t.ok(all.some((l) => l.startsWith('ARG BASE_IMAGE=node:20-bookworm-slim')), 'ARG BASE_IMAGE defaults to the official Node 20 slim image');
});

t.test('.dockerignore lets in exactly what the Dockerfile copies from the context', async (t) => {
  const allow = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('!'))
    .map((l) => l.slice(1).replace(/\/$/, ''));
  const sources = instructions(dockerfile)
    .filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
    .flatMap((l) => l.split(/\s+/).slice(1, -1));
  t.same([...new Set(sources)].sort(), [...allow].sort(), 'allowlist = COPY sources');
  t.match(read('.dockerignore'), /^\*$/m, 'everything else is ignored (node_modules, dist, data, .git, ...)');
});

t.test('docker-compose.yml: registry behind nginx, wired the way nginx/registry.conf expects', async (t) => {
  const { registry, nginx } = compose.services;
  t.ok(registry && nginx, 'services registry and nginx');
  const config = parseConfig(read('config.yml'), { ...runtimeEnv(), ...registry!.environment }, 'config.yml');
  t.equal(config.http.trustProxy, 1, 'trustProxy: the one nginx in front is the one hop trusted');
  t.equal(config.auth.htpasswd.path, '/data/htpasswd', 'users in the data volume');
  t.equal(config.auth.token.enabled, true, 'token service on');
  t.ok(registry!.volumes?.includes('registry-data:/data'), 'data in a named volume at /data');
  t.ok('registry-data' in compose.volumes, 'declared');
  t.notOk(registry!.ports, 'the registry publishes no port: only through nginx');

  t.match(nginxConf, /server registry:5000 max_fails=0;/, 'nginx upstream is the compose service on the image port');
  t.ok(nginx!.volumes?.includes('./nginx/registry.conf:/etc/nginx/nginx.conf:ro'), 'nginx runs the shipped config');
  t.ok(nginx!.volumes?.includes('./certs:/etc/nginx/certs:ro'), 'certificates mounted where the config reads them');
  t.match(nginxConf, /ssl_certificate\s+\/etc\/nginx\/certs\/server\.crt;/);
  t.match(nginxConf, /ssl_certificate_key\s+\/etc\/nginx\/certs\/server\.key;/);
  t.same(nginx!.ports, ['80:80', '443:443'], 'ports 80 and 443');
  t.equal(nginx!.depends_on?.registry?.condition, 'service_healthy', 'nginx starts once the registry is healthy');
});

t.test("the image's HEALTHCHECK command: exit 0 against a live registry, 1 when nothing answers", async (t) => {
  const line = instructions(dockerfile).find((l) => l.startsWith('HEALTHCHECK '))!;
  const cmd = JSON.parse(line.slice(line.indexOf('CMD ') + 4)) as string[];
  t.equal(cmd[0], 'node', 'runs node (no curl in slim images)');
  const reg = await startRegistry(t);
  const runCheck = (addr: string) =>
    new Promise<number | null>((resolve) => {
      const p = spawn(process.execPath, cmd.slice(1), { env: { ...process.env, REGISTRY_HTTP_ADDR: addr }, stdio: 'ignore' });
      p.on('close', resolve);
    });
  t.equal(await runCheck(`0.0.0.0:${reg.port}`), 0, 'healthy (0.0.0.0 probes 127.0.0.1)');
  t.equal(await runCheck(`127.0.0.1:${reg.port}`), 0, 'healthy (explicit address)');
  t.equal(await runCheck(`127.0.0.1:${await freePort()}`), 1, 'unhealthy when nothing listens');
});

t.test('docker-compose.ha.yml: three replicas on PostgreSQL and S3, sharing their secrets, all named `registry` for nginx', async (t) => {
  type Service = { environment?: Record<string, string>; volumes?: string[]; secrets?: string[]; networks?: Record<string, { ipv4_address?: string; aliases?: string[] }>; depends_on?: Record<string, { condition: string }>; ports?: string[] };
  const ha = parseYaml(read('docker-compose.ha.yml'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown>; secrets: Record<string, { file: string }> };
  // Compose's interpolation: ${NAME:-default} -> default, ${NAME:?message} -> a value the operator must give.
  const interpolate = (v: string) => v.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1').replace(/\$\{[A-Z0-9_]+:\?[^}]*\}/g, 'my-bucket');
  const replicas = ['registry-1', 'registry-2', 'registry-3'];
  const addresses = new Set<string>();
  for (const name of replicas) {
    const s = ha.services[name]!;
    t.ok(s, name);
    const env = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]));
    const config = parseConfig(read('config.yml'), { ...runtimeEnv(), ...env }, 'config.yml');
    t.equal(config.index.driver, 'postgres', `${name}: PostgreSQL index`);
    t.equal(config.storage.driver, 's3', `${name}: S3 storage`);
    t.equal(config.index.postgres.passwordFile, '/run/secrets/postgres-password', `${name}: password from the secret`);
    t.ok(s.secrets?.includes('postgres-password'), `${name}: gets the secret`);
    t.ok(s.volumes?.includes('registry-shared:/data'), `${name}: the shared volume at /data`);
    for (const file of [config.auth.token.secretFile, config.auth.htpasswd.path, config.ui.sessionSecretFile]) t.match(file, /^\/data\//, `${name}: ${file} on the shared volume`);
    t.same(s.networks?.backend?.aliases, ['registry'], `${name}: answers to registry (nginx/registry.conf's upstream)`);
    addresses.add(s.networks!.backend!.ipv4_address!);
    t.equal(s.depends_on?.postgres?.condition, 'service_healthy', `${name}: starts once PostgreSQL is ready`);
    t.notOk(s.ports, `${name}: publishes no port`);
  }
  t.equal(addresses.size, 3, 'fixed, distinct addresses (nginx resolves `registry` once)');
  t.match(nginxConf, /server registry:5000 max_fails=0;/);
  const nginx = ha.services.nginx!;
  t.ok(nginx.volumes?.includes('./nginx/registry.conf:/etc/nginx/nginx.conf:ro'), 'nginx runs the shipped config');
  t.same(Object.keys(nginx.depends_on ?? {}).sort(), replicas, 'nginx waits for the three replicas');
  const pg = ha.services.postgres!;
  t.equal(pg.environment?.POSTGRES_PASSWORD_FILE, '/run/secrets/postgres-password', 'PostgreSQL takes its password from the same secret');
  t.equal(ha.secrets['postgres-password']?.file, './secrets/postgres-password');
  t.ok('registry-shared' in ha.volumes && 'postgres-data' in ha.volumes, 'volumes declared');
});
