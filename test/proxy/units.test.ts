import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load';
import { parseChallenges } from '../../src/proxy/challenge';
import { parseUpstreams } from '../../src/proxy/config';
import { SingleFlight } from '../../src/proxy/single-flight';
import { tempDir } from '../helpers/server';

// Units of the pull-through cache: proxy.upstreams parsing (every error names its key), WWW-Authenticate
// challenge parsing, single-flight.

t.test('proxy.upstreams: defaults, durations, credentials from a file or the environment', async (t) => {
  const dir = tempDir(t);
  const pw = path.join(dir, 'pw');
  writeFileSync(pw, 'secret\n');
  const [hub, ghcr] = parseUpstreams(
    [
      { prefix: 'hub/', url: 'https://registry-1.docker.io/' },
      { prefix: 'ghcr/', url: 'https://ghcr.io', username: 'bot', passwordFile: pw, tagTtl: '5m', repositories: ['acme/*'], timeout: '1m' },
    ],
    'proxy.upstreams',
    {},
  );
  t.same(hub, { prefix: 'hub/', url: 'https://registry-1.docker.io', username: '', passwordFile: '', passwordEnv: '', tagTtl: 300, repositories: [], caFile: '', timeout: 30 });
  t.equal(ghcr!.tagTtl, 300);
  t.equal(ghcr!.timeout, 60);
  t.same(ghcr!.repositories, ['acme/*']);
  t.same(parseUpstreams([{ prefix: 'a/', url: 'http://x:5000', username: 'u', passwordEnv: 'P', tagTtl: 0 }], 'k', { P: 'x' })[0]!.tagTtl, 0, 'tagTtl 0: every pull asks');
  t.same(parseUpstreams(undefined, 'k'), []);
});

t.test('proxy.upstreams: bad values stop the start naming the key', async (t) => {
  const bad: [unknown, RegExp][] = [
    [{}, /proxy\.upstreams: expected a list/],
    [[{ prefix: 'hub', url: 'https://x' }], /proxy\.upstreams\[0\]\.prefix: expected a repository namespace ending in "\/"/],
    [[{ prefix: 'Hub/', url: 'https://x' }], /\[0\]\.prefix/],
    [[{ prefix: 'hub/', url: 'ftp://x' }], /\[0\]\.url: expected an http\(s\) URL/],
    [[{ prefix: 'hub/', url: 'https://x/v2' }], /\[0\]\.url: .*without path/],
    [[{ prefix: 'hub/', url: 'https://u:p@x' }], /\[0\]\.url: .*credentials/],
    [[{ prefix: 'hub/' }], /\[0\]\.url/],
    [[{ prefix: 'hub/', url: 'https://x', color: 1 }], /unknown configuration key "proxy\.upstreams\[0\]\.color"/],
    [[{ prefix: 'hub/', url: 'https://x', username: 'u' }], /\[0\]\.username: a password is needed too/],
    [[{ prefix: 'hub/', url: 'https://x', passwordEnv: 'P' }], /\[0\]\.username: required with a password/],
    [[{ prefix: 'hub/', url: 'https://x', username: 'u', passwordEnv: 'NOPE_NOT_SET' }], /\[0\]\.passwordEnv: the environment variable NOPE_NOT_SET is not set/],
    [[{ prefix: 'hub/', url: 'https://x', username: 'u', passwordFile: '/nonexistent/pw' }], /\[0\]\.passwordFile: cannot read \/nonexistent\/pw/],
    [[{ prefix: 'hub/', url: 'https://x', caFile: '/nonexistent/ca.pem' }], /\[0\]\.caFile: cannot read/],
    [[{ prefix: 'hub/', url: 'https://x', tagTtl: 'soon' }], /\[0\]\.tagTtl: expected a duration/],
    [[{ prefix: 'hub/', url: 'https://x', timeout: 0 }], /\[0\]\.timeout: must be at least one second/],
    [[{ prefix: 'hub/', url: 'https://x', repositories: ['Bad$'] }], /\[0\]\.repositories\[0\]/],
    [[{ prefix: 'hub/', url: 'https://x' }, { prefix: 'hub/library/', url: 'https://y' }], /\[0\]\.prefix: hub\/ overlaps hub\/library\/ of proxy\.upstreams\[1\]/],
  ];
  for (const [value, message] of bad) t.throws(() => parseUpstreams(value, 'proxy.upstreams', {}), { name: 'ConfigError', message }, JSON.stringify(value));
});

