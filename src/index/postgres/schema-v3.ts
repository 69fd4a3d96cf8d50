import { ALL_REPOSITORIES, CHANGES_CHANNEL } from './change-feed';

// PostgreSQL migration 3: every change to the rows that reads may be answered from memory (sql.ts,
// Query.cached) is announced to every replica's change feed (change-feed.ts) when its transaction commits,
// whoever makes it: a replica, an operator command, or SQL typed by hand. The payload is the repository;
// PostgreSQL sends one notification per distinct payload of a transaction.

/** The tables a cached statement may read. */
export const ANNOUNCED_TABLES = ['tags', 'manifests', 'v1_tags'] as const;

export const SCHEMA_V3 = [
  `CREATE FUNCTION tsregistry_announce_change() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     PERFORM pg_notify('${CHANGES_CHANNEL}', CASE WHEN TG_OP = 'DELETE' THEN OLD.repo ELSE NEW.repo END);
     IF TG_OP = 'UPDATE' AND OLD.repo IS DISTINCT FROM NEW.repo THEN
       PERFORM pg_notify('${CHANGES_CHANNEL}', OLD.repo);
     END IF;
     RETURN NULL;
   END $$;`,
  `CREATE FUNCTION tsregistry_announce_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     PERFORM pg_notify('${CHANGES_CHANNEL}', '${ALL_REPOSITORIES}');
     RETURN NULL;
   END $$;`,
  ...ANNOUNCED_TABLES.flatMap((table) => [
    `CREATE TRIGGER ${table}_tsregistry_announce AFTER INSERT OR UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION tsregistry_announce_change();`,
    `CREATE TRIGGER ${table}_tsregistry_announce_truncate AFTER TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION tsregistry_announce_truncate();`,
  ]),
].join('\n');
