// A list of values as ONE statement parameter: a JSON array, read as rows by SQLite's json_each and by
// PostgreSQL's json_array_elements_text. One prepared statement then serves any number of values, where an
// IN (?, ?, ...) list would need one statement per length (each prepared on every PostgreSQL connection).

/** `column IN` the strings of the JSON array parameter @name, in each dialect (for sql()'s text and `postgres`). */
export function inJsonList(column: string, name: string): { sqlite: string; postgres: string } {
  return {
    sqlite: `${column} IN (SELECT value FROM json_each(@${name}))`,
    postgres: `${column} IN (SELECT value FROM json_array_elements_text(CAST(@${name} AS json)) AS j(value))`,
  };
}
