// PostgreSQL migration 1: the schema SQLite reaches at its migration 10 (src/index/migrations.ts), in one step
// (there is no older PostgreSQL index to carry forward). Table and column names are SQLite's, so the index
// classes can share SQL; what differs, and why:
// - INTEGER is bigint where it holds sizes, millisecond times, counts or sequence numbers (connect.ts parses
//   int8 as a number), integer for flags, positions and attempts.
// - Search: no repo_search table (an FTS5 trigram table kept by three triggers). GIN trigram indexes of the
//   pg_trgm extension on repositories.name and .description serve `name ILIKE '%x%'` directly (ILIKE: FTS5's
//   trigram LIKE ignores ASCII case, as SQLite's LIKE does; PostgreSQL's LIKE does not).
// - refs_outbox.seq and notify_outbox.seq are identity columns: SQLite numbers them max(seq) + 1, a floor row
//   with an explicit seq raises that; here a sequence numbers them and setval() raises it (an explicit seq
//   does not move the sequence). Numbers follow nextval() order, which is not commit order across sessions.
// - Triggers are plpgsql functions with the same effects, one function per SQLite trigger and of its name.
//   Journal records are json_build_object(...)::text: the same keys, order and values as SQLite's
//   json_object, spaced differently ({"t" : "blob", ...}); readers parse them.
// - Conditions a SQLite trigger's WHEN writes with IS NOT are IS DISTINCT FROM; ON CONFLICT ... DO UPDATE
//   qualifies the target's columns (repo_usage AS u, u.bytes).
// - Every text column is COLLATE "C": comparisons and ORDER BY are bytewise as in SQLite (listings page by
//   name > ?), whatever the database's default locale. A text value cannot hold NUL here (SQLite's can).

const USAGE = `
-- Usage per repository (SQLite migration 5): each blob once per repository, however many references.
CREATE FUNCTION repo_charges_ai() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO repo_usage AS u (repo, bytes, blobs) VALUES (NEW.repo, NEW.size, 1)
    ON CONFLICT (repo) DO UPDATE SET bytes = u.bytes + excluded.bytes, blobs = u.blobs + 1;
  RETURN NULL;
END $$;
CREATE TRIGGER repo_charges_ai AFTER INSERT ON repo_charges FOR EACH ROW EXECUTE FUNCTION repo_charges_ai();

CREATE FUNCTION repo_charges_ad() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  UPDATE repo_usage SET bytes = bytes - OLD.size, blobs = blobs - 1 WHERE repo = OLD.repo;
  DELETE FROM repo_usage WHERE repo = OLD.repo AND blobs <= 0;
  RETURN NULL;
END $$;
CREATE TRIGGER repo_charges_ad AFTER DELETE ON repo_charges FOR EACH ROW EXECUTE FUNCTION repo_charges_ad();

CREATE FUNCTION repo_blobs_charge() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO repo_charges AS c (repo, digest, size, refs)
    VALUES (NEW.repo, NEW.digest, coalesce((SELECT size FROM blobs WHERE digest = NEW.digest), 0), 1)
    ON CONFLICT (repo, digest) DO UPDATE SET refs = c.refs + 1;
  RETURN NULL;
END $$;
CREATE TRIGGER repo_blobs_charge AFTER INSERT ON repo_blobs FOR EACH ROW EXECUTE FUNCTION repo_blobs_charge();

CREATE FUNCTION repo_blobs_uncharge() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  UPDATE repo_charges SET refs = refs - 1 WHERE repo = OLD.repo AND digest = OLD.digest;
  DELETE FROM repo_charges WHERE repo = OLD.repo AND digest = OLD.digest AND refs <= 0;
  RETURN NULL;
END $$;
CREATE TRIGGER repo_blobs_uncharge AFTER DELETE ON repo_blobs FOR EACH ROW EXECUTE FUNCTION repo_blobs_uncharge();

-- A v1 image charges its JSON and its layer (once if they are the same blob: UNION).
CREATE FUNCTION v1_images_charge() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO repo_charges AS c (repo, digest, size, refs)
    SELECT NEW.repo, s.d, coalesce((SELECT size FROM blobs WHERE digest = s.d), 0), 1
      FROM (SELECT NEW.json_digest AS d UNION SELECT NEW.layer_digest WHERE NEW.layer_digest IS NOT NULL) s
    ON CONFLICT (repo, digest) DO UPDATE SET refs = c.refs + 1;
  RETURN NULL;
END $$;
CREATE TRIGGER v1_images_charge AFTER INSERT ON v1_images FOR EACH ROW EXECUTE FUNCTION v1_images_charge();

CREATE FUNCTION v1_images_uncharge() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  UPDATE repo_charges SET refs = refs - 1
   WHERE repo = OLD.repo AND digest IN (OLD.json_digest, OLD.layer_digest);
  DELETE FROM repo_charges WHERE repo = OLD.repo AND digest IN (OLD.json_digest, OLD.layer_digest) AND refs <= 0;
  RETURN NULL;
END $$;
CREATE TRIGGER v1_images_uncharge AFTER DELETE ON v1_images FOR EACH ROW EXECUTE FUNCTION v1_images_uncharge();

CREATE FUNCTION v1_images_recharge() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  UPDATE repo_charges SET refs = refs - 1
   WHERE repo = OLD.repo AND digest IN (OLD.json_digest, OLD.layer_digest);
  DELETE FROM repo_charges WHERE repo = OLD.repo AND digest IN (OLD.json_digest, OLD.layer_digest) AND refs <= 0;
  INSERT INTO repo_charges AS c (repo, digest, size, refs)
    SELECT NEW.repo, s.d, coalesce((SELECT size FROM blobs WHERE digest = s.d), 0), 1
      FROM (SELECT NEW.json_digest AS d UNION SELECT NEW.layer_digest WHERE NEW.layer_digest IS NOT NULL) s
    ON CONFLICT (repo, digest) DO UPDATE SET refs = c.refs + 1;
  RETURN NULL;
END $$;
CREATE TRIGGER v1_images_recharge AFTER UPDATE OF json_digest, layer_digest ON v1_images FOR EACH ROW
  WHEN (OLD.json_digest IS DISTINCT FROM NEW.json_digest OR OLD.layer_digest IS DISTINCT FROM NEW.layer_digest)
  EXECUTE FUNCTION v1_images_recharge();
`;

