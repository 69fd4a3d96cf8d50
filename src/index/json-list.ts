// A list of values as ONE statement parameter: a JSON array, read as rows by SQLite's json_each and by
// PostgreSQL's json_array_elements_text. One prepared statement then serves any number of values, where an
// IN (?, ?, ...) list would need one statement per length (each prepared on every PostgreSQL connection).

/**
 * `column IN` the values of the JSON array parameter @name, in each dialect (for sql()'s text and `postgres`).
 * PostgreSQL reads them as text: `type` casts them for a column that is not (BIGINT for numbers); SQLite's
 * json_each gives numbers as integers already.
 */
export function inJsonList(column: string, name: string, type?: 'BIGINT'): { sqlite: string; postgres: string } {
  const value = type ? `CAST(value AS ${type})` : 'value';
  return {
    sqlite: `${column} IN (SELECT value FROM json_each(@${name}))`,
    postgres: `${column} IN (SELECT ${value} FROM json_array_elements_text(CAST(@${name} AS json)) AS j(value))`,
  };
}

/** The rows of the JSON array parameter @name as `j(value)`, each value as text, in each dialect. */
export function jsonRows(name: string): { sqlite: string; postgres: string } {
  return { sqlite: `json_each(@${name}) j`, postgres: `json_array_elements_text(CAST(@${name} AS json)) AS j(value)` };
}
