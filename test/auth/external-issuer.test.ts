import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SignJWT, UnsecuredJWT, exportJWK, type JWTPayload } from 'jose';
import t from 'tap';
import { AccessControl } from '../../src/auth/access-control';
import { libtrustKeyId } from '../../src/auth/issuer-keys';
import { defaultConfig } from '../../src/config/load';
import { http } from '../helpers/http';
import { tempDir } from '../helpers/server';
import { as, startTenantRegistry } from '../helpers/tenants';
import { requireTools } from '../helpers/tools';
import { buildImage } from '../helpers/v2';

// Issue 22 item 8: tokens of an external token service (as Harbor, GitLab or a Keycloak-based issuer
// sign them) are verified with its public keys, chosen by kid or an x5c chain; keys made here.

const ISSUER = 'https://issuer.example.test';
const REALM = 'https://issuer.example.test/auth/token';

const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });

async function jwksFile(dir: string, keys: [string, KeyObject][]): Promise<string> {
  const file = path.join(dir, 'jwks.json');
  const jwks = { keys: await Promise.all(keys.map(async ([kid, key]) => ({ ...(await exportJWK(key)), kid, use: 'sig' }))) };
  writeFileSync(file, JSON.stringify(jwks));
  return file;
}

const claims = (access: { name: string; actions: string[] }[], extra: JWTPayload = {}): JWTPayload => ({
  iss: ISSUER,
  aud: 'registry',
  sub: 'gitlab-user',
  exp: Math.floor(Date.now() / 1000) + 300,
  iat: Math.floor(Date.now() / 1000),
  access: access.map((a) => ({ type: 'repository', ...a })),
  ...extra,
});