/** One journal trigger: `name` on `event` of `table` writes the record json_build_object(`fields`). */
function journal(name: string, event: string, table: string, fields: string): string {
  return `
CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO refs_outbox (record) VALUES (json_build_object(${fields})::text);
  RETURN NULL;
END $$;
CREATE TRIGGER ${name} AFTER ${event} ON ${table} FOR EACH ROW EXECUTE FUNCTION ${name}();`;
}

// The reference journal (SQLite migrations 6 and 8): the same record for the same change.
const REPO_RECORD = `'t', 'repo', 'r', NEW.name, 'desc', NEW.description, 'v1p', NEW.v1_private, 'v1i', NEW.v1_indexed, 'c', NEW.created_at`;
const TAG_RECORD = `'t', 'tag', 'r', NEW.repo, 'g', NEW.tag, 'd', NEW.digest, 'u', NEW.updated_at, 'b', NEW.bridged_from_v1`;
const V1TAG_RECORD = `'t', 'v1tag', 'r', NEW.repo, 'g', NEW.tag, 'i', NEW.image_id, 'm', NEW.meta`;
const V1IMG_RECORD =
  `'t', 'v1img', 'r', NEW.repo, 'i', NEW.id, 'p', NEW.parent, 'j', NEW.json_digest, 'l', NEW.layer_digest, 'n', NEW.layer_size, ` +
  `'k', NEW.checksum, 'x', NEW.complete, 'c', NEW.created_at, 'df', NEW.diff_id, 'lf', NEW.layer_format`;
const V1LIST_RECORD = `'t', 'v1list', 'r', NEW.repo, 'i', NEW.image_id, 'k', NEW.checksum, 'o', NEW.position`;

