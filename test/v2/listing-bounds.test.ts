import Database from 'better-sqlite3';
import t from 'tap';
import { AccessPolicy } from '../../src/auth/access';
import { parseRules } from '../../src/auth/rules';
import { openDatabase } from '../../src/index/db';
import { MetadataIndex } from '../../src/index/metadata-index';
import { nameRanges } from '../../src/index/name-filter';
import { V2Index } from '../../src/index/v2-index';
import { countWork } from '../helpers/count-work';
import { http } from '../helpers/http';
import { as, startTenantRegistry, TENANT_GROUPS, TENANT_RULES, TENANT_USERS, type Tenant } from '../helpers/tenants';

// Catalog and search filter by pull rights inside the index query (issue 22, item 5): pages are the
// same as filtering every repository one by one, and the work per request does not grow with the
// number of repositories the caller cannot see.

/** Rules beyond the tenants': globs with `*` inside, which need a regex and not only a name range. */
const EXTRA_RULES = [
  { repository: 'team-*/shared-*', who: ['carol'], actions: ['pull'] },
  { repository: 'docs/*/manual', who: ['$anonymous', '$authenticated'], actions: ['pull'] },
  { repository: 'exact/one', who: ['mallory'], actions: ['pull'] },
  { repository: 'team-b/**', who: ['alice'], actions: ['push'] },
  { repository: 'lib_x/*-doc', who: ['$anonymous'], actions: ['pull'] },
];
const RULES = [...TENANT_RULES, ...EXTRA_RULES];

/** Repositories of mixed visibility; every third one has no v2 content (search lists it, the catalog does not). */
function repoNames(): string[] {
  const names: string[] = [];
  for (const ns of ['team-a', 'team-b', 'team-c', 'alice', 'bob', 'carol', 'mallory', 'public', 'other', 'docs', 'exact', 'alicex', 'ali']) {
    for (let i = 0; i < 12; i++) names.push(`${ns}/app-${i}`);
    names.push(`${ns}/shared-x`, `${ns}/shared-y/deep`, `${ns}/x/manual`, `${ns}/one`);
  }
  names.push('exact/one/two', 'exact/onex', 'docs/a/b/manual', 'public', 'team-a', 'lib_x/a-doc', 'libax/a-doc', 'lib_x/a/b-doc', 'lib_x/-doc');
  return names;
}

interface Row {
  name: string;
  description: string;
  content: boolean;
}

function rowsOf(names: string[]): Row[] {
  return names.map((name, i) => ({ name, description: i % 5 === 0 ? `the APP number ${i}` : '', content: i % 3 !== 0 }));
}

/** Write repositories straight into an index database (HTTP pushes of thousands would take minutes). */
function insertRepos(db: Database.Database, rows: Row[]): void {
  const repo = db.prepare('INSERT INTO repositories (name, description, created_at) VALUES (?, ?, 0)');
  const blob = db.prepare('INSERT INTO repo_blobs (repo, digest) VALUES (?, ?)');
  db.transaction(() => {
    for (const r of rows) {
      repo.run(r.name, r.description);
      if (r.content) blob.run(r.name, `sha256:${'0'.repeat(64)}`);
    }
  })();
}

const byteOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const like = (r: Row, q: string) => r.name.toLowerCase().includes(q.toLowerCase()) || r.description.toLowerCase().includes(q.toLowerCase());

t.test('name ranges: sorted, disjoint, a regex only where no pattern takes the whole range', async (t) => {
  t.same(nameRanges([]), []);
  t.same(nameRanges([{ prefix: '' }, { prefix: 'x/' }, { exact: 'y' }]), [{ from: '', to: null, regex: null, like: null }]);
  t.same(nameRanges([{ prefix: 'a/', regex: 'a/[^/]*', like: 'a/%' }, { exact: 'a/b' }, { prefix: 'a/' }]), [{ from: 'a/', to: 'a0', regex: null, like: null }]);
  t.same(nameRanges([{ prefix: 'b/', regex: 'b/[^/]*', like: 'b/%' }, { exact: 'a' }, { prefix: 'b/', regex: 'b/[^/]*', like: 'b/%' }]), [
    { from: 'a', to: 'a\x01', regex: null, like: null },
    { from: 'b/', to: 'b0', regex: '^(?:(?:b/[^/]*))$', like: 'b/%' },
  ]);
  t.same(nameRanges([{ prefix: 'b', regex: 'b[^/]*/x', like: 'b%/x' }, { prefix: 'b/' }]), [{ from: 'b', to: 'c', regex: '^(?:(?:b[^/]*/x)|b/.*)$', like: null }]);
});