const sign = (payload: JWTPayload, key: KeyObject | Uint8Array, header: { alg: string; kid?: string; x5c?: string[] }) =>
  new SignJWT(payload).setProtectedHeader(header).sign(key);

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Push an image with one token for every request, as a client holding an issuer's token does. */
async function pushWith(url: string, repo: string, headers: Record<string, string>): Promise<number> {
  const img = buildImage({ layers: 1 });
  for (const b of [img.config, ...img.layers]) {
    const r = await http(url, 'POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, b.data, headers);
    if (r.status !== 201) return r.status;
  }
  return (await http(url, 'PUT', `/v2/${repo}/manifests/v1`, img.manifest, { ...headers, 'content-type': img.mediaType })).status;
}

t.test('RS256 and ES256 tokens of an external issuer push and pull, by their claims only', async (t) => {
  const dir = tempDir(t);
  const [r1, e1] = [rsa(), ec()];
  const jwks = await jwksFile(dir, [['rsa-1', r1.publicKey], ['ec-1', e1.publicKey]]);
  const reg = await startTenantRegistry(t, { auth: { token: { issuer: ISSUER, realm: REALM, jwks } } as never });

  let r = await http(reg.url, 'GET', '/v2/');
  t.equal(r.headers.get('www-authenticate'), `Bearer realm="${REALM}",service="registry"`, 'clients are sent to the issuer');
  r = await http(reg.url, 'GET', '/v2/ext/app/tags/list');
  t.equal(r.headers.get('www-authenticate'), `Bearer realm="${REALM}",service="registry",scope="repository:ext/app:pull"`);

  const pusher = await sign(claims([{ name: 'ext/app', actions: ['pull', 'push'] }]), r1.privateKey, { alg: 'RS256', kid: 'rsa-1' });
  t.equal(await pushWith(reg.url, 'ext/app', bearer(pusher)), 201, 'RS256 token pushes');
  const puller = await sign(claims([{ name: 'ext/app', actions: ['pull'] }]), e1.privateKey, { alg: 'ES256', kid: 'ec-1' });
  r = await http(reg.url, 'GET', '/v2/ext/app/manifests/v1', undefined, bearer(puller));
  t.equal(r.status, 200, 'ES256 token pulls');
  t.equal(await pushWith(reg.url, 'ext/app', bearer(puller)), 403, 'a pull token does not push');
  t.equal((await http(reg.url, 'GET', '/v2/', undefined, bearer(puller))).status, 200, '/v2/ accepts the token');

  // Only the claims count: the local rules give nobody push on ext/**, and mallory only pull on team-a.
  const mallory = await sign(claims([{ name: 'team-a/app', actions: ['pull', 'push'] }], { sub: 'mallory' }), r1.privateKey, { alg: 'RS256', kid: 'rsa-1' });
  t.equal(await pushWith(reg.url, 'team-a/app', bearer(mallory)), 201, 'the issuer granted push: the local rules do not apply');
  t.equal(await pushWith(reg.url, 'team-b/app', bearer(mallory)), 403, 'nothing beyond the claims');

  // A catalog grant of the issuer is the whole catalog (its users are not ours); without one, nothing.
  const cataloguer = await sign(
    { ...claims([]), access: [{ type: 'registry', name: 'catalog', actions: ['*'] }] },
    r1.privateKey,
    { alg: 'RS256', kid: 'rsa-1' },
  );
  r = await http(reg.url, 'GET', '/v2/_catalog', undefined, bearer(cataloguer));
  t.same([r.status, r.json?.repositories], [200, ['ext/app', 'team-a/app']], 'an external catalog grant lists everything');
  r = await http(reg.url, 'GET', '/v2/_catalog', undefined, bearer(puller));
  t.same(r.json?.repositories, [], 'without the grant, nothing');

  // Our own token service keeps working beside it.
  r = await http(reg.url, 'GET', '/token?service=registry&scope=repository:team-a/app:pull', undefined, as('alice'));
  t.equal((await http(reg.url, 'GET', '/v2/team-a/app/manifests/v1', undefined, bearer(r.json.token))).status, 200, 'own tokens still work');
});

t.test('forged, foreign, expired and confused tokens are refused', async (t) => {
  const dir = tempDir(t);
  const r1 = rsa();
  const jwks = await jwksFile(dir, [['rsa-1', r1.publicKey]]);
  const reg = await startTenantRegistry(t, { auth: { token: { issuer: ISSUER, realm: REALM, jwks } } as never });
  const grant = [{ name: 'ext/app', actions: ['pull', 'push'] }];
  const probe = async (token: string) => (await http(reg.url, 'POST', '/v2/ext/app/blobs/uploads/', undefined, bearer(token))).status;
  const rs = (payload: JWTPayload, key: KeyObject = r1.privateKey, kid = 'rsa-1') => sign(payload, key, { alg: 'RS256', kid });

  t.equal(await probe(await rs(claims(grant))), 202, 'the good token');
  t.equal(await probe(await rs(claims(grant, { iss: 'https://other.test' }))), 401, 'wrong issuer');
  t.equal(await probe(await rs(claims(grant, { iss: 'registry' }))), 401, 'RS256 token claiming to be ours');
  t.equal(await probe(await rs(claims(grant, { aud: 'other-registry' }))), 401, 'wrong audience');
  t.equal(await probe(await rs(claims(grant, { exp: Math.floor(Date.now() / 1000) - 10 }))), 401, 'expired');
  t.equal(await probe(await rs(claims(grant, { nbf: Math.floor(Date.now() / 1000) + 600 }))), 401, 'not yet valid');
  t.equal(await probe(await rs(claims(grant), rsa().privateKey, 'unknown-kid')), 401, 'unknown kid');
  t.equal(await probe(await rs(claims(grant), rsa().privateKey)), 401, 'known kid, another key');
  t.equal(await probe(new UnsecuredJWT(claims(grant)).encode()), 401, 'alg none');
  const pem = r1.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  t.equal(await probe(await sign(claims(grant), Buffer.from(pem), { alg: 'HS256', kid: 'rsa-1' })), 401, 'HS256 keyed with the public key');
  const der = r1.publicKey.export({ type: 'spki', format: 'der' });
  t.equal(await probe(await sign(claims(grant), der, { alg: 'HS256', kid: 'rsa-1' })), 401, 'HS256 keyed with the public key (DER)');
  t.equal(await probe(await sign(claims(grant, { iss: 'registry' }), Buffer.from(pem), { alg: 'HS256' })), 401, 'HS256 as ours, keyed with the public key');
  const [h, p, s] = (await rs(claims([{ name: 'ext/app', actions: ['pull'] }]))).split('.');
  const widened = Buffer.from(JSON.stringify(claims(grant))).toString('base64url');
  t.equal(await probe(`${h}.${widened}.${s}`), 401, 'claims changed after signing');
  t.equal(await probe(`${h}.${p}.${s}`), 403, '(the unchanged token is authentic, and grants pull only)');
});

t.test('kid rotation: both keys of the JWKS work; a key removed from the file stops working', async (t) => {
  const dir = tempDir(t);
  const [k1, k2] = [rsa(), ec()];
  const jwks = await jwksFile(dir, [['old', k1.publicKey], ['new', k2.publicKey]]);
  const reg = await startTenantRegistry(t, { auth: { token: { issuer: ISSUER, realm: REALM, jwks } } as never });
  const grant = claims([{ name: 'ext/app', actions: ['pull', 'push'] }]);
  const byOld = await sign(grant, k1.privateKey, { alg: 'RS256', kid: 'old' });
  const byNew = await sign(grant, k2.privateKey, { alg: 'ES256', kid: 'new' });
  const probe = async (token: string) => (await http(reg.url, 'POST', '/v2/ext/app/blobs/uploads/', undefined, bearer(token))).status;
  t.equal(await probe(byOld), 202, 'token of the old key');
  t.equal(await probe(byNew), 202, 'token of the new key');

  await new Promise((r) => setTimeout(r, 20));
  await jwksFile(dir, [['new', k2.publicKey]]);
  const until = Date.now() + 5000;
  let status = await probe(byOld);
  while (status !== 401 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
    status = await probe(byOld);
  }
  t.equal(status, 401, 'the removed key is refused after the file is re-read');
  t.equal(await probe(byNew), 202, 'the remaining key still works');

  writeFileSync(jwks, '{ not json');
  await new Promise((r) => setTimeout(r, 2500));
  t.equal(await probe(byNew), 202, 'a broken rewrite keeps the last good keys');
});

t.test('a certificate bundle: x5c chains to it, or kid naming one of its keys', async (t) => {
  if (!requireTools(t, ['openssl'])) return;
  const dir = tempDir(t);
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=test issuer CA');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=test issuer');
  run('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2');
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rogue.key', '-out', 'rogue.pem', '-days', '2', '-subj', '/CN=test issuer');
  const read = (f: string) => readFileSync(path.join(dir, f));
  const derOf = (f: string) => new X509Certificate(read(f)).raw.toString('base64');
  t.ok(new X509Certificate(read('ca.pem')).ca, 'the CA certificate is a CA');

  const reg = await startTenantRegistry(t, { auth: { token: { issuer: ISSUER, realm: REALM, certificates: path.join(dir, 'ca.pem') } } as never });
  const grant = claims([{ name: 'ext/app', actions: ['pull', 'push'] }]);
  const probe = async (token: string) => (await http(reg.url, 'POST', '/v2/ext/app/blobs/uploads/', undefined, bearer(token))).status;
  const [caKey, leafKey, rogueKey] = ['ca.key', 'leaf.key', 'rogue.key'].map((f) => createPrivateKey(read(f)));

  const caKid = libtrustKeyId(new X509Certificate(read('ca.pem')).publicKey);
  t.match(caKid, /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/, 'libtrust key id format');
  t.equal(await probe(await sign(grant, caKey!, { alg: 'ES256', kid: caKid })), 202, 'kid naming the bundle certificate\'s key');
  t.equal(await probe(await sign(grant, leafKey!, { alg: 'RS256', x5c: [derOf('leaf.pem')] })), 202, 'x5c leaf issued by the bundle CA');
  t.equal(await probe(await sign(grant, leafKey!, { alg: 'RS256', x5c: [derOf('leaf.pem'), derOf('ca.pem')] })), 202, 'x5c with the CA itself');
  t.equal(await probe(await sign(grant, rogueKey!, { alg: 'RS256', x5c: [derOf('rogue.pem')] })), 401, 'x5c of an untrusted certificate');
  t.equal(await probe(await sign(grant, rogueKey!, { alg: 'RS256', x5c: [derOf('leaf.pem')] })), 401, 'trusted x5c, token signed by another key');
  const leafKid = libtrustKeyId(new X509Certificate(read('leaf.pem')).publicKey);
  t.equal(await probe(await sign(grant, leafKey!, { alg: 'RS256', kid: leafKid })), 401, 'kid of a key not in the bundle');
});

