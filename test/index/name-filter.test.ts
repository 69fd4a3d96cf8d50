import t from 'tap';
import { RepoGlob } from '../../src/auth/globs';
import { MetadataIndex } from '../../src/index/metadata-index';
import { nameRanges, type NamePattern } from '../../src/index/name-filter';
import { forEachIndex } from '../helpers/index-db';

// The name filters (name-filter.ts) as both backends evaluate them: ranges bound the names as text (no NUL,
// which PostgreSQL text cannot hold) and each regex means the same in ECMAScript and PostgreSQL ARE.

const NAMES = ['a', 'a/b', 'a/b/c', 'a.b/x/c', 'aXb/x/c', 'a.b/x/y/c', 'alice/app', 'alice/app/sub', 'alicex/app', 'b', 'team-1/db', 'team_1/db', 'z/z'].sort();
const GLOBS = ['a', 'a/*', 'a/**', 'a.b/*/c', 'a.b/**/c', '$user/*', '$user/**', 'team-1/*', 't*m_1/db', '*', '**/c', 'a/b/c'];

t.test('an exact name is a range of text without NUL', async (t) => {
  for (const r of nameRanges([{ exact: 'a/b' }, { exact: 'z' }])) t.notOk(r.to!.includes('\0'), `${r.from}..${r.to}`);
});

forEachIndex(t, 'each glob lists the names its matcher accepts, alone and together', async (t, db) => {
  const core = new MetadataIndex(db);
  for (const name of NAMES) await core.ensureRepository(name);
  const listed = async (visible: readonly NamePattern[]) => (await core.search('', 100, 0, visible)).hits.map((h) => h.name);
  const sets: { patterns: NamePattern[]; tests: ((n: string) => boolean)[] } = { patterns: [], tests: [] };
  for (const glob of GLOBS) {
    const m = new RepoGlob(glob).forUser('alice')!;
    t.same(await listed([m.pattern]), NAMES.filter((n) => m.test(n)), glob);
    sets.patterns.push(m.pattern);
    sets.tests.push(m.test);
    t.same(await listed(sets.patterns), NAMES.filter((n) => sets.tests.some((test) => test(n))), `up to ${glob}`);
  }
});