t.test('index: filtered catalog and search pages equal filtering every repository one by one', async (t) => {
  const db = openDatabase(':memory:');
  t.teardown(() => db.close());
  const core = new MetadataIndex(db);
  const v2 = new V2Index(db, core);
  const rows = rowsOf(repoNames());
  insertRepos(db, rows);
  const policy = new AccessPolicy(true, parseRules(RULES, 'auth.rules'), TENANT_GROUPS);
  const users: (string | null)[] = [null, 'alice', 'bob', 'carol', 'mallory', 'nobody', 'ali*ce', '**', 'Alice'];

  for (const user of users) {
    const visible = policy.reach(user, 'pull');
    const expected = rows.filter((r) => r.content && policy.can(user, r.name, 'pull')).map((r) => r.name).sort(byteOrder);
    t.same(await v2.catalog('', 100_000, visible), expected, `catalog of ${user}`);
    for (const n of [1, 3, 7]) {
      const pages: string[] = [];
      for (let last = '', page = await v2.catalog(last, n, visible); page.length > 0; last = page[page.length - 1]!, page = await v2.catalog(last, n, visible)) {
        t.ok(page.length <= n);
        pages.push(...page);
      }
      t.same(pages, expected, `catalog of ${user}, pages of ${n}`);
    }
    t.same(await v2.catalog('other/zzz', 5, visible), expected.filter((x) => x > 'other/zzz').slice(0, 5), `${user}: last between names`);

    for (const q of ['', 'app', 'APP-1', 'shared', 'x', 'none-such']) {
      const all = rows.filter((r) => like(r, q) && policy.can(user, r.name, 'pull')).sort((a, b) => byteOrder(a.name, b.name));
      for (const [n, page] of [[3, 1], [3, 4], [100, 1], [5, 1000]] as const) {
        const got = await core.search(q, n, (page - 1) * n, visible);
        t.equal(got.total, all.length, `search ${user} "${q}" total`);
        t.same(got.hits, all.slice((page - 1) * n, page * n).map((r) => ({ name: r.name, description: r.description })), `search ${user} "${q}" n=${n} page=${page}`);
      }
    }
  }
  // Without a filter: every repository.
  t.same(await v2.catalog('', 100_000), rows.filter((r) => r.content).map((r) => r.name).sort(byteOrder));
  t.equal((await core.search('', 10, 0)).total, rows.length);
});