t.test('an external issuer needs its keys and realm, checked at start', async (t) => {
  const dir = tempDir(t);
  const base = { htpasswd: { path: '' }, token: { secretFile: path.join(dir, 'token.key') } };
  const make = (token: Record<string, string>) => () => new AccessControl(defaultConfig({ auth: { ...base, token: { ...base.token, ...token } } as never }));
  t.throws(make({ issuer: ISSUER, realm: REALM }), /auth\.token\.issuer: set auth\.token\.jwks or auth\.token\.certificates/);
  const jwks = await jwksFile(dir, [['k', rsa().publicKey]]);
  t.throws(make({ issuer: ISSUER, jwks }), /auth\.token\.issuer: set auth\.token\.realm/);
  t.throws(make({ jwks }), /set auth\.token\.issuer/);
  t.throws(make({ issuer: ISSUER, jwks, realm: 'issuer.test/token' }), /auth\.token\.realm: expected an http\(s\) URL/);
  writeFileSync(path.join(dir, 'bad.json'), '{"keys": []}');
  t.throws(make({ issuer: ISSUER, realm: REALM, jwks: path.join(dir, 'bad.json') }), /auth\.token\.jwks: cannot use .* as a JWKS/);
  writeFileSync(path.join(dir, 'private.json'), JSON.stringify({ keys: [await exportJWK(rsa().privateKey)] }));
  t.throws(make({ issuer: ISSUER, realm: REALM, jwks: path.join(dir, 'private.json') }), /private or symmetric key/);
  t.throws(make({ issuer: ISSUER, realm: REALM, certificates: path.join(dir, 'bad.json') }), /auth\.token\.certificates: .*no PEM certificate/);
  const ac = make({ issuer: ISSUER, realm: REALM, jwks })();
  t.ok(ac.enabled, 'an issuer alone turns authentication on');
  t.equal(await ac.authenticate('alice', 'x', '127.0.0.1'), undefined, 'without htpasswd no password is good');
  ac.close();
});

