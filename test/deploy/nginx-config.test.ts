import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { makeCerts, nginxTest, renderConfig, SHIPPED_CONF, writeConfig } from '../helpers/nginx';
import { freePort } from '../helpers/process';
import { tempDir } from '../helpers/server';
import { requireTools } from '../helpers/tools';

// The shipped nginx/registry.conf passes `nginx -t` (Debian nginx 1.22) with certificates from the
// shipped nginx/make-certs.sh, and says what the deployment relies on.

/** Directives (outside comments) of the shipped config, whitespace-normalised. */
function directives(conf: string): string[] {
  return conf
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim().replace(/\s+/g, ' '))
    .filter(Boolean);
}

t.test('make-certs.sh: a CA and a server certificate for the given names, verifiable with the CA', async (t) => {
  if (!requireTools(t, ['openssl'])) return;
  const dir = tempDir(t, 'certs-');
  const certs = makeCerts(dir, ['registry.example.com', '127.0.0.1', '::1']);
  const text = spawnSync('openssl', ['x509', '-in', certs.cert, '-noout', '-text'], { encoding: 'utf8' }).stdout;
  t.match(text, /DNS:registry\.example\.com, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/, 'SANs are the names and IPs given');
  t.match(text, /TLS Web Server Authentication/, 'extendedKeyUsage serverAuth');
  t.match(text, /CA:FALSE/, 'not a CA');
  const verify = spawnSync('openssl', ['verify', '-CAfile', certs.ca, certs.cert], { encoding: 'utf8' });
  t.equal(verify.status, 0, 'server.crt verifies against ca.crt', { output: verify.stdout + verify.stderr });

  const defaults = makeCerts(tempDir(t, 'certs-'));
  const dtext = spawnSync('openssl', ['x509', '-in', defaults.cert, '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' }).stdout;
  t.match(dtext, /DNS:localhost, IP Address:127\.0\.0\.1/, 'default names: localhost and 127.0.0.1');
});

t.test('the shipped config carries the settings the deployment relies on', async (t) => {
  const d = directives(readFileSync(SHIPPED_CONF, 'utf8'));
  for (const want of [
    'ssl_protocols TLSv1.2 TLSv1.3;',
    'listen 443 ssl http2;',
    'client_max_body_size 0;',
    'proxy_request_buffering off;',
    'proxy_buffering off;',
    'proxy_http_version 1.1;',
    'proxy_set_header Connection "";',
    'proxy_set_header Host $http_host;',
    'proxy_set_header X-Forwarded-Host $http_host;',
    'proxy_set_header X-Forwarded-Proto $scheme;',
    'proxy_set_header X-Forwarded-For $remote_addr;',
    'proxy_read_timeout 900s;',
    'proxy_send_timeout 900s;',
    'keepalive 32;',
    'location /v2/ {',
    'location /v1/ {',
    'location = /_ping {',
    'location = /token {',
    'return 308 https://$host$request_uri;',
  ]) {
    t.ok(d.includes(want), want);
  }
  t.notOk(d.some((l) => /^auth_basic\b/.test(l)), 'no auth_basic: authentication is the registry\'s');
  t.notOk(d.some((l) => /^proxy_hide_header\b/.test(l)), 'no response header hidden (Docker-Distribution-Api-Version passes)');
  t.notOk(d.some((l) => /^ssl_protocols\b.*TLSv1(\.1)?\b(?!\.)/.test(l)), 'no TLS 1.0/1.1');
});

t.test('nginx -t passes on the shipped config (temp copy: ports, paths, fresh certificates)', async (t) => {
  if (!requireTools(t, ['nginx', 'openssl'])) return;
  const dir = tempDir(t, 'nginx-conf-');
  makeCerts(path.join(dir, 'certs'));
  const ports = { upstreamPort: await freePort(), https: await freePort(), http: await freePort() };
  const conf = writeConfig(dir, ports);

  // The copy differs from the shipped file only in what renderConfig substitutes.
  const rendered = readFileSync(conf, 'utf8');
  t.equal(rendered, renderConfig(dir, ports));
  t.notMatch(directives(rendered).join('\n'), /registry:5000|\/etc\/nginx\/|\/var\/log\/nginx|\/run\/nginx\.pid|\/var\/www/, 'no machine path or host left');

  const r = nginxTest(conf, dir);
  t.equal(r.code, 0, 'nginx -t exits 0', { output: r.output });
  t.match(r.output, /syntax is ok/);
  t.match(r.output, /test is successful/);
  t.notMatch(r.output, /\[(warn|emerg|alert|crit)\]/, 'no warnings', { output: r.output });

  // And the check is real: without the certificate the same config fails.
  rmSync(path.join(dir, 'certs', 'server.crt'));
  const broken = nginxTest(conf, dir);
  t.not(broken.code, 0, 'nginx -t fails when server.crt is missing');
  t.match(broken.output, /server\.crt/);
});
