import t from 'tap';
import * as locks from '../../src/index/postgres/locks';
import { bindValues, toPgStatement } from '../../src/index/postgres/sql';

// better-sqlite3's parameters (? and @name) as pg's $n: the index's SQL text serves both backends.

t.test('? parameters are numbered in order', async (t) => {
  const s = toPgStatement('SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?');
  t.same(s, { text: 'SELECT tag FROM tags WHERE repo = $1 AND tag > $2 ORDER BY tag LIMIT $3', names: null, count: 3 });
  t.same(bindValues(s, ['r', '', 10]), ['r', '', 10]);
  t.throws(() => bindValues(s, ['r']), { message: 'the statement takes 3 parameters, not 1' });
});

t.test('@name parameters: one $n per name, however often it is used', async (t) => {
  const s = toPgStatement("SELECT x FROM t WHERE (@like IS NULL OR name LIKE @like ESCAPE '\\') AND repo = @repo_1");
  t.equal(s.text, "SELECT x FROM t WHERE ($1 IS NULL OR name LIKE $1 ESCAPE '\\') AND repo = $2");
  t.same(s.names, ['like', 'repo_1']);
  t.same(bindValues(s, [{ repo_1: 'r', like: null, unused: 1 }]), [null, 'r']);
  t.throws(() => bindValues(s, [{ like: 'x' }]), { message: 'missing named parameter @repo_1' });
  t.throws(() => bindValues(s, ['x', 'y']), { message: 'the statement takes one object of named parameters' });
});

t.test('quoted text, identifiers, comments and dollar-quoted bodies are left alone', async (t) => {
  const sql = `SELECT '?', 'it''s @x ?', "we?ird" -- a ? comment @c
    , $$ ? @d $$, $f$ ' ? $f$ /* ? @e */ FROM t WHERE a = ? AND b = $1::int AND c @> ?`;
  const s = toPgStatement(sql);
  t.equal(s.text, sql.replace('a = ?', 'a = $1').replace('c @> ?', 'c @> $2'));
  t.equal(s.count, 2, 'an operator @> is no name; an existing $1 is kept');
});

t.test('? and @name in one statement are refused', async (t) => {
  t.throws(() => toPgStatement('SELECT ? WHERE x = @x'), { message: 'a statement takes either ? or @name parameters, not both' });
});

t.test('no two advisory locks share a key', async (t) => {
  const keys = Object.values(locks);
  t.ok(keys.length >= 3);
  t.equal(new Set(keys).size, keys.length);
});