t.test('an issuer without htpasswd: tokens only, Basic refused', async (t) => {
  const dir = tempDir(t);
  const k = rsa();
  const jwks = await jwksFile(dir, [['k', k.publicKey]]);
  const { startRegistry } = await import('../helpers/server');
  const reg = await startRegistry(t, { auth: { token: { issuer: ISSUER, realm: REALM, jwks, secretFile: path.join(dir, 'token.key') } } as never });
  const token = await sign(claims([{ name: 'ext/app', actions: ['pull', 'push'] }]), k.privateKey, { alg: 'RS256', kid: 'k' });
  t.equal(await pushWith(reg.url, 'ext/app', bearer(token)), 201, 'push with the issuer\'s token');
  let r = await http(reg.url, 'GET', '/v2/ext/app/tags/list', undefined, as('alice'));
  t.equal(r.status, 401, 'Basic: no local users');
  r = await http(reg.url, 'GET', '/v2/ext/app/tags/list');
  t.equal(r.status, 401, 'anonymous: challenged');
  t.equal(r.headers.get('www-authenticate'), `Bearer realm="${REALM}",service="registry",scope="repository:ext/app:pull"`);
  t.equal((await http(reg.url, 'GET', '/token')).status, 404, 'no token service of our own unless enabled');
});