const JOURNAL = [
  journal('refs_blobs_ai', 'INSERT', 'blobs', `'t', 'blob', 'd', NEW.digest, 'n', NEW.size, 'l', NEW.location, 'c', NEW.created_at`),
  journal('refs_blobs_ad', 'DELETE', 'blobs', `'t', 'blob', 'd', OLD.digest, 'del', 1`),
  journal('refs_repos_ai', 'INSERT', 'repositories', REPO_RECORD),
  journal('refs_repos_au', 'UPDATE OF description, v1_private, v1_indexed', 'repositories', REPO_RECORD),
  journal('refs_repos_ad', 'DELETE', 'repositories', `'t', 'repo', 'r', OLD.name, 'del', 1`),
  journal('refs_links_ai', 'INSERT', 'repo_blobs', `'t', 'link', 'r', NEW.repo, 'd', NEW.digest, 'at', NEW.linked_at`),
  journal('refs_links_ad', 'DELETE', 'repo_blobs', `'t', 'link', 'r', OLD.repo, 'd', OLD.digest, 'del', 1`),
  journal(
    'refs_manifests_ai',
    'INSERT',
    'manifests',
    `'t', 'man', 'r', NEW.repo, 'd', NEW.digest, 'mt', NEW.media_type, 'n', NEW.size, 'a', NEW.artifact_type, 'subj', NEW.subject, 'ann', NEW.annotations, 'c', NEW.created_at`,
  ),
  journal('refs_manifests_ad', 'DELETE', 'manifests', `'t', 'man', 'r', OLD.repo, 'd', OLD.digest, 'del', 1`),
  journal('refs_refs_ai', 'INSERT', 'manifest_refs', `'t', 'ref', 'r', NEW.repo, 'd', NEW.digest, 'ch', NEW.child`),
  journal('refs_refs_ad', 'DELETE', 'manifest_refs', `'t', 'ref', 'r', OLD.repo, 'd', OLD.digest, 'ch', OLD.child, 'del', 1`),
  journal('refs_tags_ai', 'INSERT', 'tags', TAG_RECORD),
  journal('refs_tags_au', 'UPDATE OF digest, updated_at, bridged_from_v1', 'tags', TAG_RECORD),
  journal('refs_tags_ad', 'DELETE', 'tags', `'t', 'tag', 'r', OLD.repo, 'g', OLD.tag, 'del', 1`),
  journal('refs_v1tags_ai', 'INSERT', 'v1_tags', V1TAG_RECORD),
  journal('refs_v1tags_au', 'UPDATE', 'v1_tags', V1TAG_RECORD),
  journal('refs_v1tags_ad', 'DELETE', 'v1_tags', `'t', 'v1tag', 'r', OLD.repo, 'g', OLD.tag, 'del', 1`),
  journal('refs_v1images_ai', 'INSERT', 'v1_images', V1IMG_RECORD),
  journal('refs_v1images_au', 'UPDATE', 'v1_images', V1IMG_RECORD),
  journal('refs_v1images_ad', 'DELETE', 'v1_images', `'t', 'v1img', 'r', OLD.repo, 'i', OLD.id, 'del', 1`),
  journal('refs_v1list_ai', 'INSERT', 'v1_repo_images', V1LIST_RECORD),
  journal('refs_v1list_au', 'UPDATE', 'v1_repo_images', V1LIST_RECORD),
  journal('refs_v1list_ad', 'DELETE', 'v1_repo_images', `'t', 'v1list', 'r', OLD.repo, 'i', OLD.image_id, 'del', 1`),
].join('\n');