t.test('proxy.upstreams in a config file and as REGISTRY_PROXY_UPSTREAMS', async (t) => {
  const config = parseConfig('proxy:\n  upstreams:\n    - {prefix: hub/, url: "https://registry-1.docker.io", tagTtl: 1h}\n', {});
  t.equal(config.proxy.upstreams[0]!.tagTtl, 3600);
  const fromEnv = parseConfig('', { REGISTRY_PROXY_UPSTREAMS: '[{prefix: mirror/, url: "http://127.0.0.1:5001"}]' });
  t.equal(fromEnv.proxy.upstreams[0]!.prefix, 'mirror/');
  t.throws(() => parseConfig('proxy:\n  upstreams: [{prefix: x}]\n', {}), /proxy\.upstreams\[0\]\.prefix/);
  t.same(parseConfig('', {}).proxy.upstreams, [], 'default: no upstreams');
});

t.test('WWW-Authenticate challenges', async (t) => {
  t.same(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
  ]);
  t.same(parseChallenges('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  t.same(parseChallenges('Bearer realm=https://a/token, service=reg'), [{ scheme: 'bearer', params: { realm: 'https://a/token', service: 'reg' } }], 'unquoted values');
  t.same(parseChallenges('Basic realm="a", Bearer realm="https://b/token",scope="repository:x:pull,push"'), [
    { scheme: 'basic', params: { realm: 'a' } },
    { scheme: 'bearer', params: { realm: 'https://b/token', scope: 'repository:x:pull,push' } },
  ], 'two challenges in one header; a comma inside quotes stays');
  t.same(parseChallenges(['Basic realm="a"', 'Bearer realm="b"']).map((c) => c.scheme), ['basic', 'bearer'], 'several headers');
  t.same(parseChallenges('Bearer realm="say \\"hi\\""'), [{ scheme: 'bearer', params: { realm: 'say "hi"' } }], 'quoted-pair');
  t.same(parseChallenges('Bearer realm="unterminated'), [{ scheme: 'bearer', params: {} }], 'an unterminated quote ends parsing, no crash');
  t.same(parseChallenges(undefined), []);
  t.same(parseChallenges('   '), []);
});

t.test('single-flight: one run per key at a time; failures are not remembered', async (t) => {
  const flights = new SingleFlight<number>();
  let runs = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const work = async () => {
    runs++;
    await gate;
    return 42;
  };
  const a = flights.run('k', work);
  const b = flights.run('k', work);
  const c = flights.run('other', async () => 7);
  t.equal(a.leader, true);
  t.equal(b.leader, false);
  t.equal(c.leader, true);
  t.equal(flights.get('k'), a.done);
  release();
  t.same(await Promise.all([a.done, b.done, c.done]), [42, 42, 7]);
  t.equal(runs, 1, 'the work ran once for both callers of k');
  t.equal(flights.size, 0, 'settled keys are forgotten');
  const failing = flights.run('f', async () => {
    throw new Error('upstream down');
  });
  const follower = flights.run('f', async () => 1);
  await t.rejects(failing.done, /upstream down/);
  await t.rejects(follower.done, /upstream down/, 'followers share the failure');
  const retry = flights.run('f', async () => 2);
  t.equal(retry.leader, true);
  t.equal(await retry.done, 2, 'the next request tries again');
});
