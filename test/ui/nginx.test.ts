import { readFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import t from 'tap';
import { authConfig } from '../helpers/auth';
import { makeCerts, startNginx, writeConfig } from '../helpers/nginx';
import { freePort } from '../helpers/process';
import { startRegistry, tempDir } from '../helpers/server';
import { requireTools } from '../helpers/tools';

// The web UI behind the shipped nginx/registry.conf (TLS, http.trustProxy: 1): pages pass with their own
// headers, the session cookie is Secure (X-Forwarded-Proto: https), the same-origin check of forms sees the
// https origin nginx serves, and /ui redirects to /ui/.

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

t.test('web UI behind the shipped nginx', async (t) => {
  if (!requireTools(t, ['nginx', 'openssl'])) return;
  const auth = authConfig(t, { alice: 'alice-pw' });
  const dir = tempDir(t, 'ui-nginx-');
  const reg = await startRegistry(t, { ...auth.overrides, http: { trustProxy: 1 }, ui: { sessionSecretFile: path.join(dir, 'ui.key') } });
  const certs = makeCerts(path.join(dir, 'certs'));
  const httpsPort = await freePort();
  const conf = writeConfig(dir, { upstreamPort: reg.port, https: httpsPort, http: await freePort() });
  await startNginx(t, dir, conf, httpsPort);
  const agent = new Agent({ ca: readFileSync(certs.ca), keepAlive: true });
  t.teardown(() => agent.destroy());
  const base = `https://127.0.0.1:${httpsPort}`;
  const call = (method: string, url: string, headers: Record<string, string> = {}, body?: string) =>
    new Promise<Res>((resolve, reject) => {
      const req = httpsRequest(new URL(url, base), { method, headers, agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });

  const page = await call('GET', '/ui/');
  t.equal(page.status, 200);
  t.match(page.headers['content-security-policy'], /^default-src 'none'/, 'the UI sets its CSP through nginx');
  t.match(page.headers['strict-transport-security'], /max-age/, 'and nginx its HSTS');
  t.match(page.body, /Sign in/);
  t.equal((await call('GET', '/ui')).status, 301, '/ui redirects');
  const css = /href="(\/ui\/static\/ui\.[0-9a-f]+\.css)"/.exec(page.body)![1]!;
  t.equal((await call('GET', css)).status, 200, 'the stylesheet');

  const form = new URLSearchParams({ username: 'alice', password: 'alice-pw', next: '/' }).toString();
  const formHeaders = { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(form.length) };
  const foreign = await call('POST', '/ui/login', { ...formHeaders, origin: `http://127.0.0.1:${httpsPort}` }, form);
  t.equal(foreign.status, 403, 'an http:// origin is not the https site nginx serves');
  const login = await call('POST', '/ui/login', { ...formHeaders, origin: base }, form);
  t.equal(login.status, 303, 'signed in');
  const cookie = String(login.headers['set-cookie']);
  t.match(cookie, /registry_session=[^;]+; Path=\/ui; Max-Age=\d+; HttpOnly; SameSite=Strict; Secure/, 'Secure over TLS');
  const signed = await call('GET', '/ui/', { cookie: cookie.split(';')[0]! });
  t.match(signed.body, /Signed in as <b>alice<\/b>/);
});