export const SCHEMA_V1 = `
-- pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it without being a
-- superuser. Where the registry's user does not own the database, a superuser creates it beforehand.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE blobs (
  digest     text COLLATE "C" PRIMARY KEY,
  size       bigint NOT NULL,
  location   text COLLATE "C" NOT NULL,
  created_at bigint NOT NULL
);
CREATE INDEX blobs_location ON blobs(location);

CREATE TABLE repositories (
  name        text COLLATE "C" PRIMARY KEY,
  description text COLLATE "C" NOT NULL DEFAULT '',
  v1_private  integer NOT NULL DEFAULT 0,
  v1_indexed  integer NOT NULL DEFAULT 0,
  created_at  bigint NOT NULL
);
-- Substring search (SQLite: the repo_search FTS5 trigram table): ILIKE '%x%' on either column uses these.
CREATE INDEX repositories_name_trgm ON repositories USING gin (name gin_trgm_ops);
CREATE INDEX repositories_description_trgm ON repositories USING gin (description gin_trgm_ops);

CREATE TABLE uploads (
  id         text COLLATE "C" PRIMARY KEY,
  repo       text COLLATE "C",
  size       bigint NOT NULL DEFAULT 0,
  state      text COLLATE "C" NOT NULL,
  started_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  owner      text COLLATE "C",
  digest     text COLLATE "C"
);
CREATE INDEX uploads_updated ON uploads(updated_at);
CREATE INDEX uploads_owner ON uploads(owner) WHERE owner IS NOT NULL;
CREATE INDEX uploads_digest ON uploads(digest) WHERE digest IS NOT NULL;

CREATE TABLE v1_images (
  repo         text COLLATE "C" NOT NULL,
  id           text COLLATE "C" NOT NULL,
  parent       text COLLATE "C",
  json_digest  text COLLATE "C" NOT NULL,
  layer_digest text COLLATE "C",
  layer_size   bigint,
  checksum     text COLLATE "C",
  complete     integer NOT NULL DEFAULT 0,
  created_at   bigint NOT NULL,
  diff_id      text COLLATE "C",
  layer_format text COLLATE "C",
  PRIMARY KEY (repo, id)
);
CREATE INDEX v1_images_by_id ON v1_images(id, repo);
CREATE INDEX v1_images_json ON v1_images(json_digest);
CREATE INDEX v1_images_layer ON v1_images(layer_digest) WHERE layer_digest IS NOT NULL;
CREATE INDEX v1_images_unanalyzed ON v1_images(repo, id) WHERE layer_format IS NULL AND layer_digest IS NOT NULL;

CREATE TABLE v1_tags (
  repo     text COLLATE "C" NOT NULL,
  tag      text COLLATE "C" NOT NULL,
  image_id text COLLATE "C" NOT NULL,
  meta     text COLLATE "C" NOT NULL,
  PRIMARY KEY (repo, tag)
);

CREATE TABLE v1_repo_images (
  repo     text COLLATE "C" NOT NULL,
  image_id text COLLATE "C" NOT NULL,
  checksum text COLLATE "C",
  position integer NOT NULL,
  PRIMARY KEY (repo, image_id)
);
CREATE INDEX v1_repo_images_by_id ON v1_repo_images(image_id, repo);

CREATE TABLE repo_blobs (
  repo      text COLLATE "C" NOT NULL,
  digest    text COLLATE "C" NOT NULL,
  linked_at bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (repo, digest)
);
CREATE INDEX repo_blobs_digest ON repo_blobs(digest);

CREATE TABLE manifests (
  repo          text COLLATE "C" NOT NULL,
  digest        text COLLATE "C" NOT NULL,
  media_type    text COLLATE "C" NOT NULL,
  size          bigint NOT NULL,
  artifact_type text COLLATE "C",
  subject       text COLLATE "C",
  annotations   text COLLATE "C",            -- a JSON object as text, as in SQLite (journal records carry it verbatim)
  created_at    bigint NOT NULL,
  pulled_at     bigint,
  PRIMARY KEY (repo, digest)
);
CREATE INDEX manifests_subject ON manifests(repo, subject) WHERE subject IS NOT NULL;

CREATE TABLE manifest_refs (
  repo   text COLLATE "C" NOT NULL,
  digest text COLLATE "C" NOT NULL,
  child  text COLLATE "C" NOT NULL,
  PRIMARY KEY (repo, digest, child)
);
CREATE INDEX manifest_refs_child ON manifest_refs(repo, child);

CREATE TABLE tags (
  repo            text COLLATE "C" NOT NULL,
  tag             text COLLATE "C" NOT NULL,
  digest          text COLLATE "C" NOT NULL,
  updated_at      bigint NOT NULL,
  pulled_at       bigint,
  bridged_from_v1 text COLLATE "C",
  PRIMARY KEY (repo, tag)
);
CREATE INDEX tags_digest ON tags(repo, digest);

CREATE TABLE gc_doomed (
  digest    text COLLATE "C" PRIMARY KEY,
  location  text COLLATE "C" NOT NULL,
  size      bigint NOT NULL,
  doomed_at bigint NOT NULL
);
CREATE TABLE gc_lock (
  id           integer PRIMARY KEY CHECK (id = 1),
  host         text COLLATE "C" NOT NULL,
  pid          integer NOT NULL,
  heartbeat_at bigint NOT NULL
);

CREATE TABLE repo_charges (
  repo   text COLLATE "C" NOT NULL,
  digest text COLLATE "C" NOT NULL,
  size   bigint NOT NULL,
  refs   bigint NOT NULL,
  PRIMARY KEY (repo, digest)
);
CREATE INDEX repo_charges_digest ON repo_charges(digest);
CREATE TABLE repo_usage (
  repo  text COLLATE "C" PRIMARY KEY,
  bytes bigint NOT NULL,
  blobs bigint NOT NULL
);

CREATE TABLE refs_outbox (
  seq    bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  record text COLLATE "C" NOT NULL
);

CREATE TABLE v1_bridged (
  repo     text COLLATE "C" NOT NULL,
  manifest text COLLATE "C" NOT NULL,
  top_id   text COLLATE "C",
  reason   text COLLATE "C",
  PRIMARY KEY (repo, manifest)
);
CREATE TABLE v1_bridged_images (
  repo         text COLLATE "C" NOT NULL,
  id           text COLLATE "C" NOT NULL,
  parent       text COLLATE "C",
  manifest     text COLLATE "C" NOT NULL,
  json         text COLLATE "C" NOT NULL,
  layer_digest text COLLATE "C" NOT NULL,
  layer_size   bigint NOT NULL,
  PRIMARY KEY (repo, id)
);
CREATE INDEX v1_bridged_images_by_id ON v1_bridged_images(id, repo);

CREATE TABLE notify_outbox (
  seq        bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  endpoint   text COLLATE "C" NOT NULL,
  repo       text COLLATE "C" NOT NULL,
  event      text COLLATE "C" NOT NULL,
  created_at bigint NOT NULL,
  attempts   integer NOT NULL DEFAULT 0,
  last_error text COLLATE "C"
);
CREATE INDEX notify_outbox_endpoint ON notify_outbox(endpoint, seq);
CREATE INDEX notify_outbox_created ON notify_outbox(created_at);

CREATE TABLE proxy_tags (
  repo       text COLLATE "C" NOT NULL,
  tag        text COLLATE "C" NOT NULL,
  digest     text COLLATE "C" NOT NULL,
  checked_at bigint NOT NULL,
  PRIMARY KEY (repo, tag)
);
${USAGE}
${JOURNAL}
`;