t.test('HTTP: catalog and search pages per tenant, Bearer needs registry:catalog, n is capped', async (t) => {
  const reg = await startTenantRegistry(t, { auth: { rules: RULES as never } });
  const rows = rowsOf(repoNames());
  const db = new Database(reg.config.index.path);
  t.teardown(() => db.close());
  insertRepos(db, rows);
  const policy = reg.app.registry.access.policy;

  const callers: [string | null, Record<string, string>][] = [[null, {}], ...Object.keys(TENANT_USERS).map((u) => [u, as(u as Tenant)] as [string, Record<string, string>])];
  for (const [user, headers] of callers) {
    const expected = rows.filter((r) => r.content && policy.can(user, r.name, 'pull')).map((r) => r.name).sort(byteOrder);
    const got: string[] = [];
    let url: string | undefined = '/v2/_catalog?n=7';
    while (url) {
      const r = await http(reg.url, 'GET', url, undefined, headers);
      t.equal(r.status, 200);
      got.push(...r.json.repositories);
      url = /^<([^>]+)>; rel="next"$/.exec(r.headers.get('link') ?? '')?.[1];
    }
    t.same(got, expected, `catalog of ${user ?? 'anonymous'} followed through its Link headers`);

    const all = rows.filter((r) => like(r, 'app') && policy.can(user, r.name, 'pull')).map((r) => r.name).sort(byteOrder);
    const s = await http(reg.url, 'GET', '/v1/search?q=app&n=4&page=2', undefined, headers);
    t.equal(s.json.num_results, all.length, `search total of ${user ?? 'anonymous'}`);
    t.same(s.json.results.map((x: { name: string }) => x.name), all.slice(4, 8), `search page 2 of ${user ?? 'anonymous'}`);
  }

  // A Bearer token lists only with the registry:catalog grant, and then what its user may pull.
  let r = await http(reg.url, 'GET', '/token?service=registry&scope=registry:catalog:*', undefined, as('mallory'));
  r = await http(reg.url, 'GET', '/v2/_catalog', undefined, { authorization: `Bearer ${r.json.token}` });
  t.same(r.json.repositories, rows.filter((x) => x.content && policy.can('mallory', x.name, 'pull')).map((x) => x.name).sort(byteOrder));
  r = await http(reg.url, 'GET', '/token?service=registry&scope=repository:mallory/app-1:pull', undefined, as('mallory'));
  r = await http(reg.url, 'GET', '/v2/_catalog', undefined, { authorization: `Bearer ${r.json.token}` });
  t.same(r.json.repositories, [], 'no catalog grant, nothing listed');

  // n above the cap is clamped, and the Link header names the clamped n.
  insertRepos(db, rowsOf(Array.from({ length: 1100 }, (_, i) => `public/many-${String(i).padStart(5, '0')}`)).map((x) => ({ ...x, content: true })));
  r = await http(reg.url, 'GET', '/v2/_catalog?n=5000');
  t.equal(r.json.repositories.length, 1000);
  const last = r.json.repositories[999];
  t.equal(r.headers.get('link'), `</v2/_catalog?n=1000&last=${encodeURIComponent(last)}>; rel="next"`);
  r = await http(reg.url, 'GET', '/v2/_catalog');
  t.equal(r.json.repositories.length, 1000, 'without n: one capped page');
  t.ok(r.headers.get('link'));
});

t.test('the work of a listing does not grow with the repositories the caller cannot see', async (t) => {
  // carol's team-*/shared-* spans the hidden team-a names: a LIKE in SQL keeps the regex off them.
  const reg = await startTenantRegistry(t, { auth: { rules: RULES as never } });
  const db = new Database(reg.config.index.path);
  t.teardown(() => db.close());
  const hidden = Array.from({ length: 20_000 }, (_, i) => `team-a/r${String(i).padStart(5, '0')}`);
  insertRepos(db, [...hidden, 'carol/a', 'carol/b', 'carol/c'].map((name) => ({ name, description: 'app', content: true })));

  const catalog = async (headers: Record<string, string>) => (await http(reg.url, 'GET', '/v2/_catalog?n=100', undefined, headers)).json.repositories;
  t.same(await catalog(as('carol')), ['carol/a', 'carol/b', 'carol/c'], 'carol sees her 3 of 20,003'); // also warms the credential cache
  let result: unknown;
  let work = await countWork(async () => {
    result = await catalog(as('carol'));
  });
  t.same(result, ['carol/a', 'carol/b', 'carol/c']);
  t.ok(work.statements <= 10, `catalog: ${work.statements} statements`);
  t.ok(work.rows <= 20, `catalog: ${work.rows} rows read`);
  t.ok(work.regexTests <= 200, `catalog: ${work.regexTests} regex tests`);

  work = await countWork(async () => {
    result = (await http(reg.url, 'GET', '/v1/search?q=app&n=100')).json;
  });
  t.same((result as { num_results: number }).num_results, 0, 'anonymous sees none of them');
  t.ok(work.statements <= 10, `search: ${work.statements} statements`);
  t.ok(work.rows <= 20, `search: ${work.rows} rows read`);
  t.ok(work.regexTests <= 200, `search: ${work.regexTests} regex tests`);

  // A caller who sees everything still reads one page, not the registry.
  work = await countWork(async () => {
    result = (await http(reg.url, 'GET', '/v2/_catalog?n=50', undefined, as('alice'))).json.repositories;
  });
  t.equal((result as string[]).length, 50);
  t.ok(work.rows <= 100, `alice's first page: ${work.rows} rows read`);
});
