import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ConfigError, envName, loadConfig, parseConfig } from '../../src/config/load';
import { tempDir } from '../helpers/server';

t.test('defaults', async (t) => {
  const c = parseConfig('', {});
  t.equal(c.http.addr, '127.0.0.1:5000');
  t.equal(c.storage.driver, 'local');
  t.equal(c.storage.local.root, './data/blobs');
  t.equal(c.index.path, './data/index.db');
  t.equal(c.log.level, 'info');
  t.equal(c.protocols.v1, true);
  t.equal(c.protocols.v2, true);
  t.ok(Object.isFrozen(c.http), 'frozen');
});

t.test('the shipped config.yml is valid and equals the defaults', async (t) => {
  const shipped = loadConfig({ REGISTRY_CONFIG: path.join(__dirname, '../../config.yml') });
  t.same(shipped, parseConfig('', {}));
});

t.test('file values', async (t) => {
  const c = parseConfig('http:\n  addr: 0.0.0.0:6000\nprotocols:\n  v2: false\nlog:\n  level: debug\n', {});
  t.equal(c.http.addr, '0.0.0.0:6000');
  t.equal(c.protocols.v2, false);
  t.equal(c.log.level, 'debug');
});

t.test('environment overrides, as distribution names them', async (t) => {
  t.equal(envName(['http', 'trustProxy']), 'REGISTRY_HTTP_TRUST_PROXY');
  const c = parseConfig('http:\n  addr: 0.0.0.0:6000\n', {
    REGISTRY_HTTP_ADDR: '127.0.0.1:5055',
    REGISTRY_STORAGE_LOCAL_ROOT: '/tmp/x/blobs',
    REGISTRY_INDEX_PATH: '/tmp/x/index.db',
    REGISTRY_PROTOCOLS_V2: 'false',
    REGISTRY_HTTP_TRUST_PROXY: '1',
    REGISTRY_UPLOADS_PURGE_AFTER: '3600',
  });
  t.equal(c.http.addr, '127.0.0.1:5055', 'env beats the file');
  t.equal(c.storage.local.root, '/tmp/x/blobs');
  t.equal(c.index.path, '/tmp/x/index.db');
  t.equal(c.protocols.v2, false);
  t.equal(c.http.trustProxy, 1);
  t.equal(c.uploads.purgeAfter, 3600);
});

t.test('mistakes stop the start and name the key', async (t) => {
  const cases: [string, NodeJS.ProcessEnv, RegExp][] = [
    ['htp:\n  addr: x:1\n', {}, /unknown configuration key "htp"/],
    ['http:\n  adr: x:1\n', {}, /unknown configuration key "http\.adr"/],
    ['protocols:\n  v1: yes please\n', {}, /protocols\.v1: expected true or false/],
    ['uploads:\n  purgeAfter: soon\n', {}, /uploads\.purgeAfter: expected an integer/],
    ['uploads:\n  purgeAfter: 1\n', {}, /uploads\.purgeAfter: must be at least 60/],
    ['storage:\n  driver: floppy\n', {}, /storage\.driver: expected one of local/],
    ['log:\n  level: loud\n', {}, /log\.level: expected one of/],
    ['http: 5\n', {}, /http: expected a mapping/],
    ['http:\n  addr: nohostport\n', {}, /http\.addr: expected host:port/],
    ['http:\n  addr: [1, 2\n', {}, /invalid YAML/],
    ['', { REGISTRY_HTTP_ADRR: 'x:1' }, /unknown environment override REGISTRY_HTTP_ADRR/],
    ['', { REGISTRY_PROTOCOLS_V1: 'maybe' }, /REGISTRY_PROTOCOLS_V1 \(protocols\.v1\): expected true or false/],
    ['index:\n  driver: mysql\n', {}, /index\.driver: expected one of sqlite, postgres/],
    ['index:\n  driver: postgres\nstorage:\n  local:\n    shared: true\n', {}, /index\.postgres\.url is empty/],
    ['index:\n  driver: postgres\n  postgres:\n    url: postgres://u@h/db\n', {}, /^storage\.driver local with index\.driver postgres: replicas would each keep blobs the others cannot read; use storage\.driver s3, or set storage\.local\.shared: true \(REGISTRY_STORAGE_LOCAL_SHARED\)/],
    ['index:\n  driver: postgres\n  postgres:\n    url: postgres://u:pw@h/db\n', { REGISTRY_INDEX_POSTGRES_PASSWORD: 'x', REGISTRY_STORAGE_LOCAL_SHARED: 'true' }, /index\.postgres\.password and the password in index\.postgres\.url: set the password in one place only/],
    ['index:\n  driver: postgres\n  postgres:\n    url: postgres://u@h/db\n', { REGISTRY_INDEX_POSTGRES_CACHE_STALENESS: '50', REGISTRY_STORAGE_LOCAL_SHARED: 'true' }, /index\.postgres\.cacheStaleness is 50: set 0 \(no cache\) or at least 100 milliseconds/],
  ];
  for (const [yaml, env, re] of cases) {
    t.throws(() => parseConfig(yaml, env), re, re.source);
    t.throws(() => parseConfig(yaml, env), ConfigError);
  }
});

t.test('REGISTRY_CONFIG names the file; a named missing file is an error', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'c.yml');
  writeFileSync(file, 'http:\n  addr: 127.0.0.1:7000\n');
  t.equal(loadConfig({ REGISTRY_CONFIG: file }).http.addr, '127.0.0.1:7000');
  t.throws(() => loadConfig({ REGISTRY_CONFIG: path.join(dir, 'missing.yml') }), /cannot read config file/);
});
