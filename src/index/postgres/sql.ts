// The index classes write SQL for better-sqlite3: parameters are `?` (in order) or `@name` (from an object).
// pg takes only `$1, $2, ...` and an array. This rewrites one statement once, so the same text can serve
// both backends where the SQL itself is portable. Quoted strings, quoted identifiers, comments and
// dollar-quoted bodies are copied as they are (not E'...' strings with a backslash-escaped quote: the
// index's SQL has none).

export interface PgStatement {
  /** The statement with $n parameters. */
  text: string;
  /** For named parameters, the name of each $n in order (a name used twice is one $n); null for `?`. */
  names: readonly string[] | null;
  /** How many `?` there were (0 for named). */
  count: number;
}

/** Rewrite `?` or `@name` parameters (not both in one statement) to `$n`. */
export function toPgStatement(sql: string): PgStatement {
  let text = '';
  let count = 0;
  const names: string[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    const skip = quotedEnd(sql, i);
    if (skip > i) {
      text += sql.slice(i, skip);
      i = skip;
    } else if (c === '?') {
      count++;
      text += `$${count}`;
      i++;
    } else if (c === '@' && /[A-Za-z_]/.test(sql[i + 1] ?? '')) {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(sql.slice(i + 1))![0];
      let n = names.indexOf(name);
      if (n < 0) n = names.push(name) - 1;
      text += `$${n + 1}`;
      i += 1 + name.length;
    } else {
      text += c;
      i++;
    }
  }
  if (count > 0 && names.length > 0) throw new Error('a statement takes either ? or @name parameters, not both');
  return { text, names: names.length > 0 ? names : null, count };
}

/**
 * The values for a statement, from better-sqlite3-style arguments: positional ones, or one object for named
 * parameters. A missing name is an error (better-sqlite3's rule too), not a silent NULL.
 */
export function bindValues(statement: PgStatement, args: readonly unknown[]): unknown[] {
  if (statement.names === null) {
    if (args.length !== statement.count) throw new Error(`the statement takes ${statement.count} parameters, not ${args.length}`);
    return [...args];
  }
  const named = args[0];
  if (args.length !== 1 || typeof named !== 'object' || named === null) throw new Error('the statement takes one object of named parameters');
  return statement.names.map((name) => {
    if (!(name in named)) throw new Error(`missing named parameter @${name}`);
    return (named as Record<string, unknown>)[name];
  });
}

/** Where the quoted string, quoted identifier, comment or dollar-quoted body starting at `i` ends; `i` when none starts there. */
function quotedEnd(sql: string, i: number): number {
  const c = sql[i];
  if (c === "'" || c === '"') {
    // A doubled quote is an escaped one: keep going.
    let j = i + 1;
    for (;;) {
      const k = sql.indexOf(c, j);
      if (k < 0) return sql.length;
      if (sql[k + 1] === c) j = k + 2;
      else return k + 1;
    }
  }
  if (c === '-' && sql[i + 1] === '-') {
    const k = sql.indexOf('\n', i);
    return k < 0 ? sql.length : k + 1;
  }
  if (c === '/' && sql[i + 1] === '*') {
    const k = sql.indexOf('*/', i + 2);
    return k < 0 ? sql.length : k + 2;
  }
  if (c === '$') {
    const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
    if (tag) {
      const k = sql.indexOf(tag[0], i + tag[0].length);
      return k < 0 ? sql.length : k + tag[0].length;
    }
  }
  return i;
}
