import { sql, type Query } from './sql';

// A list of values as ONE statement parameter: a JSON array, read as rows by SQLite's json_each and by
// PostgreSQL's json_array_elements(_text). One prepared statement then serves any number of values, where an
// IN (?, ?, ...) list would need one statement per length (each prepared on every PostgreSQL connection).

/** A fragment of SQL as each dialect writes it. */
export interface Dialects {
  sqlite: string;
  postgres: string;
}

/**
 * `column IN` the values of the JSON array parameter @name. PostgreSQL reads them as text: `type` casts
 * them for a column that is not (BIGINT for numbers); SQLite's json_each gives numbers as integers already.
 */
export function inJsonList(column: string, name: string, type?: 'BIGINT'): Dialects {
  const value = type ? `CAST(value AS ${type})` : 'value';
  return {
    sqlite: `${column} IN (SELECT value FROM json_each(@${name}))`,
    postgres: `${column} IN (SELECT ${value} FROM json_array_elements_text(CAST(@${name} AS json)) AS j(value))`,
  };
}

/** The elements of the JSON array parameter @name as rows `j(value)`: text, or with `objects` JSON objects (read with ->>). */
export function jsonRows(name: string, objects = false): Dialects {
  const fn = objects ? 'json_array_elements' : 'json_array_elements_text';
  return { sqlite: `json_each(@${name}) j`, postgres: `${fn}(CAST(@${name} AS json)) AS j(value)` };
}

/** A statement whose two dialects differ only in `part`: `text` wraps each. */
export function sqlWith<Row = unknown>(part: Dialects, text: (part: string) => string, opts: { pluck?: boolean } = {}): Query<Row> {
  return sql<Row>(text(part.sqlite), { ...opts, postgres: text(part.postgres) });
}
